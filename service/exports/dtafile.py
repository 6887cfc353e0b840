"""Writing a large Stata `.dta` in chunks, as `savfile` does for SPSS.

Each chunk of responses is written by pyreadstat to a `.dta` of its own (format 118/119:
tagged sections, with a map of their offsets), with every string variable as wide in
every chunk as its widest value, by blank-padding the chunk's first value. The files are
joined: the first file's header and dictionary, every file's `<data>` rows in turn, the
first file's value labels; the number of observations and the offsets after the data are
corrected. Stata's `str#` values are NUL-padded and keep trailing blanks, so the padding
is taken off again: in each chunk's first row, a string field's trailing blanks become
NULs (stored answers never end in blanks: they are stripped when accepted).

Strings too long for `str#` (over 2045 bytes) are `strL`, stored apart from the rows and
numbered by row; such a file is not split (`splittable`), and is written whole.
"""

import struct
from collections.abc import Iterable
from pathlib import Path

STR_MAX = 2045
NUMERIC_BYTES = {65526: 8, 65527: 4, 65528: 4, 65529: 2, 65530: 1}


def splittable(widths: Iterable[int]) -> bool:
    """Whether strings of these byte widths are all `str#` (no `strL`)."""
    return all(w <= STR_MAX for w in widths)


def _tag(content: bytes, name: bytes, start: int = 0) -> tuple[int, int]:
    """The start and end of the bytes between `<name>` and `</name>`."""
    begin = content.index(b"<" + name + b">", start) + len(name) + 2
    return begin, content.index(b"</" + name + b">", begin)


class Parts:
    """The sections of one chunk file that the join needs."""

    def __init__(self, content: bytes) -> None:
        self.content = content
        if not content.startswith(b"<stata_dta><header><release>11"):
            raise ValueError("not a Stata 117-119 file")
        self.n_at, n_end = _tag(content, b"N")
        self.n_width = n_end - self.n_at
        self.rows = int.from_bytes(content[self.n_at : n_end], "little")
        map_at, _ = _tag(content, b"map")
        self.map_at = map_at
        self.offsets = list(struct.unpack_from("<14Q", content, map_at))
        types_at, types_end = _tag(content, b"variable_types")
        self.types = list(struct.unpack_from(f"<{(types_end - types_at) // 2}H", content, types_at))
        if any(t == 32768 for t in self.types):
            raise ValueError("a strL variable: the file cannot be split")
        self.data_at, self.data_end = _tag(content, b"data", self.offsets[9])
        strls_at, strls_end = _tag(content, b"strls", self.offsets[10])
        if strls_end != strls_at:
            raise ValueError("strL values: the file cannot be split")

    @property
    def dictionary(self) -> bytes:
        return self.content[self.offsets[2] : self.offsets[9]]

    @property
    def tail(self) -> bytes:
        return self.content[self.data_end :]

    def data(self) -> bytes:
        """The rows, with the first row's string padding turned back into NULs."""
        rows = bytearray(self.content[self.data_at : self.data_end])
        at = 0
        for kind in self.types:
            width = kind if kind <= STR_MAX else NUMERIC_BYTES[kind]
            if kind <= STR_MAX and rows:
                field = bytes(rows[at : at + width])
                kept = field.rstrip(b" \x00")
                rows[at : at + width] = kept + b"\x00" * (width - len(kept))
            at += width
        return bytes(rows)


def join(paths: Iterable[Path], target: Path) -> int:
    """Join chunk files written with one dictionary into `target`; returns the rows."""
    first: Parts | None = None
    total = grown = 0
    with target.open("wb") as out:
        for path in paths:
            part = Parts(path.read_bytes())
            if first is None:
                first = part
                out.write(part.content[: part.data_at])
            elif part.dictionary != first.dictionary or part.tail != first.tail:
                raise ValueError("the chunks' dictionaries differ")
            else:
                grown += part.data_end - part.data_at
            out.write(part.data())
            total += part.rows
            path.unlink()
        if first is None:
            raise ValueError("no chunks")
        out.write(first.tail)
        out.seek(first.n_at)
        out.write(total.to_bytes(first.n_width, "little"))
        offsets = [o + grown if i >= 10 else o for i, o in enumerate(first.offsets)]
        out.seek(first.map_at)
        out.write(struct.pack("<14Q", *offsets))
    return total
