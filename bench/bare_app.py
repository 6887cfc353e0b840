"""The baseline of bench/submit.py: the framework alone, with nothing behind it.

One `POST /v1/surveys/{survey}/responses` that parses the submission envelope and its
answers into a pydantic model, stores nothing and returns 201 with the parsed body. It
is a sync route, like hearme's, so it pays the same thread-pool hop; it is served by
uvicorn with the options `hearme serve` uses (one worker, the default loop and HTTP
implementations, no access log, no server header).

    python bench/bare_app.py --port 8001
"""

import argparse
from typing import Any

import uvicorn
from fastapi import FastAPI
from pydantic import AwareDatetime, BaseModel, ConfigDict

app = FastAPI(title="bare")


class Submission(BaseModel):
    """Mirrors hearme's submission envelope: unknown fields refused, answers a dict."""

    model_config = ConfigDict(extra="forbid")

    site: str
    wave: str
    answers: dict[str, Any]
    submitted_at: AwareDatetime | None = None


@app.post("/v1/surveys/{survey}/responses", status_code=201)
def submit_response(survey: str, data: Submission) -> Submission:
    return data


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        workers=1,
        log_level="warning",
        access_log=False,
        server_header=False,
    )


if __name__ == "__main__":
    main()
