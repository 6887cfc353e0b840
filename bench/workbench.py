"""The workbench's save-and-next at scale (issue 14): server time to save a coding and
serve the next answer, p50 and p99, on a study of 100,000 responses.

    python bench/workbench.py [--responses 100000] [--codings 300] [--engine sqlite]

The study is the demo survey and codebook, its 204 synthetic responses repeated until
`--responses` are stored, through the service functions the API uses (validation,
`store_responses`, `put_codebook`), never by writing tables. Then `hearme serve` runs
on it, a coder signs in through the sign-in form, and the script times, with one
client over loopback, each `POST /app/.../code/<question>` (store the coding, 303)
followed by the `GET` of the next answer (queue, suggestions, progress, page): the pair
is one save-and-next. Baseline in the same run: `GET /healthz` on the same server, the
cost of a request through the same stack doing nothing. Prints p50/p99 of both and the
ratio of the medians.
"""

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from api.cli import _migrate
from schemas.base import utcnow
from schemas.codebooks import CodebookIn
from schemas.responses import SubmissionIn
from schemas.surveys import SurveyDefinition
from service.coding.codebooks import put_codebook
from service.database import Database
from service.demo import SYSTEM
from service.responses import check_submission, store_responses
from service.seed.dataset import (
    TEXT_QUESTION,
    generate_responses,
    load_codebook,
    load_survey,
)
from service.settings import Settings
from service.surveys import create_survey, load_compiled
from tests.server.conftest import create_key, launch

BATCH = 5000


def load(url: str, n: int) -> str:
    settings = Settings(database_url=url, db_statement_timeout=0)
    _migrate(settings)
    database = Database(settings)
    definition = SurveyDefinition.model_validate(load_survey())
    with database.session() as session:
        create_survey(session, principal=SYSTEM, data=definition)
        compiled = load_compiled(session, survey_id=definition.id)
        codebook = CodebookIn.model_validate(load_codebook())
        put_codebook(session, compiled, principal=SYSTEM, question_id=TEXT_QUESTION, data=codebook)
    seeds = [SubmissionIn.model_validate(s.as_submission()) for s in generate_responses()]
    stored = 0
    started = time.perf_counter()
    while stored < n:
        with database.session() as session:
            compiled = load_compiled(session, survey_id=definition.id)
            now = utcnow()
            items = []
            for i in range(min(BATCH, n - stored)):
                data = seeds[(stored + i) % len(seeds)]
                answers, problems = check_submission(
                    compiled, principal=SYSTEM, data=data, received_at=now
                )
                assert not problems, problems
                items.append((data, answers))
            store_responses(session, compiled, principal=SYSTEM, items=items, received_at=now)
            stored += len(items)
        print(f"  stored {stored} responses ({time.perf_counter() - started:.0f} s)", flush=True)
    database.dispose()
    return definition.id


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--responses", type=int, default=100_000)
    parser.add_argument("--codings", type=int, default=300)
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="hearme-bench-workbench-"))
    url = f"sqlite:///{directory / 'bench.db'}"
    print(f"loading {args.responses} responses into {url}")
    survey = load(url, args.responses)
    token = create_key(url, name="bench-coder", role="coder")
    server = launch(url, workers=1, directory=directory)
    try:
        server.wait_ready(120)
        page = f"/app/surveys/{survey}/code/{TEXT_QUESTION}"
        with httpx.Client(base_url=server.base_url, timeout=60) as client:
            form = client.get("/app/sign-in")
            csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
            assert csrf
            signed = client.post(
                "/app/sign-in",
                content=str(httpx.QueryParams(csrf=csrf.group(1), key=token)),
                headers={"content-type": "application/x-www-form-urlencoded"},
            )
            assert signed.status_code == 303, signed.text
            html = client.get(page).text
            saves: list[float] = []
            for i in range(args.codings + 20):
                response_id = re.search(r'name="response_id" value="([^"]+)"', html)
                token_ = re.search(r'name="csrf" value="([^"]+)"', html)
                assert response_id, html[:500]
                assert token_, html[:500]
                body = httpx.QueryParams(
                    [
                        ("csrf", token_.group(1)),
                        ("response_id", response_id.group(1)),
                        ("category", "rapport"),
                    ]
                )
                t0 = time.perf_counter()
                saved = client.post(
                    page,
                    content=str(body),
                    headers={"content-type": "application/x-www-form-urlencoded"},
                )
                nxt = client.get(page)
                elapsed = time.perf_counter() - t0
                assert saved.status_code == 303
                assert nxt.status_code == 200
                html = nxt.text
                if i >= 20:  # the first 20 warm the caches
                    saves.append(elapsed * 1000)
            done = re.search(r"(\d+) of (\d+) answers coded by you", html)
            assert done, html[:500]
            assert int(done.group(1)) == args.codings + 20, "progress did not follow"
            total = int(done.group(2))
            health: list[float] = []
            for _ in range(args.codings):
                t0 = time.perf_counter()
                client.get("/healthz")
                health.append((time.perf_counter() - t0) * 1000)
    finally:
        server.stop()
    p50, p99 = statistics.median(saves), percentile(saves, 99)
    h50, h99 = statistics.median(health), percentile(health, 99)
    print(
        f"save-and-next (POST + GET), {len(saves)} codings at {args.responses} responses"
        f" ({total} non-blank answers in the queue):"
    )
    print(f"  p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    print(f"baseline GET /healthz: p50 {h50:.2f} ms, p99 {h99:.2f} ms")
    print(f"ratio of medians save-and-next / healthz: {p50 / h50:.1f}")


if __name__ == "__main__":
    main()
