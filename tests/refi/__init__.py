"""The REFI-QDA 1.0 XML schemas (see README.md here), for validating what hearme writes."""

from functools import cache
from pathlib import Path

import xmlschema

HERE = Path(__file__).resolve().parent


@cache
def codebook_schema() -> xmlschema.XMLSchema:
    """Codebook.xsd: `.qdc` files, namespace urn:QDA-XML:codebook:1.0."""
    return xmlschema.XMLSchema(HERE / "Codebook.xsd")


@cache
def project_schema() -> xmlschema.XMLSchema:
    """Project.xsd: the `project.qde` of a `.qdpx`, namespace urn:QDA-XML:project:1.0."""
    return xmlschema.XMLSchema(HERE / "Project.xsd")
