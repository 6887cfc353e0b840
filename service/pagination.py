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
