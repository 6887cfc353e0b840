"""The audit log (contract §11): who read or changed what, when, with what outcome.

A record names the key, the action and its target, never answer text: `target` is an
identifier (a response id, key name, webhook id, release id or question), and nothing of
a request's body or of the answers it touched is stored.
"""

from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import BigInteger, Column, Integer
from sqlmodel import Field as SQLField
from sqlmodel import SQLModel

from schemas.base import UTCDateTime, utcnow


class AuditRecord(SQLModel, table=True):
    """Append-only: rows are inserted by requests and deleted only by retention pruning."""

    __tablename__ = "audit_record"

    id: int | None = SQLField(
        default=None,
        sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    )
    at: datetime = SQLField(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    key: str | None = SQLField(default=None, max_length=200, index=True)
    role: str | None = SQLField(default=None, max_length=20)
    action: str = SQLField(max_length=64, index=True)
    survey: str | None = SQLField(default=None, max_length=64, index=True)
    target: str | None = SQLField(default=None, max_length=200)
    status: int
    request_id: str | None = SQLField(default=None, max_length=128)


class AuditPublic(BaseModel):
    id: str
    at: datetime
    key: str | None
    role: str | None
    action: str
    survey: str | None
    target: str | None
    status: int
    request_id: str | None
