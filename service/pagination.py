"""Opaque keyset cursors (contract §1): a base64 wrapper around the last key of a page."""

import base64
import binascii
import json
from typing import Any

from service.errors import invalid_field

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def encode_cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> Any:
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise invalid_field(("query", "cursor"), "malformed cursor") from exc


MAX_PK = 2**63  # primary keys are non-negative BIGINTs


def decode_pk_cursor(cursor: str | None) -> int | None:
    """The primary key a keyset page starts after (None: from the start). The one check of
    a primary-key cursor: anything but a non-negative BIGINT (null, true, 1e40) is not
    ours, and is a 422 naming the query's cursor."""
    if cursor is None:
        return None
    after = decode_cursor(cursor)
    if isinstance(after, bool) or not isinstance(after, int) or not 0 <= after < MAX_PK:
        raise invalid_field(("query", "cursor"), "malformed cursor")
    return after
