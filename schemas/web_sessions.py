"""Browser sessions of the workbench (/app): a row per signed-in browser.

Only SHA-256 of the session token is stored (like API keys): a copy of the table lets
nobody into a session. The API key the browser signed in with is referred to by id, never
stored again, so revoking or expiring that key ends its sessions (`service.web_sessions`).
"""

from datetime import datetime

from sqlalchemy import Column, ForeignKey, Integer
from sqlmodel import Field as SQLField
from sqlmodel import SQLModel

from schemas.base import UTCDateTime, utcnow


class WebSession(SQLModel, table=True):
    __tablename__ = "web_session"

    id: int | None = SQLField(default=None, primary_key=True)
    token_hash: str = SQLField(max_length=64, unique=True)
    key_id: int = SQLField(
        sa_column=Column(Integer, ForeignKey("api_key.id"), nullable=False, index=True)
    )
    created_at: datetime = SQLField(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = SQLField(sa_type=UTCDateTime)
