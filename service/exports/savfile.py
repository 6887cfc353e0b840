"""Writing a large SPSS `.sav` in chunks, so that memory does not grow with the study.

pyreadstat writes a whole data frame at once. Here the rows are written in frames of
`CHUNK` responses, each to a `.sav` of its own with the same dictionary, and the files
are then joined: the header and dictionary of the first, the case data of every one in
turn, and the total number of cases written where the file holds it (the header, and the
64-bit count of the extension record of subtype 16). This is sound because an
uncompressed `.sav` stores each case as the same fixed number of 8-byte units after the
dictionary; for the dictionaries to be the same, every string variable is given the same
width in every chunk, the widest value's (found in a first pass), by padding the chunk's
first value with spaces, which is how SPSS stores every string anyway (a string is its
width, blank-padded; readers strip the blanks).

Each chunk's dictionary is checked to be byte for byte the first's before its cases are
appended, so a change in pyreadstat's output fails loudly instead of writing a broken file.
"""

import struct
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

CHUNK = 10_000
HEADER = 176
NCASES_AT = 80


def data_offset(content: bytes) -> tuple[int, int | None]:
    """Where the case data of an uncompressed, little-endian `.sav` begins (after the
    dictionary's termination record, type 999), and where the 64-bit case count of the
    extension record of subtype 16 is, if the file has one (it holds the count twice)."""
    if content[:4] not in (b"$FL2", b"$FL3"):
        raise ValueError("not an SPSS system file")
    at = HEADER
    count64: int | None = None

    def int32(offset: int) -> int:
        value: int = struct.unpack_from("<i", content, offset)[0]
        return value

    while True:
        kind = int32(at)
        if kind == 2:  # variable
            has_label, missing = int32(at + 8), int32(at + 12)
            at += 32
            if has_label:
                length = int32(at)
                at += 4 + (length + 3) // 4 * 4
            at += abs(missing) * 8
        elif kind == 3:  # value labels, then the variables they apply to (type 4)
            count = int32(at + 4)
            at += 8
            for _ in range(count):
                length = content[at + 8]
                at += 8 + (1 + length + 7) // 8 * 8
            if int32(at) != 4:
                raise ValueError("a value label record without its variables")
            at += 8 + 4 * int32(at + 4)
        elif kind == 6:  # documents
            at += 8 + 80 * int32(at + 4)
        elif kind == 7:  # extension
            subtype, size, count = int32(at + 4), int32(at + 8), int32(at + 12)
            if subtype == 16 and size == 8 and count == 2:
                count64 = at + 16 + 8
            at += 16 + size * count
        elif kind == 999:
            return at + 8, count64
        else:
            raise ValueError(f"unknown record type {kind} at byte {at}")


def _dictionary(content: bytes, start: int, count64: int | None) -> bytes:
    """The dictionary without the case count it holds."""
    if count64 is None:
        return content[HEADER:start]
    return content[HEADER:count64] + content[count64 + 8 : start]


def join(parts: Iterable[Path], target: Path) -> int:
    """Join chunk files written with one dictionary into `target`; returns the cases."""
    total = 0
    first: tuple[bytes, int | None] | None = None
    with target.open("wb") as out:
        for part in parts:
            content = part.read_bytes()
            start, count64 = data_offset(content)
            cases = struct.unpack_from("<i", content, NCASES_AT)[0]
            if first is None:
                first = (_dictionary(content, start, count64), count64)
                out.write(content[:start])
            elif _dictionary(content, start, count64) != first[0]:
                raise ValueError("the chunks' dictionaries differ")
            out.write(memoryview(content)[start:])
            total += cases
            part.unlink()
        if first is None:
            raise ValueError("no chunks")
        out.seek(NCASES_AT)
        out.write(struct.pack("<i", total))
        if first[1] is not None:
            out.seek(first[1])
            out.write(struct.pack("<q", total))
    return total


def write_chunked(
    target: Path,
    chunks: Iterator[object],
    write: Callable[[object, Path], None],
    joiner: Callable[[Iterable[Path], Path], int] = join,
) -> None:
    """Write each chunk (a frame) with `write` to a scratch file, then join them (with
    `joiner`: this module's for `.sav`, `dtafile.join` for `.dta`)."""
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        parts = []
        for i, chunk in enumerate(chunks):
            part = Path(scratch) / f"part-{i:06d}{target.suffix}"
            write(chunk, part)
            parts.append(part)
        joiner(iter(parts), target)
