"""The fast engine of ACTS CSV reading: clean numeric files parsed by numpy in one pass.

Most event files are machine-written and clean: a plain header, then digits, signs,
points and exponents, one row per line, every row as long as the header. Such a file is
recognised from its bytes (vectorised checks, no per-row Python) and parsed by
``numpy.loadtxt`` straight into the schema's dtypes, without pandas' per-call and
per-column overhead. Anything else (quotes, spaces, ``nan``, empty fields, blank lines,
CRLF, unknown or string columns, values that could overflow, a float in an integer
column, a minus in an unsigned one, a header-only file) returns None, and the caller
runs the careful pandas reader, which accepts the same values and names file, line and
column for the ones it refuses. So this engine decides nothing about errors: it either
gives exactly the careful reader's arrays or steps aside.

Why the byte checks: ``loadtxt`` parses an integer token that is not an integer through
float (``1.5`` -> 1, ``-1`` -> 2**64-1 in a uint64 column) with only a deprecation
warning, and warnings filters are process-wide, not something a reader on a worker
thread may change. The checks make those tokens impossible before ``loadtxt`` runs:
integer fields hold only digits and (in signed columns) a sign, and are short enough
never to overflow their dtype. Floats are parsed to double and cast to float32, as the
careful reader does.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .schema import F32, I32, I64, STR, U32, U64, TableSchema

__all__ = ["CleanFile", "open_clean", "parse_clean"]

_HEADER = re.compile(rb"[A-Za-z_][A-Za-z0-9_]*(?:,[A-Za-z_][A-Za-z0-9_]*)*")
#: The class of every byte of a clean body: separators, integer characters, characters
#: only a float may hold (an integer field with one would go through float), minus, and
#: everything else (quotes, spaces, letters, CR: not this engine's).
_COMMA, _NEWLINE, _DIGIT, _FLOAT_ONLY, _MINUS, _OTHER = range(6)
_CLASS = np.full(256, _OTHER, dtype=np.uint8)
for _chars, _kind in ((b",", _COMMA), (b"\n", _NEWLINE), (b"0123456789+", _DIGIT),
                      (b".eE", _FLOAT_ONLY), (b"-", _MINUS)):
    _CLASS[np.frombuffer(_chars, dtype=np.uint8)] = _kind
#: Longest integer token (sign included) that cannot overflow its dtype.
_SAFE_LENGTH = {U64: 19, I64: 18, U32: 9, I32: 9}
_SIGNED = {I64, I32}


def _row(n: int) -> np.ndarray:
    """The separator classes of one row of ``n`` fields."""
    row = np.full(n, _COMMA, dtype=np.uint8)
    row[-1] = _NEWLINE
    return row


@dataclass(frozen=True)
class CleanFile:
    """A file whose header is plain names: its header and its bytes, read once."""

    path: Path
    header: list[str]
    data: bytes
    body_start: int  # offset of the first data line


def open_clean(path: Path) -> CleanFile | None:
    """The file's header and bytes when the header line is plain comma-separated names
    (no duplicates), else None (missing, empty or unusual files: the careful reader's)."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    end = data.find(b"\n")
    if end <= 0:
        return None
    line = data[:end]
    if not _HEADER.fullmatch(line):
        return None
    header = line.decode("ascii").split(",")
    if len(set(header)) != len(header):
        return None
    return CleanFile(path, header, data, end + 1)


def parse_clean(clean: CleanFile, schema: TableSchema) -> dict[str, np.ndarray] | None:
    """Every schema column of a clean file in its schema dtype, or None when the file is
    not clean enough for this engine (the careful reader then runs). The file's columns
    outside the schema are skipped, as the careful reader drops them: their bytes must
    still be clean, but they are neither converted nor checked as numbers."""
    header = clean.header
    wanted = [j for j, c in enumerate(header) if c in schema.columns]
    if not wanted or any(schema.columns[header[j]] == STR for j in wanted):
        return None
    # a skipped column is checked as a float one: any clean token is fine there
    dtypes = [schema.columns.get(c, F32) for c in header]
    raw = clean.data[clean.body_start:]
    if raw[-1:] != b"\n":  # a last line without its newline
        raw += b"\n"
    kind = _CLASS[np.frombuffer(raw, dtype=np.uint8)]
    if (kind == _OTHER).any():
        return None
    # Every row has the header's number of fields: commas, then a newline, n per row
    # (a blank line or a header-only file breaks this or leaves an empty field below).
    ends = np.flatnonzero(kind <= _NEWLINE)  # where each field ends
    n = len(header)
    if ends.size % n or not (kind[ends].reshape(-1, n) == _row(n)).all():
        return None
    special = np.flatnonzero(kind >= _FLOAT_ONLY)
    field = np.searchsorted(ends, special) % n
    minus = kind[special] == _MINUS
    points = np.bincount(field[~minus], minlength=n)  # float-only characters per column
    # A float column written as integers only ("0", "-0") is what pandas reads as int64
    # and then casts (-0 -> +0): parse it the same way.
    parsed = [I64 if d == F32 and not points[j] else d for j, d in enumerate(dtypes)]
    integer = np.array([d != F32 for d in parsed])
    negative = np.array([d == F32 or d in _SIGNED for d in parsed])
    if (points[integer] > 0).any() or (minus & ~negative[field]).any():
        return None  # a float token in an integer column, a minus in an unsigned one
    widths = (np.diff(ends, prepend=-1) - 1).reshape(-1, n)  # characters of each field
    if (widths == 0).any():
        return None
    for j in wanted:
        if parsed[j] != F32 and widths[:, j].max() > _SAFE_LENGTH[parsed[j]]:
            return None  # could overflow: the careful reader range-checks it
    text = raw.decode("ascii")
    names = [header[j] for j in wanted]
    try:
        table = np.loadtxt(io.StringIO(text), delimiter=",", comments=None, ndmin=1,
                           usecols=wanted,
                           dtype=np.dtype([(header[j], parsed[j]) for j in wanted]))
    except ValueError:
        return None
    if table.shape[0] != widths.shape[0]:
        return None
    return {c: table[c].astype(schema.columns[c]) for c in names}
