"""Smoke test of bench/stats.py at small N, on both engines: its data is built through the
service's functions, its statistics agree with the raw GROUP BY it compares them with, and
its bulk loader (for the largest sizes) writes what the service loader writes."""

import argparse
import importlib
import sys
from collections.abc import Iterator
from types import ModuleType

import pytest

from tests.conftest import PG_ADMIN_URL, repo_root

N = 150


@pytest.fixture(scope="module")
def bench() -> Iterator[ModuleType]:
    sys.path.insert(0, str(repo_root() / "bench"))
    try:
        # bench/stats.py (it imports its sibling bench/submit.py)
        yield importlib.import_module("stats")
    finally:
        sys.path.remove(str(repo_root() / "bench"))


def _args(loader: str) -> argparse.Namespace:
    return argparse.Namespace(
        runs=1,
        warmup=0,
        context_runs=1,
        http_sizes=[],
        role="evaluator",
        seed=2026,
        loader=loader,
        pg_admin_url=PG_ADMIN_URL,
        sql_runs=1,
        reuse=None,
        load_only=False,
    )


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_the_statistics_benchmark_runs_on_service_built_data(
    bench: ModuleType, engine: str
) -> None:
    if engine == "postgresql":
        from tests.conftest import require_pg

        require_pg()
    by_loader = {}
    for loader in ("import", "service", "bulk"):
        setup, measured, mismatches = bench.run_size(engine, N, _args(loader))
        assert mismatches == [], mismatches
        assert {m.stat.name for m in measured} == {s.name for s in bench.STATS}
        assert setup.answers > N  # several answers per response
        assert setup.effective > 0  # coded answers with effective categories
        by_loader[loader] = (setup.cells, setup.answers, setup.effective)
    assert by_loader["service"] == by_loader["bulk"]
    # the import loader codes only the first answers: its responses and answers agree
    assert by_loader["import"][1] == by_loader["service"][1]
