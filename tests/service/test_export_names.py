"""SPSS and Stata variable names made from export column names (contract §10)."""

import re

from service.exports.names import dta_names, sav_names

SAV = re.compile(r"^[A-Za-z@][A-Za-z0-9_.@#$]{0,63}$")
DTA = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,31}$")


def test_valid_names_are_kept_and_dashes_become_underscores() -> None:
    names = ["response_id", "trust-confidence", "agencies__police"]
    assert sav_names(names) == ["response_id", "trust_confidence", "agencies__police"]
    assert dta_names(names) == ["response_id", "trust_confidence", "agencies__police"]


def test_long_digit_reserved_and_clashing_names_are_made_valid_and_unique() -> None:
    long = "q" * 60 + "__c__" + "category-" * 7
    names = [long, long + "x", "1st", "with", "_n", "a-b", "a_b", "A_B", "by"]
    sav, dta = sav_names(names), dta_names(names)
    assert all(SAV.match(n) for n in sav), sav
    assert all(DTA.match(n) for n in dta), dta
    assert len({n.lower() for n in sav}) == len(names)  # SPSS ignores case
    assert len(set(dta)) == len(names)
    assert sav[2] == "v1st"
    assert sav[3] == "with_"
    assert sav[8] == "by_"
    assert dta[3] == "with_"
    assert dta[4] == "_n_"
    assert sav[0] != sav[1]
    assert dta[0] != dta[1]
    assert len(sav[0]) <= 64
    assert len(dta[0]) <= 32


def test_names_are_deterministic() -> None:
    names = ["x" * 80, "x" * 80 + "y", "a-b", "a_b"]
    assert sav_names(names) == sav_names(list(names))
    assert dta_names(names) == dta_names(list(names))
    assert dta_names(names)[:1] == dta_names(names[:1])  # a name depends on what precedes it
