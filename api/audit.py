"""The audit log over HTTP (contract §11): admins list it; nothing changes it."""

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import PrincipalDep, SessionDep
from api.pagination import DEFAULT, Cursor, Limit
from api.problems import problem_responses
from schemas.audit import AuditPublic, AuditRecord
from schemas.base import Page
from service import audit
from service.audit import Action

router = APIRouter(prefix="/v1/audit", tags=["audit"], responses=problem_responses(401, 403))


def _public(row: AuditRecord) -> AuditPublic:
    return AuditPublic(
        id=str(row.id),
        at=row.at,
        key=row.key,
        role=row.role,
        action=row.action,
        survey=row.survey,
        target=row.target,
        status=row.status,
        request_id=row.request_id,
    )


@router.get("", responses=problem_responses(422))
def list_audit(
    session: SessionDep,
    principal: PrincipalDep,
    after: Cursor = None,
    key: Annotated[str | None, Query(max_length=200, description="A key's name.")] = None,
    action: Annotated[Action | None, Query(description="One action.")] = None,
    survey: Annotated[str | None, Query(max_length=64, description="A survey's id.")] = None,
    limit: Limit = DEFAULT,
) -> Page[AuditPublic]:
    """The audit records, oldest first (admin); pass `next_cursor` back as `after`."""
    rows, next_cursor = audit.list_records(
        session,
        principal=principal,
        after=after,
        key=key,
        action=action.value if action else None,
        survey=survey,
        limit=limit,
    )
    return Page(items=[_public(r) for r in rows], next_cursor=next_cursor)
