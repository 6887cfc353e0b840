"""The audit log (contract §11): one record per request that reads answers or free text,
writes, erases, or changes a key, webhook or release. Records are appended by `record`,
listed by `list_records`, and deleted only by `prune` once past their retention; nothing
else changes them.

A record holds identifiers only (key name, action, survey, target id, status, request
id), never answer text nor any part of a request body.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import delete
from sqlmodel import Session, col, select

from schemas.audit import AuditRecord
from schemas.base import utcnow
from service import bulk, permissions
from service.errors import invalid_field
from service.keys import Principal
from service.pagination import decode_cursor, encode_cursor


class Action(StrEnum):
    """What was done. Webhook, release, export and event actions are named already, for
    the capabilities that will record them."""

    survey_create = "survey.create"
    survey_replace = "survey.replace"
    response_submit = "response.submit"
    response_import = "response.import"
    response_list = "response.list"
    response_read = "response.read"
    response_erase = "response.erase"
    codebook_write = "codebook.write"
    codebook_import = "codebook.import"
    coding_read = "coding.read"
    coding_write = "coding.write"
    consensus_write = "consensus.write"
    consensus_delete = "consensus.delete"
    suggestions_read = "suggestions.read"
    queue_read = "queue.read"
    discrepancies_read = "discrepancies.read"
    project_export = "project.export"
    key_create = "key.create"
    key_revoke = "key.revoke"
    audit_read = "audit.read"
    # Capabilities to come: §9 events and webhooks, §7.6 releases, §10 exports.
    events_read = "events.read"
    webhook_create = "webhook.create"
    webhook_delete = "webhook.delete"
    webhook_retry = "webhook.retry"
    release_publish = "release.publish"
    release_withdraw = "release.withdraw"
    export_read = "export.read"
    project_import = "project.import"
    session_sign_in = "session.sign_in"  # the workbench's browser sessions (/app)
    session_sign_out = "session.sign_out"


@dataclass(frozen=True)
class Entry:
    """One record to append: who (None for a request that never authenticated), what,
    and how it ended."""

    action: Action
    status: int
    principal: Principal | None = None
    survey: str | None = None
    target: str | None = None
    request_id: str | None = None


def _values(entry: Entry) -> dict[str, object]:
    return {
        "key": entry.principal.name if entry.principal else None,
        "role": entry.principal.role.value if entry.principal else None,
        "action": entry.action.value,
        "survey": entry.survey,
        "target": entry.target[:200] if entry.target else None,
        "status": entry.status,
        "request_id": entry.request_id,
    }


def record(session: Session, entry: Entry) -> AuditRecord:
    row = AuditRecord(**_values(entry))  # type: ignore[arg-type]
    session.add(row)
    session.flush()
    return row


def record_many(session: Session, entries: Sequence[Entry]) -> None:
    """Append several records in one statement, in the caller's transaction: group commit
    records its stored submissions in the very transaction that stores them."""
    if entries:
        now = utcnow()
        _INSERT.execute(session, [{"at": now, **_values(entry)} for entry in entries])


# A driver statement compiled once (`service.bulk`): group commit's records of a batch.
_INSERT = bulk.Insert(
    AuditRecord.__table__,  # type: ignore[attr-defined]
    ("at", "key", "role", "action", "survey", "target", "status", "request_id"),
)


def list_records(
    session: Session,
    *,
    principal: Principal,
    after: str | None,
    key: str | None = None,
    action: str | None = None,
    survey: str | None = None,
    limit: int,
) -> tuple[list[AuditRecord], str | None]:
    """Oldest first (admin). `after` is the `next_cursor` of the page before."""
    permissions.require(principal, permissions.Action.read_audit)
    last = decode_cursor(after)
    if last is not None and not isinstance(last, int):
        raise invalid_field(("query", "after"), "malformed cursor")
    query = select(AuditRecord).order_by(col(AuditRecord.id)).limit(limit + 1)
    if last is not None:
        query = query.where(col(AuditRecord.id) > last)
    if key is not None:
        query = query.where(col(AuditRecord.key) == key)
    if action is not None:
        query = query.where(col(AuditRecord.action) == action)
    if survey is not None:
        query = query.where(col(AuditRecord.survey) == survey)
    rows = list(session.exec(query))
    next_cursor = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return rows[:limit], next_cursor


def prune(session: Session, *, retention_days: int, now: datetime | None = None) -> int:
    """Delete the records older than the retention; returns how many went."""
    cutoff = (now or utcnow()) - timedelta(days=retention_days)
    result = session.execute(delete(AuditRecord).where(col(AuditRecord.at) < cutoff))
    return int(getattr(result, "rowcount", 0) or 0)
