"""Query parameters shared by every list (contract §1)."""

from typing import Annotated

from fastapi import Query

from service.pagination import DEFAULT_LIMIT, MAX_LIMIT

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size.")]
Cursor = Annotated[str | None, Query(max_length=500, description="Opaque cursor of the next page.")]
DEFAULT = DEFAULT_LIMIT
