"""Bulk import of historical submissions (contract §5): NDJSON or CSV, all or nothing.

The body arrives as a file and is read row by row; rows are validated and stored in
batches inside the caller's transaction, so memory stays flat however large the file.
The first bad row stops the storing (the transaction will be rolled back) but not the
reading: every bad row is reported, up to `MAX_REPORTED` of them.
"""

import csv
import io
from collections.abc import Iterator
from datetime import datetime
from typing import IO, Any

import orjson
from pydantic import ValidationError
from sqlmodel import Session

from schemas.base import utcnow
from schemas.responses import SubmissionIn
from service.errors import FieldProblem, Forbidden, Invalid, invalid_field
from service.keys import Principal
from service.permissions import Action, require
from service.responses import check_submission, store_responses, wave_is_open
from service.surveys import load_compiled
from service.validation import CompiledSurvey

MAX_REPORTED = 1000
ENVELOPE_COLUMNS = ("site", "wave", "submitted_at")
LANGUAGE_COLUMN = "language"  # optional; a question of that id keeps the column its own

Row = tuple[int, dict[str, Any] | None, list[FieldProblem]]


def _ndjson_rows(stream: IO[str]) -> Iterator[Row]:
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            parsed = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            yield number, None, [FieldProblem((number,), f"invalid JSON: {exc}", "json_invalid")]
            continue
        if not isinstance(parsed, dict):
            yield number, None, [FieldProblem((number,), "each line must be a JSON object")]
            continue
        yield number, parsed, []


def _csv_cell(compiled: CompiledSurvey, qid: str, cell: str) -> Any:
    """A CSV cell as the JSON value a live form would send; unparseable cells pass
    through as text so the survey's model reports them with its own message."""
    if cell.strip() == "":
        return None
    question = compiled.questions[qid]
    kind = question.type
    if kind == "multi_choice":
        return [v.strip() for v in cell.split(";") if v.strip()]
    if kind == "boolean":
        return {"true": True, "false": False}.get(cell.strip().lower(), cell)
    if kind == "likert" or (kind == "number" and getattr(question, "integer", False)):
        try:
            return int(cell.strip())
        except ValueError:
            return cell
    if kind == "number":
        try:
            return float(cell.strip())
        except ValueError:
            return cell
    return cell


def _csv_rows(stream: IO[str], compiled: CompiledSurvey) -> Iterator[Row]:
    reader = csv.reader(stream)
    header = next(reader, None)
    if header is None:
        return
    optional = () if LANGUAGE_COLUMN in compiled.questions else (LANGUAGE_COLUMN,)
    unknown = [
        c
        for c in header
        if c not in ENVELOPE_COLUMNS and c not in optional and c not in compiled.questions
    ]
    missing = [c for c in ENVELOPE_COLUMNS if c not in header]
    if unknown or missing or len(set(header)) != len(header):
        problems = [FieldProblem((0, c), "unknown column") for c in unknown]
        problems += [FieldProblem((0, c), "required column missing") for c in missing]
        if len(set(header)) != len(header):
            problems.append(FieldProblem((0,), "duplicate column names"))
        raise Invalid("the CSV header is not valid", problems)
    for number, cells in enumerate(reader, start=1):
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != len(header):
            yield number, None, [FieldProblem((number,), f"expected {len(header)} cells")]
            continue
        record = dict(zip(header, cells, strict=True))
        yield (
            number,
            {
                "site": record["site"],
                "wave": record["wave"],
                "submitted_at": record["submitted_at"] or None,
                **(
                    {"language": record[LANGUAGE_COLUMN] or None}
                    if LANGUAGE_COLUMN in optional and LANGUAGE_COLUMN in record
                    else {}
                ),
                "answers": {
                    q: _csv_cell(compiled, q, record[q]) for q in header if q in compiled.questions
                },
            },
            [],
        )


def _check_row(
    compiled: CompiledSurvey, principal: Principal, number: int, raw: dict[str, Any], now: datetime
) -> tuple[SubmissionIn | None, dict[str, Any], list[FieldProblem]]:
    try:
        data = SubmissionIn.model_validate(raw)
    except ValidationError as exc:
        return (
            None,
            {},
            [
                FieldProblem((number, *e["loc"]), e["msg"], e["type"])
                for e in exc.errors(include_url=False, include_input=False)
            ],
        )
    try:
        answers, problems = check_submission(
            compiled, principal=principal, data=data, received_at=now
        )
    except Forbidden as exc:
        return None, {}, [FieldProblem((number, "site"), exc.detail, "forbidden_site")]
    problems = [FieldProblem((number, *p.loc), p.msg, p.type) for p in problems]
    wave = compiled.definition.wave(data.wave)
    if data.submitted_at is None:
        problems.append(FieldProblem((number, "submitted_at"), "required for imports", "missing"))
    elif wave is not None and not wave_is_open(wave, data.submitted_at):
        problems.append(
            FieldProblem(
                (number, "submitted_at"), f"outside the window of wave {wave.id!r}", "window"
            )
        )
    return data, answers, problems


def import_responses(
    session: Session,
    compiled: CompiledSurvey,
    *,
    principal: Principal,
    body: IO[bytes],
    media_type: str,
    batch_size: int,
) -> int:
    """Store every row or none; returns the number stored, or raises Invalid naming rows."""
    require(principal, Action.import_responses)
    text = io.TextIOWrapper(
        body, encoding="utf-8-sig", newline="" if media_type == "text/csv" else None
    )
    rows = _csv_rows(text, compiled) if media_type == "text/csv" else _ndjson_rows(text)
    now = utcnow()
    problems: list[FieldProblem] = []
    batch: list[tuple[SubmissionIn, dict[str, Any]]] = []
    imported = 0
    try:
        for number, raw, row_problems in rows:
            if raw is not None:
                data, answers, row_problems = _check_row(compiled, principal, number, raw, now)
                if not row_problems and not problems and data is not None:
                    batch.append((data, answers))
            problems.extend(row_problems)
            if len(problems) >= MAX_REPORTED:
                break
            if len(batch) >= batch_size:
                imported += len(
                    store_responses(
                        session, compiled, principal=principal, items=batch, received_at=now
                    )
                )
                batch = []
    except UnicodeDecodeError as exc:
        raise invalid_field(("body",), f"the body is not UTF-8: {exc.reason}") from exc
    if problems:
        shown = problems[:MAX_REPORTED]
        more = " (only the first ones are listed)" if len(problems) >= MAX_REPORTED else ""
        raise Invalid(f"{len(shown)} problems in the import; nothing was stored{more}", shown)
    if batch:
        imported += len(
            store_responses(session, compiled, principal=principal, items=batch, received_at=now)
        )
    return imported


def authorize(principal: Principal) -> None:
    """Checked before the body is read, so a key without the right uploads nothing."""
    require(principal, Action.import_responses)


def import_into_survey(
    session: Session,
    *,
    principal: Principal,
    survey_id: str,
    body: IO[bytes],
    media_type: str,
    batch_size: int,
) -> int:
    """Import into the survey as it stands in this transaction (which the caller opens
    only once the whole body has arrived: an upload must not hold the database's write
    lock while it streams)."""
    compiled = load_compiled(session, survey_id=survey_id, for_write=True)
    return import_responses(
        session,
        compiled,
        principal=principal,
        body=body,
        media_type=media_type,
        batch_size=batch_size,
    )
