"""API keys (admin): create, list, revoke. The CLI's `keys create` is the bootstrap."""

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response

from api.deps import PrincipalDep, SessionDep, require_json
from api.problems import problem_responses
from schemas.keys import ApiKey, KeyCreate, KeyCreated, KeyPublic
from service import keys
from service.permissions import Action, require

router = APIRouter(prefix="/v1/keys", tags=["keys"], responses=problem_responses(401, 403))


def _public(key: ApiKey) -> KeyPublic:
    return KeyPublic.model_validate(key, from_attributes=True)


@router.post(
    "",
    status_code=201,
    dependencies=[Depends(require_json)],
    responses=problem_responses(409, 415, 422),
)
def create_key(
    request: Request, data: KeyCreate, session: SessionDep, principal: PrincipalDep
) -> KeyCreated:
    """Create a key; the token is in this response only (admin)."""
    request.state.audit_target = data.name
    require(principal, Action.manage_keys)
    key, token = keys.create_key(session, data=data)
    return KeyCreated(**_public(key).model_dump(), key=token)


@router.get("")
def list_keys(session: SessionDep, principal: PrincipalDep) -> list[KeyPublic]:
    """List keys, without their tokens (admin)."""
    require(principal, Action.manage_keys)
    return [_public(k) for k in keys.list_keys(session)]


@router.delete("/{name}", status_code=204, responses=problem_responses(404, 409))
def revoke_key(
    name: Annotated[str, Path(max_length=200)], session: SessionDep, principal: PrincipalDep
) -> Response:
    """Revoke a key: it stops working at once, in every process (admin); 409 for the
    caller's own key and for the last admin key that works."""
    require(principal, Action.manage_keys)
    keys.revoke_key(session, principal=principal, name=name)
    return Response(status_code=204)
