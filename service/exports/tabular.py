"""Writing an export (contract §10) as CSV, XLSX, SPSS `.sav` or Stata `.dta`.

CSV is produced line by line as the rows are read, so it can be streamed. The other
formats are written to a temporary file that the caller streams and deletes:

* XLSX with xlsxwriter in constant-memory mode, which flushes each row to disk as it is
  written (sheets `responses`, `dictionary`, `codebook`);
* `.sav` and `.dta` with pyreadstat, which writes a whole data frame: the rows are written
  in frames of `savfile.CHUNK` responses, each filled in place (one preallocated numeric
  block), and the chunk files joined (`savfile`, `dtafile`), so memory holds one chunk.

Values: in CSV and XLSX a choice is its option value, a boolean `true`/`false`, a
timestamp ISO 8601 in UTC, no answer an empty cell. In `.sav` and `.dta` choices,
likerts and booleans are their integer codes with value labels, timestamps are the
formats' own datetimes, and no answer is system-missing (an empty string for strings,
which neither format can mark as missing).
"""

from __future__ import annotations

import csv
import io
import itertools
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from schemas.codebooks import CodebookPublic
from service.exports import dtafile, savfile
from service.exports.columns import Cell, Column, Row

if TYPE_CHECKING:  # imported where used: they would slow every process's start
    import pandas as pd

XLSX_MAX_STRING = 32767
DTA_MAX_LABEL = 80


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def plain(value: Cell) -> Any:
    """A value as CSV writes it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return iso(value)
    return value


def _boolean_text(read: Callable[[Row], Cell]) -> Callable[[Row], Cell]:
    return lambda row: None if (value := read(row)) is None else ("true" if value else "false")


def _moment_text(read: Callable[[Row], Cell]) -> Callable[[Row], Cell]:
    return lambda row: iso(value) if isinstance(value := read(row), datetime) else None


def row_reader(cols: Sequence[Column], *, as_text: bool = False) -> Callable[[Row], list[Cell]]:
    """A function giving a response's cells in column order; each block of columns is read
    once. `as_text`: booleans and timestamps as CSV writes them (None stays None, which the
    csv module writes as an empty cell)."""
    steps: list[tuple[bool, Callable[[Row], Any]]] = []
    i = 0
    while i < len(cols):
        column = cols[i]
        if column.block is not None:
            steps.append((True, column.block.read))
            i += column.block.width
            continue
        read = column.value
        if as_text and column.type == "boolean":
            read = _boolean_text(read)
        elif as_text and column.type == "datetime":
            read = _moment_text(read)
        steps.append((False, read))
        i += 1

    def cells(row: Row) -> list[Cell]:
        out: list[Cell] = []
        for many, step in steps:
            if many:
                out.extend(step(row))
            else:
                out.append(step(row))
        return out

    return cells


def csv_lines(cols: Sequence[Column], rows: Iterable[Row]) -> Iterator[bytes]:
    """The export as CSV (RFC 4180, CRLF), a header line first, in chunks of lines."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([c.name for c in cols])
    cells = row_reader(cols, as_text=True)
    for n, row in enumerate(rows, start=1):
        writer.writerow(cells(row))
        if n % 500 == 0:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


def _values_text(column: Column) -> str:
    return "; ".join(f"{v.code}={v.value}: {v.label}" for v in column.values)


def write_xlsx(
    path: Path,
    cols: Sequence[Column],
    rows: Iterable[Row],
    codebooks: Iterable[CodebookPublic],
) -> None:
    import xlsxwriter

    workbook = xlsxwriter.Workbook(
        str(path), {"constant_memory": True, "strings_to_numbers": False}
    )
    try:
        bold = workbook.add_format({"bold": True})
        sheet = workbook.add_worksheet("responses")
        for j, column in enumerate(cols):
            sheet.write_string(0, j, column.name, bold)
        sheet.freeze_panes(1, 1)
        cells = row_reader(cols)
        for i, row in enumerate(rows, start=1):
            for j, value in enumerate(cells(row)):
                if value is None:
                    continue
                if isinstance(value, bool):
                    sheet.write_boolean(i, j, value)
                elif isinstance(value, int | float):
                    sheet.write_number(i, j, value)
                elif isinstance(value, datetime):
                    sheet.write_string(i, j, iso(value))
                else:  # never write(): a text starting with "=" would become a formula
                    sheet.write_string(i, j, value[:XLSX_MAX_STRING])
        _dictionary_sheet(workbook.add_worksheet("dictionary"), cols, bold)
        _codebook_sheet(workbook.add_worksheet("codebook"), codebooks, bold)
    finally:
        workbook.close()


def _sheet_rows(
    sheet: Any, header: Sequence[str], lines: Iterable[Sequence[Any]], bold: Any
) -> None:
    for j, name in enumerate(header):
        sheet.write_string(0, j, name, bold)
    for i, line in enumerate(lines, start=1):
        for j, value in enumerate(line):
            if value is None:
                continue
            sheet.write_string(i, j, str(value)[:XLSX_MAX_STRING])


def _dictionary_sheet(sheet: Any, cols: Sequence[Column], bold: Any) -> None:
    header = ("name", "sav_name", "dta_name", "label", "type", "question", "values")
    lines = (
        (c.name, c.sav_name, c.dta_name, c.label, c.type, c.question, _values_text(c)) for c in cols
    )
    _sheet_rows(sheet, header, lines, bold)


def _codebook_sheet(sheet: Any, codebooks: Iterable[CodebookPublic], bold: Any) -> None:
    header = (
        "question", "theme", "theme_label", "domain", "category", "category_label",
        "description", "origin", "keywords", "category_column", "theme_column",
    )  # fmt: skip
    lines = (
        (
            book.question,
            theme.id,
            theme.label,
            theme.domain,
            category.id,
            category.label,
            category.description,
            category.origin,
            "; ".join(category.keywords),
            f"{book.question}__c__{category.id}",
            f"{book.question}__t__{theme.id}",
        )
        for book in codebooks
        for theme in book.themes
        for category in theme.categories
    )
    _sheet_rows(sheet, header, lines, bold)


# --- SPSS and Stata ------------------------------------------------------------------------

NUMERIC = frozenset({"choice", "likert", "number", "integer", "boolean", "indicator"})
WHOLE = NUMERIC - {"number"}  # shown without decimals
MEASURES = {"likert": "ordinal", "number": "scale", "integer": "scale"}  # else nominal


def _frame(
    cols: Sequence[Column],
    rows: Iterable[Row],
    names: Sequence[str],
    count: int,
    widths: dict[int, int] | None = None,
) -> pd.DataFrame:
    """The data frame pyreadstat writes, filled in place: the numeric columns are one
    preallocated block of `count` rows (pandas keeps it without a copy), strings one
    object array per column; repeated short strings (site, wave, status) are shared.
    With `widths`, the first value of each string column is blank-padded to its width in
    bytes, so that every chunk of a `.sav` declares the same widths."""
    import numpy as np
    import pandas as pd

    numeric = [j for j, c in enumerate(cols) if c.type in NUMERIC]
    moments = [j for j, c in enumerate(cols) if c.type == "datetime"]
    strings = [j for j, c in enumerate(cols) if c.type not in NUMERIC and c.type != "datetime"]
    block = np.full((count, len(numeric)), np.nan, order="F")
    seconds = np.full((count, len(moments)), np.nan)
    texts = {j: np.full(count, "", dtype=object) for j in strings}
    shared = {j for j in strings if cols[j].type != "text" and cols[j].name != "response_id"}
    codes_of = [c.codes or None for c in cols]
    cells = row_reader(cols)
    nan = math.nan
    interned: dict[str, str] = {}
    filled = 0
    for i, row in enumerate(rows):
        if i >= count:
            break
        values = cells(row)
        line = []
        for j in numeric:
            value, codes = values[j], codes_of[j]
            if value is None:
                line.append(nan)
            elif codes is not None:
                code = codes.get(value)
                line.append(nan if code is None else float(code))
            else:
                line.append(float(value))  # type: ignore[arg-type]
        block[i] = line
        for m, j in enumerate(moments):
            moment = values[j]
            if isinstance(moment, datetime):
                seconds[i, m] = moment.timestamp()
        for j in strings:
            text = values[j]
            if text is not None:
                text = str(text)
                texts[j][i] = interned.setdefault(text, text) if j in shared else text
        filled = i + 1
    if widths and filled:
        for j, width in widths.items():
            first = texts[j][0]
            texts[j][0] = first + " " * (width - len(first.encode()))
    frame = pd.DataFrame(block[:filled], columns=[names[j] for j in numeric], copy=False)
    for j in range(len(cols)):  # the other columns, each at its place
        if j in texts:
            frame.insert(j, names[j], texts[j][:filled])
        elif j in moments:
            stamps = pd.to_datetime(seconds[:filled, moments.index(j)], unit="s")
            frame.insert(j, names[j], stamps)
    return frame


def _value_labels(cols: Sequence[Column], names: Sequence[str]) -> dict[str, dict[float, str]]:
    return {
        name: {float(v.code): v.label for v in column.values}
        for column, name in zip(cols, names, strict=True)
        if column.values
    }


def string_widths(cols: Sequence[Column], rows: Iterable[Row]) -> dict[int, int]:
    """The widest value in bytes (at least 1) of each string column."""
    strings = [j for j, c in enumerate(cols) if c.type not in NUMERIC and c.type != "datetime"]
    widths = dict.fromkeys(strings, 1)
    cells = row_reader(cols)
    for row in rows:
        values = cells(row)
        for j in strings:
            value = values[j]
            if value is not None:
                size = len(str(value).encode())
                if size > widths[j]:
                    widths[j] = size
    return widths


def write_sav(
    path: Path,
    cols: Sequence[Column],
    rows: Callable[[], Iterable[Row]],
    *,
    title: str,
    chunk: int | None = None,
) -> None:
    """The `.sav` in chunks of `chunk` responses (see `savfile`): two passes over `rows`
    (a function that reads them afresh), the first for the string widths."""
    import pyreadstat

    size = chunk or savfile.CHUNK
    names = [c.sav_name for c in cols]
    widths = string_widths(cols, rows())
    options: dict[str, Any] = {
        "file_label": title[:64],
        "column_labels": [c.label for c in cols],
        "variable_value_labels": _value_labels(cols, names),
        "variable_measure": {
            name: MEASURES.get(c.type, "nominal") for c, name in zip(cols, names, strict=True)
        },
        "variable_format": {
            name: "F8.0" for c, name in zip(cols, names, strict=True) if c.type in WHOLE
        },
    }

    def frames() -> Iterator[pd.DataFrame]:
        source = iter(rows())
        while batch := list(itertools.islice(source, size)):
            yield _frame(cols, batch, names, len(batch), widths)

    def write(frame: object, part: Path) -> None:
        pyreadstat.write_sav(frame, str(part), **options)

    found = frames()
    first = next(found, None)
    if first is None:
        write(_frame(cols, [], names, 0), path)
        return
    savfile.write_chunked(path, itertools.chain([first], found), write)


def write_dta(
    path: Path,
    cols: Sequence[Column],
    rows: Callable[[], Iterable[Row]],
    *,
    count: int,
    title: str,
    chunk: int | None = None,
) -> None:
    """The `.dta` in chunks of `chunk` responses (see `dtafile`), or whole when a string is
    too long for Stata's `str#` (then memory grows with the study)."""
    import pyreadstat

    names = [c.dta_name for c in cols]
    options: dict[str, Any] = {
        "file_label": title[:DTA_MAX_LABEL],
        "column_labels": [c.label[:DTA_MAX_LABEL] for c in cols],
        "variable_value_labels": _value_labels(cols, names),
    }
    widths = string_widths(cols, rows())
    if not dtafile.splittable(widths.values()):
        pyreadstat.write_dta(_frame(cols, rows(), names, count), str(path), **options)
        return
    size = chunk or savfile.CHUNK

    def frames() -> Iterator[pd.DataFrame]:
        source = iter(rows())
        while batch := list(itertools.islice(source, size)):
            yield _frame(cols, batch, names, len(batch), widths)

    def write(frame: object, part: Path) -> None:
        pyreadstat.write_dta(frame, str(part), **options)

    found = frames()
    first = next(found, None)
    if first is None:
        write(_frame(cols, [], names, 0), path)
        return
    savfile.write_chunked(path, itertools.chain([first], found), write, dtafile.join)
