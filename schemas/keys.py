"""API keys: the table (which holds only a hash) and the shapes the API shows."""

from datetime import datetime
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, Field, field_validator
from sqlalchemy import JSON, Column
from sqlmodel import Field as SQLField
from sqlmodel import SQLModel

from schemas.base import Slug, StrictModel, UTCDateTime, utcnow


class Role(StrEnum):
    admin = "admin"
    evaluator = "evaluator"
    coder = "coder"
    submitter = "submitter"
    reader = "reader"


class ApiKey(SQLModel, table=True):
    """A stored key. `key_hash` is SHA-256 of the token; the token itself is never stored."""

    __tablename__ = "api_key"

    id: int | None = SQLField(default=None, primary_key=True)
    name: str = SQLField(max_length=200, unique=True)
    role: str = SQLField(max_length=20)
    sites: list[str] | None = SQLField(default=None, sa_column=Column(JSON, nullable=True))
    key_hash: str = SQLField(max_length=64, unique=True)
    prefix: str = SQLField(max_length=16)
    created_at: datetime = SQLField(default_factory=utcnow, sa_type=UTCDateTime)
    revoked_at: datetime | None = SQLField(default=None, sa_type=UTCDateTime)
    expires_at: datetime | None = SQLField(default=None, sa_type=UTCDateTime)


class KeyCreate(StrictModel):
    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$")
    role: Role
    sites: list[Slug] | None = Field(default=None, max_length=1000)
    expires_at: AwareDatetime | None = Field(
        default=None, description="When the key stops working (a 401 from then on)."
    )

    @field_validator("expires_at")
    @classmethod
    def _in_the_future(cls, value: datetime | None) -> datetime | None:
        if value is not None and value <= utcnow():
            raise ValueError("expires_at must be in the future")
        return value


class KeyPublic(BaseModel):
    name: str
    role: Role
    sites: list[str] | None
    prefix: str
    created_at: datetime
    revoked_at: datetime | None
    expires_at: datetime | None = None


class KeyCreated(KeyPublic):
    """Returned once, at creation: the only time the token is ever shown."""

    key: str
