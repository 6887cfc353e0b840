"""Who may do what (contract §2): one table from each action to the roles allowed it.

Services check an action, never a list of roles of their own, so a role's rights are read
here in one place; `tests/api/test_roles.py` iterates this table over every endpoint and
every role. Site bindings are checked beside it (`Principal.require_site`), and what a
role sees of what it may read (a coder's blind view, a reader's suppressed cells) stays
with the service that shapes the answer.
"""

from enum import StrEnum

from schemas.keys import Role
from service.errors import Forbidden
from service.keys import Principal


class Action(StrEnum):
    manage_surveys = "manage_surveys"
    read_surveys = "read_surveys"
    submit_responses = "submit_responses"
    import_responses = "import_responses"
    read_responses = "read_responses"
    erase_responses = "erase_responses"
    edit_codebooks = "edit_codebooks"
    read_codebooks = "read_codebooks"
    code = "code"
    resolve = "resolve"  # set or withdraw the consensus
    read_agreement = "read_agreement"
    read_suggestions = "read_suggestions"
    export_projects = "export_projects"
    read_statistics = "read_statistics"
    manage_keys = "manage_keys"
    read_audit = "read_audit"
    export_responses = "export_responses"  # the tabular files and their dictionary
    import_projects = "import_projects"  # codings made in another QDA tool (.qdpx)
    publish_releases = "publish_releases"
    read_releases = "read_releases"
    withdraw_releases = "withdraw_releases"
    read_events = "read_events"
    manage_webhooks = "manage_webhooks"  # one's own webhooks; an admin sees every one


_ADMIN = Role.admin
_EVALUATOR = Role.evaluator
_CODER = Role.coder

PERMISSIONS: dict[Action, frozenset[Role]] = {
    Action.manage_surveys: frozenset({_ADMIN}),
    Action.read_surveys: frozenset({_ADMIN, _EVALUATOR, _CODER, Role.submitter}),
    Action.submit_responses: frozenset({_ADMIN, Role.submitter}),
    Action.import_responses: frozenset({_ADMIN, _EVALUATOR}),
    Action.read_responses: frozenset({_ADMIN, _EVALUATOR}),
    Action.erase_responses: frozenset({_ADMIN}),
    Action.edit_codebooks: frozenset({_ADMIN, _EVALUATOR}),
    Action.read_codebooks: frozenset({_ADMIN, _EVALUATOR, _CODER}),
    Action.code: frozenset({_ADMIN, _EVALUATOR, _CODER}),
    Action.resolve: frozenset({_ADMIN, _EVALUATOR}),
    Action.read_agreement: frozenset({_ADMIN, _EVALUATOR}),
    Action.read_suggestions: frozenset({_ADMIN, _EVALUATOR, _CODER}),
    Action.export_projects: frozenset({_ADMIN, _EVALUATOR}),
    Action.read_statistics: frozenset({_ADMIN, _EVALUATOR}),  # readers: releases (§7.6)
    Action.manage_keys: frozenset({_ADMIN}),
    Action.read_audit: frozenset({_ADMIN}),
    Action.export_responses: frozenset({_ADMIN, _EVALUATOR}),
    Action.import_projects: frozenset({_ADMIN, _EVALUATOR}),
    Action.publish_releases: frozenset({_ADMIN, _EVALUATOR}),
    Action.read_releases: frozenset({_ADMIN, _EVALUATOR, Role.reader}),
    Action.withdraw_releases: frozenset({_ADMIN}),
    Action.read_events: frozenset({_ADMIN, _EVALUATOR, Role.reader}),
    Action.manage_webhooks: frozenset({_ADMIN, _EVALUATOR, Role.reader}),
}


def allowed(principal: Principal, action: Action) -> bool:
    return principal.role in PERMISSIONS[action]


def require(principal: Principal, action: Action) -> None:
    """403 unless the key's role may do `action`."""
    if not allowed(principal, action):
        raise Forbidden(f"role {principal.role.value!r} may not do this")
