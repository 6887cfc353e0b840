"""Events (contract §9): the outbox table the feed is read from, webhooks and their
deliveries, and the shapes the API shows.

No foreign keys on `event`: its rows are written at the very end of a transaction,
under the feed's position lock (`service.events.outbox`), and an insert there must
never wait on a row lock that another writer holds while it waits for that lock.
"""

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import JSON, BigInteger, Column, ForeignKey, Index, Integer, UniqueConstraint
from sqlmodel import Field as SQLField
from sqlmodel import SQLModel

from schemas.base import StrictModel, UTCDateTime, utcnow

BigId = BigInteger().with_variant(Integer, "sqlite")


class EventType(StrEnum):
    response_created = "response.created"
    response_erased = "response.erased"
    coding_changed = "coding.changed"
    codebook_changed = "codebook.changed"
    survey_created = "survey.created"
    survey_changed = "survey.changed"
    release_published = "release.published"
    release_withdrawn = "release.withdrawn"


class Event(SQLModel, table=True):
    """One change. `position` is the event's place in the feed, in commit order, given
    just before its transaction commits; `pk` is only the row's identity."""

    __tablename__ = "event"
    __table_args__ = (
        Index("ix_event_occurred_at", "occurred_at"),
        Index("ix_event_response_id", "response_id"),
        {"sqlite_autoincrement": True},
    )

    pk: int | None = SQLField(default=None, sa_column=Column(BigId, primary_key=True))
    position: int | None = SQLField(
        default=None, sa_column=Column(BigInteger, unique=True, nullable=True)
    )
    id: str = SQLField(max_length=36, unique=True)
    type: str = SQLField(max_length=40)
    survey_id: str = SQLField(max_length=64)
    site: str | None = SQLField(default=None, max_length=64)
    wave: str | None = SQLField(default=None, max_length=64)
    response_id: str | None = SQLField(default=None, max_length=36)
    occurred_at: datetime = SQLField(default_factory=utcnow, sa_type=UTCDateTime)
    data: dict[str, Any] = SQLField(sa_column=Column(JSON, nullable=False))


class EventRetention(SQLModel, table=True):
    """How far the feed has been pruned: a cursor before `pruned_through` is a 410."""

    __tablename__ = "event_retention"

    id: int = SQLField(default=1, primary_key=True)
    pruned_through: int = SQLField(default=0, sa_column=Column(BigInteger, nullable=False))


class EventPublic(BaseModel):
    id: str
    type: str
    survey: str
    site: str | None
    wave: str | None
    occurred_at: datetime
    data: dict[str, Any]


class EventPage(BaseModel):
    """A page of the feed; `next_cursor` is never null: pass it back to continue."""

    items: list[EventPublic]
    next_cursor: str


class Webhook(SQLModel, table=True):
    """A subscription. The secret is not stored: `secret_nonce` and the server's secret
    key derive it (`service.events.secrets`). `cursor` is the feed position up to which
    this webhook's deliveries have been queued."""

    __tablename__ = "webhook"

    pk: int | None = SQLField(default=None, sa_column=Column(BigId, primary_key=True))
    id: str = SQLField(max_length=36, unique=True)
    url: str = SQLField(max_length=2000)
    events: list[str] = SQLField(sa_column=Column(JSON, nullable=False))
    owner_key_id: int = SQLField(foreign_key="api_key.id", index=True)
    secret_nonce: str = SQLField(max_length=64)
    cursor: int = SQLField(default=0, sa_column=Column(BigInteger, nullable=False))
    created_at: datetime = SQLField(default_factory=utcnow, sa_type=UTCDateTime)


class DeliveryStatus(StrEnum):
    pending = "pending"
    delivered = "delivered"
    failed = "failed"


class WebhookDelivery(SQLModel, table=True):
    """One event to send to one webhook. While pending, `next_attempt_at` is when it is
    due; a dispatcher that claims it moves that past its lease, so no other claims it."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (
        UniqueConstraint("webhook_pk", "event_pk"),
        Index("ix_webhook_delivery_status_next_attempt_at", "status", "next_attempt_at"),
    )

    pk: int | None = SQLField(default=None, sa_column=Column(BigId, primary_key=True))
    webhook_pk: int = SQLField(
        sa_column=Column(BigId, ForeignKey("webhook.pk", ondelete="CASCADE"), nullable=False)
    )
    event_pk: int = SQLField(sa_column=Column(BigId, nullable=False))
    event_id: str = SQLField(max_length=36)
    status: str = SQLField(default=DeliveryStatus.pending.value, max_length=10)
    attempts: int = 0
    step: int = 0  # the index of the retry schedule's next delay
    next_attempt_at: datetime = SQLField(default_factory=utcnow, sa_type=UTCDateTime)
    last_status_code: int | None = None
    last_error: str | None = SQLField(default=None, max_length=500)
    created_at: datetime = SQLField(default_factory=utcnow, sa_type=UTCDateTime)
    delivered_at: datetime | None = SQLField(default=None, sa_type=UTCDateTime)


class WebhookIn(StrictModel):
    url: str = Field(min_length=1, max_length=2000)
    events: list[str] = Field(min_length=1, max_length=20)


class WebhookPublic(BaseModel):
    id: str
    url: str
    events: list[str]
    owner: str
    created_at: datetime


class WebhookCreated(WebhookPublic):
    """Returned once, at creation: the only time the secret is ever shown."""

    secret: str


class DeliveryPublic(BaseModel):
    event_id: str
    status: DeliveryStatus
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    delivered_at: datetime | None
