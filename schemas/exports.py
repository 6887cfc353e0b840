"""Exports (contract §10): the data dictionary of an export's columns."""

from typing import Literal

from pydantic import BaseModel, Field

ExportFormat = Literal["csv", "xlsx", "sav", "dta"]
DictionaryFormat = Literal["json", "csv"]
ColumnType = Literal[
    "string",
    "datetime",
    "choice",
    "likert",
    "number",
    "integer",
    "boolean",
    "text",
    "indicator",
    "status",
]


class ValueLabel(BaseModel):
    code: int = Field(description="the integer code in .sav and .dta files")
    value: bool | int | str = Field(description="the value as CSV, XLSX and JSON hold it")
    label: str


class DictionaryColumn(BaseModel):
    name: str = Field(description="the column's name in CSV and XLSX")
    sav_name: str = Field(description="its variable name in the SPSS .sav file")
    dta_name: str = Field(description="its variable name in the Stata .dta file")
    label: str = Field(description="the variable label: the question's text")
    type: ColumnType
    question: str | None = Field(description="the question the column comes from, if any")
    values: list[ValueLabel] = Field(description="the value labels (choice, likert, boolean)")


class ExportDictionary(BaseModel):
    survey: str
    columns: list[DictionaryColumn]


class QdpxImportResult(BaseModel):
    """What an `import.qdpx` stored (or, with `dry_run`, would store)."""

    responses: int = Field(description="responses whose text source the project holds")
    coders: list[str] = Field(description="the coders found (the project's user names)")
    codings: int = Field(description="codings stored, each replacing that coder's")
    unchanged: int = Field(description="codings found identical to the stored ones")
    consensus: int = Field(0, description="consensus sets stored (user `hearme consensus`)")
    unmatched_sources: list[str] = Field(description="text sources that are no answer here")
    dry_run: bool = False
