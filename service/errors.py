"""Domain exceptions. `api/problems.py` maps each to one HTTP status, in one place."""

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class FieldProblem:
    loc: tuple[str | int, ...]
    msg: str
    type: str = "value_error"


class DomainError(Exception):
    """Base of every error the service raises on purpose."""

    title = "Error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(DomainError):
    title = "Not found"


class Unauthenticated(DomainError):
    title = "Unauthorized"


class Forbidden(DomainError):
    title = "Forbidden"


class Conflict(DomainError):
    title = "Conflict"


class Gone(DomainError):
    title = "Gone"


class Unavailable(DomainError):
    """The database (or the process that writes to it) cannot take the request now: a
    503 to retry (contract §11)."""

    title = "Service unavailable"


class StorageFull(DomainError):
    """The database refused a write for want of space: a 507; nothing was stored."""

    title = "Insufficient storage"


class TooLarge(DomainError):
    """Input larger than hearme reads, found only once reading it (an archive member that
    inflates past its cap)."""

    title = "Content too large"


class Invalid(DomainError):
    """Input that fails validation; `errors` names each offending field by its path."""

    title = "Validation failed"

    def __init__(self, detail: str, errors: Sequence[FieldProblem]) -> None:
        super().__init__(detail)
        self.errors = list(errors)


def invalid_field(loc: Sequence[str | int], msg: str, type_: str = "value_error") -> Invalid:
    return Invalid(msg, [FieldProblem(tuple(loc), msg, type_)])
