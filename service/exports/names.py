"""Variable names valid for SPSS and Stata, made from the export's column names.

Column names are slugs joined by `__` (`agencies__police`, `trust_actions__c__rapport`),
which neither format accepts as they stand: both refuse `-`, SPSS allows 64 bytes and
Stata 32 characters, and each has reserved words. The mapping is a pure function of the
column names in order, so the same survey always gives the same names: a name too long
keeps its start and ends in 8 hex digits of its SHA-1, and a name that two columns would
share (case-insensitively for SPSS) gets the same kind of suffix on the later column.
"""

import hashlib
import re
from collections.abc import Callable, Sequence

SAV_MAX = 64
DTA_MAX = 32
SAV_RESERVED = frozenset(
    {"all", "and", "by", "eq", "ge", "gt", "le", "lt", "ne", "not", "or", "to", "with"}
)
DTA_RESERVED = frozenset(
    {
        "_all", "_b", "byte", "_coef", "_cons", "double", "float", "if", "in", "int", "long",
        "_n", "_N", "_pi", "_pred", "_rc", "_skip", "strL", "using", "with",
    }
)  # fmt: skip


def _digest(name: str) -> str:
    return hashlib.sha1(name.encode(), usedforsecurity=False).hexdigest()[:8]


def _shorten(name: str, original: str, limit: int) -> str:
    if len(name) <= limit:
        return name
    return name[: limit - 9].rstrip("_") + "_" + _digest(original)


def _sav_base(name: str) -> str:
    valid = re.sub(r"[^A-Za-z0-9_.@#$]", "_", name)
    if not re.match(r"[A-Za-z@]", valid):
        valid = "v" + valid
    if valid.lower() in SAV_RESERVED:
        valid += "_"
    return _shorten(valid, name, SAV_MAX)


def _dta_base(name: str) -> str:
    valid = re.sub(r"[^A-Za-z0-9_]", "_", name)
    if not re.match(r"[A-Za-z_]", valid):
        valid = "v" + valid
    if valid in DTA_RESERVED:
        valid += "_"
    return _shorten(valid, name, DTA_MAX)


def _unique(
    names: Sequence[str], base: Callable[[str], str], limit: int, fold: Callable[[str], str]
) -> list[str]:
    taken: set[str] = set()
    result = []
    for name in names:
        candidate = base(name)
        salt = 0
        while fold(candidate) in taken:
            salt += 1
            candidate = candidate[: limit - 9].rstrip("_") + "_" + _digest(f"{name}#{salt}")
        taken.add(fold(candidate))
        result.append(candidate)
    return result


def sav_names(names: Sequence[str]) -> list[str]:
    """SPSS names: letters, digits and `_`, starting with a letter, at most 64 bytes,
    unique regardless of case."""
    return _unique(names, _sav_base, SAV_MAX, str.lower)


def dta_names(names: Sequence[str]) -> list[str]:
    """Stata names: letters, digits and `_`, not starting with a digit, at most 32
    characters, unique."""
    return _unique(names, _dta_base, DTA_MAX, lambda s: s)
