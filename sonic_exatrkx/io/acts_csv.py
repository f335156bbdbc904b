"""ACTS CSV event files (``event%09d-<stem>.csv``): read, validate, write atomically.

Reading is one `pandas.read_csv` pass (the fast path); only when a column does not
convert cleanly does a second, string-only diagnostic pass run to find the first bad
line and column, so good files pay nothing for the error reporting.

Decisions (see also the module docstrings of `errors` and `schema`):

* A header-only file is a valid event with zero rows (an event can have no space
  points); a 0-byte file, or one holding only blank lines, is `EmptyFileError`
  (a writer that crashed before its header is not an event).
* Columns not in the schema are dropped (logged at DEBUG); optional schema columns
  that a file lacks stay absent, so writing a table back gives the same columns.
* Integer columns are parsed as 64-bit integers (uint64 when the values need it) and
  range-checked; they never pass through float, so geometry ids > 2**53 are exact and
  a negative value in an unsigned column is an error, not a wrapped-around number.
* Float columns are float32 (as ACTS writes them) and are written in the shortest
  decimal form that reads back to the same float32, so read -> write -> read is exact.
* Float columns in `schema.FINITE_COLUMNS` (positions, momenta, space point
  variances) must be finite; NaN / inf there is `NonFiniteValueError`.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
import warnings
from collections.abc import Callable, Iterable, Mapping
from os import PathLike
from pathlib import Path
from typing import Literal, TextIO

import numpy as np
import pandas as pd

from ._atomic import atomic_write_text
from .errors import (
    BadReferenceError,
    EmptyFileError,
    EventDirectoryError,
    InputFormatError,
    MissingColumnError,
    MissingEventFileError,
    NonFiniteValueError,
)
from .schema import (
    F32,
    FINITE_COLUMNS,
    HITS,
    HITS_SPLIT,
    I32,
    I64,
    MEASUREMENT_SIMHIT_MAP,
    MEASUREMENTS,
    PARTICLE_ID_PARTS,
    PARTICLES,
    SPACEPOINT,
    SPACEPOINT_SINGLE,
    STR,
    TRACKS,
    U32,
    U64,
    TableSchema,
)

__all__ = [
    "attach_truth",
    "combine_particle_id",
    "event_path",
    "hits_schema",
    "list_events",
    "read_event",
    "read_hits",
    "read_measurement_simhit_map",
    "read_measurements",
    "read_particles",
    "read_spacepoints",
    "read_table",
    "read_tracks_csv",
    "spacepoint_schema",
    "split_particle_id",
    "write_event",
    "write_table",
    "write_tracks_csv",
]

log = logging.getLogger(__name__)

StrPath = str | PathLike[str]
#: What to do with NaN/inf in `schema.FINITE_COLUMNS`: raise `NonFiniteValueError`
#: (default), drop those rows (logged; the DataFrame index keeps the file row
#: positions), or keep them.
NonFinite = Literal["raise", "drop", "keep"]

_EVENT_FILE = re.compile(r"^event(\d+)-(.+)\.csv$")
# Tokens read as NaN in numeric columns (never in string columns such as local_key).
_NA_TOKENS = ["", "nan", "NaN", "NAN", "-nan", "-NaN", "NA", "N/A"]
# Pixel space points may leave the second measurement empty; it gets the first's value.
_FILL_FROM = {"measurement_id_2": "measurement_id_1", "geometry_id_2": "geometry_id_1"}
_INT_RANGE = {
    U64: (0, 2**64 - 1),
    I64: (-(2**63), 2**63 - 1),
    U32: (0, 2**32 - 1),
    I32: (-(2**31), 2**31 - 1),
}
_DTYPE_NAME = {U64: "uint64", I64: "int64", U32: "uint32", I32: "int32", F32: "float32"}

# ActsFatras::Barcode before ACTS v44 (acts-project/acts,
# Fatras/include/ActsFatras/EventData/Barcode.hpp) is an
# Acts::MultiIndex<uint64_t, 12, 12, 16, 8, 16>; MultiIndex puts level 0 in the most
# significant bits (Core/include/Acts/Utilities/MultiIndex.hpp). So, from the top:
#   vertex primary  12 bits [52, 64)    vertex secondary 12 bits [40, 52)
#   particle        16 bits [24, 40)    generation        8 bits [16, 24)
#   sub-particle    16 bits [ 0, 16)
# e.g. 4503599644147712 = 2**52 + 2**24 is vp=1, particle=1 (traccc mock_data hits).
BARCODE_LAYOUT: tuple[tuple[str, int, int], ...] = (
    ("particle_id_pv", 52, 12),
    ("particle_id_sv", 40, 12),
    ("particle_id_part", 24, 16),
    ("particle_id_gen", 16, 8),
    ("particle_id_subpart", 0, 16),
)


# --------------------------------------------------------------------------- paths


def event_path(directory: StrPath, event: int, stem: str) -> Path:
    """Path of one event file, ``<directory>/event%09d-<stem>.csv`` as ACTS names it."""
    if event < 0:
        raise ValueError(f"event number must be >= 0, got {event}")
    return Path(directory) / f"event{event:09d}-{stem}.csv"


def _event_files(directory: StrPath, looking_for: str) -> dict[str, set[int]]:
    """Map stem -> event numbers of the event files in `directory` (checked to exist)."""
    d = Path(directory)
    if not d.exists():
        raise EventDirectoryError(
            d, f"event directory does not exist (looked for {looking_for} files)"
        )
    if not d.is_dir():
        raise EventDirectoryError(
            d, f"is not a directory (looked for {looking_for} files inside it)"
        )
    stems: dict[str, set[int]] = {}
    for name in os.listdir(d):
        match = _EVENT_FILE.match(name)
        if match:
            stems.setdefault(match[2], set()).add(int(match[1]))
    return stems


def list_events(directory: StrPath, stem: str = "spacepoint") -> list[int]:
    """Sorted event numbers that have an ``event%09d-<stem>.csv`` file in `directory`.

    Raises `EventDirectoryError` for a missing path, a path that is not a directory, or
    a directory without such files (the message lists the stems that are there, which
    catches e.g. asking for "spacepoints" in a directory of "spacepoint" files).
    """
    pattern = f"event*-{stem}.csv"
    stems = _event_files(directory, pattern)
    events = sorted(stems.get(stem, ()))
    if not events:
        present = ", ".join(sorted(stems)) if stems else "none (no event*-*.csv files at all)"
        raise EventDirectoryError(
            Path(directory), f"no {pattern} files; event file stems present: {present}"
        )
    return events


def _event_from_name(path: Path) -> int | None:
    match = _EVENT_FILE.match(path.name)
    return int(match[1]) if match else None


# ------------------------------------------------------------------ line numbers


def _content_lines(path: Path) -> np.ndarray:
    """1-based numbers of the non-blank lines of a file (header first).

    pandas skips blank and whitespace-only lines, so data row i is the (i+2)-th
    content line; counting them here makes reported line numbers match an editor's.
    Only used on the error path.
    """
    data = np.frombuffer(path.read_bytes(), dtype=np.uint8)
    newline = data == 10
    ends = np.flatnonzero(newline)
    starts = np.concatenate(([0], ends + 1))
    ends = np.concatenate((ends, [data.size]))
    content = ~(np.isin(data, (32, 9, 13)) | newline)
    cum = np.concatenate(([0], np.cumsum(content)))
    return np.flatnonzero(cum[ends] - cum[starts] > 0) + 1


def _line_of_row(path: Path | None, row: int) -> int:
    """1-based file line of 0-based data row `row` (header = line 1)."""
    if path is not None and path.is_file():
        lines = _content_lines(path)
        if row + 1 < lines.size:
            return int(lines[row + 1])
    return row + 2


def _source_path(df: pd.DataFrame) -> Path | None:
    src = df.attrs.get("path")
    return Path(src) if src else None


# ------------------------------------------------------------------------ header


def _read_header(path: Path, event: int | None) -> list[str]:
    if not path.is_file():
        raise MissingEventFileError(path, f"file not found: {path}", event=event)
    if path.stat().st_size == 0:
        raise EmptyFileError(
            path, "file is empty (0 bytes), expected a CSV header line", event=event
        )
    try:
        header = pd.read_csv(path, nrows=0, index_col=False)
    except pd.errors.EmptyDataError:
        raise EmptyFileError(
            path, "file has only blank lines, expected a CSV header line", event=event
        ) from None
    return [str(c) for c in header.columns]


def _check_columns(
    path: Path, header: list[str], schema: TableSchema, event: int | None, what: str = ""
) -> list[str]:
    """Schema columns present in `header` (schema order); raise if required ones miss."""
    unknown = [c for c in header if c not in schema.columns]
    missing = [c for c in schema.required if c not in header]
    if missing:
        suggestions = {}
        for name in missing:
            close = difflib.get_close_matches(name, unknown, n=1, cutoff=0.6)
            if close:
                suggestions[name] = close[0]
        raise MissingColumnError(path, missing, suggestions, header, event=event, what=what)
    if unknown:
        log.debug("%s: dropping columns not in the %s schema: %s", path.name, schema.kind,
                  ", ".join(unknown))
    return [c for c in schema.columns if c in header]


# ----------------------------------------------------------------- value checks


def _exceeds(digits: pd.Series, limit: int) -> np.ndarray:
    """Digit strings (no sign, no leading zeros) whose value is > `limit`, compared as
    text so arbitrarily long numbers never overflow."""
    lim = str(limit)
    length = digits.str.len()
    return ((length > len(lim)) | ((length == len(lim)) & (digits > lim))).to_numpy(bool)


def _bad_tokens(tokens: pd.Series, dtype: np.dtype, allow_empty: bool) -> tuple[np.ndarray, str]:
    """Mask of raw string tokens that do not parse as `dtype`, and the expected form."""
    text = tokens.astype(object).fillna("").astype(str).str.strip()
    name = _DTYPE_NAME[dtype]
    if dtype == F32:
        number = pd.to_numeric(text, errors="coerce")
        bad = number.isna().to_numpy(bool) & ~text.isin(_NA_TOKENS).to_numpy(bool)
        return bad, name
    lo, hi = _INT_RANGE[dtype]
    fmt_ok = text.str.fullmatch(r"[+-]?\d+").fillna(False).to_numpy(bool)
    negative = text.str.startswith("-").to_numpy(bool)
    digits = text.str.lstrip("+-").str.lstrip("0").where(fmt_ok, "")
    too_big = np.where(negative, _exceeds(digits, -lo), _exceeds(digits, hi))
    bad = ~fmt_ok | too_big
    if allow_empty:
        bad &= text.to_numpy(str) != ""
    return bad, name


def _describe_bad(token: str, dtype: np.dtype) -> str:
    """Why one token failed, for the error message."""
    name = _DTYPE_NAME[dtype]
    stripped = token.strip()
    if stripped == "":
        return f"empty value, expected {name}"
    if dtype != F32 and re.fullmatch(r"[+-]?\d+", stripped):
        if stripped.startswith("-") and _INT_RANGE[dtype][0] == 0:
            return f"cannot parse '{token}' as {name}: negative value in an unsigned column"
        lo, hi = _INT_RANGE[dtype]
        return f"cannot parse '{token}' as {name}: out of range [{lo}, {hi}]"
    return f"cannot parse '{token}' as {name}"


def _diagnose(
    path: Path, columns: list[str], schema: TableSchema, event: int | None, failed: str
) -> InputFormatError:
    """Second pass over raw strings: the first (line, column) that does not parse."""
    raw = pd.read_csv(
        path, usecols=columns, dtype=str, keep_default_na=False, na_filter=False,
        index_col=False, engine="c",
    )
    best: tuple[int, int, str] | None = None
    for order, column in enumerate(columns):
        dtype = schema.columns[column]
        if dtype == STR:
            continue
        bad, _ = _bad_tokens(raw[column], dtype, allow_empty=column in _FILL_FROM)
        rows = np.flatnonzero(bad)
        if rows.size and (best is None or (rows[0], order) < (best[0], best[1])):
            best = (int(rows[0]), order, column)
    if best is None:  # pandas refused a column whose every token looks valid
        name = _DTYPE_NAME[schema.columns[failed]]
        return InputFormatError(path, f"values could not be read as {name}", column=failed,
                                expected=name, event=event)
    row, _, column = best
    dtype = schema.columns[column]
    return InputFormatError(
        path,
        _describe_bad(str(raw[column].iloc[row]), dtype),
        row=_line_of_row(path, row),
        column=column,
        expected=_DTYPE_NAME[dtype],
        event=event,
    )


def _field_count_error(path: Path, n_fields: int, event: int | None) -> InputFormatError | None:
    """The first row whose number of fields differs from the header's, found by counting
    separators per line (ACTS files are never quoted); None if every row matches."""
    data = np.frombuffer(path.read_bytes(), dtype=np.uint8)
    newline = data == 10
    ends = np.flatnonzero(newline)
    starts = np.concatenate(([0], ends + 1))
    ends = np.concatenate((ends, [data.size]))
    content = ~(np.isin(data, (32, 9, 13)) | newline)
    ccum = np.concatenate(([0], np.cumsum(content)))
    comma = np.concatenate(([0], np.cumsum(data == ord(","))))
    fields = comma[ends] - comma[starts] + 1
    lines = np.flatnonzero(ccum[ends] - ccum[starts] > 0)[1:]  # content lines after header
    bad = lines[fields[lines] != n_fields]
    if not bad.size:
        return None
    line = int(bad[0])
    found = int(fields[line])
    hint = " (truncated line?)" if found < n_fields else ""
    return InputFormatError(
        path,
        f"expected {n_fields} fields (as in the header), found {found}{hint}",
        row=line + 1,
        expected=f"{n_fields} fields",
        event=event,
    )


# ----------------------------------------------------------------- conversions


def _ints_from_parsed(values: pd.Series, dtype: np.dtype) -> np.ndarray | None:
    """Exact integer array from what pandas inferred, or None if it needs diagnosis
    (inferred float/object, or a value out of `dtype`'s range)."""
    arr = values.to_numpy()
    if arr.size == 0:
        return np.empty(0, dtype=dtype)
    if arr.dtype.kind not in "iu":
        return None
    lo, hi = _INT_RANGE[dtype]
    if int(arr.min()) < lo or int(arr.max()) > hi:
        return None
    return arr.astype(dtype)


def _floats_from_parsed(values: pd.Series) -> np.ndarray | None:
    """float32 array, or None if pandas found a non-numeric token (object/bool column)."""
    arr = values.to_numpy()
    if arr.size == 0:
        return np.empty(0, dtype=F32)
    if arr.dtype.kind not in "iuf":
        return None
    with np.errstate(over="ignore"):
        return arr.astype(F32)


def _filled_ids(values: pd.Series, fill: np.ndarray | None) -> np.ndarray | None:
    """uint64 ids from strings where empty means "same as `fill`" (pixel space points)."""
    text = values.astype(object).fillna("").astype(str).str.strip()
    bad, _ = _bad_tokens(text, U64, allow_empty=True)
    if bad.any():
        return None
    empty = (text == "").to_numpy(bool)
    out = text.where(~empty, "0").to_numpy(str).astype(np.uint64)
    out[empty] = fill[empty] if fill is not None else 0
    return out


def _nonfinite_rows(frame: dict[str, np.ndarray]) -> tuple[np.ndarray, tuple[int, str] | None]:
    """Mask of rows with NaN/inf in a must-be-finite column, and the first (row, column)."""
    n = len(next(iter(frame.values()))) if frame else 0
    mask = np.zeros(n, dtype=bool)
    best: tuple[int, str] | None = None
    for column, arr in frame.items():
        if column not in FINITE_COLUMNS or arr.dtype.kind != "f":
            continue
        bad = ~np.isfinite(arr)
        rows = np.flatnonzero(bad)
        if rows.size:
            mask |= bad
            if best is None or rows[0] < best[0]:
                best = (int(rows[0]), column)
    return mask, best


def _nonfinite_error(
    path: Path, frame: dict[str, np.ndarray], best: tuple[int, str], event: int | None
) -> NonFiniteValueError:
    row, column = best
    return NonFiniteValueError(
        path,
        f"non-finite value {frame[column][row]}, expected a finite float32",
        row=_line_of_row(path, row),
        column=column,
        expected="finite float32",
        event=event,
    )


# ------------------------------------------------------------------------ reading


def _read_validated(
    path: Path,
    schema: TableSchema,
    header: list[str],
    event: int | None,
    what: str = "",
    nonfinite: NonFinite = "raise",
) -> pd.DataFrame:
    present = _check_columns(path, header, schema, event, what)
    strings = [c for c in present if schema.columns[c] == STR]
    dtype: dict[str, object] = {c: object for c in strings}
    na_values = {c: _NA_TOKENS for c in present if c not in dtype}
    try:
        with warnings.catch_warnings():
            # pandas only warns (and drops data) when the first row is longer than
            # the header; make that an error like every other over-long row.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            # No `usecols`: with it pandas silently ignores over-long rows.
            raw = pd.read_csv(
                path, dtype=dtype, keep_default_na=False, na_values=na_values,
                index_col=False, low_memory=False, engine="c",
            )
    except (pd.errors.ParserError, pd.errors.ParserWarning) as exc:
        error = _field_count_error(path, len(header), event)
        raise error or InputFormatError(path, f"malformed CSV: {exc}", event=event) from None
    # pandas pads rows with too few fields with NaN, silently; such a row (e.g. the
    # last line of a truncated file) leaves the last column empty, so only then count.
    if len(raw) and raw[raw.columns[-1]].isna().any():
        error = _field_count_error(path, len(header), event)
        if error is not None:
            raise error

    columns: dict[str, np.ndarray] = {}
    for column in present:
        target = schema.columns[column]
        if target == STR:
            columns[column] = raw[column].astype(object).fillna("").to_numpy(object)
            continue
        if target == F32:
            arr = _floats_from_parsed(raw[column])
        else:
            arr = _ints_from_parsed(raw[column], target)
        if arr is None and column in _FILL_FROM:
            # Empty cells (pixel space points) made pandas infer float: re-read this
            # column as text so the ids stay exact, and fill the empty ones.
            text = pd.read_csv(path, usecols=[column], dtype=str, keep_default_na=False,
                               na_filter=False, index_col=False, engine="c")[column]
            arr = _filled_ids(text, columns.get(_FILL_FROM[column]))
        if arr is None:
            raise _diagnose(path, present, schema, event, column)
        columns[column] = arr

    if nonfinite not in ("raise", "drop", "keep"):
        raise ValueError(f"nonfinite must be 'raise', 'drop' or 'keep', got {nonfinite!r}")
    bad, first = _nonfinite_rows(columns) if nonfinite != "keep" else (None, None)
    if first is not None and nonfinite == "raise":
        raise _nonfinite_error(path, columns, first, event)
    df = pd.DataFrame(columns, columns=present)
    df = df.astype({c: schema.columns[c] for c in present})
    if first is not None:  # nonfinite == "drop"
        log.warning(
            "%s: dropping %d of %d rows with non-finite values (first: line %d, column '%s')",
            path.name, int(bad.sum()), len(df), _line_of_row(path, first[0]), first[1],
        )
        df = df[~bad]
    df.attrs["path"] = str(path)
    df.attrs["event"] = event
    return df


def read_table(
    path: StrPath, schema: TableSchema, *, event: int | None = None, nonfinite: NonFinite = "raise"
) -> pd.DataFrame:
    """Read one CSV file into a DataFrame with exactly the schema's dtypes.

    Columns: the schema columns present in the file, in schema order (unknown ones are
    dropped). `event` only labels errors; by default it is taken from the file name.
    ``df.attrs["path"]`` remembers the source file so later cross-table checks
    (`attach_truth`) can name the file and line at fault. `nonfinite`: see `NonFinite`
    (real ACTS-Fatras TrackML output has hits with NaN positions).
    """
    path = Path(path)
    if event is None:
        event = _event_from_name(path)
    return _read_validated(path, schema, _read_header(path, event), event, nonfinite=nonfinite)


def spacepoint_schema(df_or_columns: pd.DataFrame | Iterable[str]) -> TableSchema:
    """The space point variant a table (or header) belongs to: two-measurement
    `SPACEPOINT` if it has measurement_id_1/_2, else single-measurement."""
    columns = set(df_or_columns.columns if isinstance(df_or_columns, pd.DataFrame)
                  else df_or_columns)
    if {"measurement_id_1", "measurement_id_2"} & columns:
        return SPACEPOINT
    return SPACEPOINT_SINGLE


def hits_schema(df_or_columns: pd.DataFrame | Iterable[str]) -> TableSchema:
    """`HITS` (one packed particle_id) or `HITS_SPLIT` (ACTS v44+ split barcode)."""
    columns = set(df_or_columns.columns if isinstance(df_or_columns, pd.DataFrame)
                  else df_or_columns)
    if "particle_id" not in columns and set(PARTICLE_ID_PARTS) & columns:
        return HITS_SPLIT
    return HITS


def read_spacepoints(
    path: StrPath, *, event: int | None = None, nonfinite: NonFinite = "raise"
) -> pd.DataFrame:
    """Space points, in the variant the header shows (two-measurement or single).

    Pixel space points written with an empty ``measurement_id_2`` (``geometry_id_2``)
    get ``measurement_id_1`` (``geometry_id_1``) repeated, the other convention ACTS
    uses for them; any written value (including 0 or the 2**64-1 "none" sentinel) is
    kept as read.
    """
    path = Path(path)
    if event is None:
        event = _event_from_name(path)
    header = _read_header(path, event)
    if {"measurement_id_1", "measurement_id_2", "measurement_id"} & set(header):
        schema = spacepoint_schema(header)
    else:
        # Neither variant's id column: report against the variant whose id name is
        # closest to a header name, so the "did you mean" hint points at the typo.
        def closeness(name: str) -> float:
            ratios = [difflib.SequenceMatcher(None, name, h).ratio() for h in header]
            return max(ratios, default=0.0)

        two = closeness("measurement_id_1") > closeness("measurement_id")
        schema = SPACEPOINT if two else SPACEPOINT_SINGLE
    return _read_validated(path, schema, header, event, "space point ", nonfinite)


def read_hits(
    path: StrPath, *, event: int | None = None, nonfinite: NonFinite = "raise"
) -> pd.DataFrame:
    """Simulated hits; keeps a single ``particle_id`` or the split ``particle_id_*``
    columns as the file has them (see `combine_particle_id`)."""
    path = Path(path)
    if event is None:
        event = _event_from_name(path)
    header = _read_header(path, event)
    return _read_validated(path, hits_schema(header), header, event, nonfinite=nonfinite)


def read_particles(
    path: StrPath, *, event: int | None = None, nonfinite: NonFinite = "raise"
) -> pd.DataFrame:
    """Particles (`PARTICLES` columns). A file with only the split barcode columns
    gets them packed into ``particle_id`` (`combine_particle_id`)."""
    path = Path(path)
    if event is None:
        event = _event_from_name(path)
    header = _read_header(path, event)
    if "particle_id" in header or not set(PARTICLE_ID_PARTS) & set(header):
        return _read_validated(path, PARTICLES, header, event, nonfinite=nonfinite)
    split = TableSchema(
        "particles",
        {**{c: U32 for c in PARTICLE_ID_PARTS},
         **{c: t for c, t in PARTICLES.columns.items() if c != "particle_id"}},
    )
    df = _read_validated(path, split, header, event, nonfinite=nonfinite)
    ids = combine_particle_id(df)
    df = df.drop(columns=list(PARTICLE_ID_PARTS))
    df.insert(0, "particle_id", ids)
    df.attrs.update(path=str(path), event=event)
    return df


def read_measurements(
    path: StrPath, *, event: int | None = None, nonfinite: NonFinite = "raise"
) -> pd.DataFrame:
    """Measurements; ``local_key`` is kept as the exact string in the file ("" when
    empty, "unknown", or a raw control byte as some ACTS versions write it)."""
    return read_table(path, MEASUREMENTS, event=event, nonfinite=nonfinite)


def read_measurement_simhit_map(
    path: StrPath, *, event: int | None = None, nonfinite: NonFinite = "raise"
) -> pd.DataFrame:
    """measurement_id -> hit_id links (hit_id = 0-based row in the hits file)."""
    return read_table(path, MEASUREMENT_SIMHIT_MAP, event=event, nonfinite=nonfinite)


# ------------------------------------------------------------------------ barcodes


def combine_particle_id(df: pd.DataFrame) -> np.ndarray:
    """Packed uint64 ACTS barcode per row, from ``particle_id`` or the split columns.

    Split values that do not fit their field (see `BARCODE_LAYOUT`) raise ValueError:
    newer ACTS widened the fields, and silently truncating would merge particles.
    """
    if "particle_id" in df.columns:
        return df["particle_id"].to_numpy(dtype=U64)
    missing = [c for c in PARTICLE_ID_PARTS if c not in df.columns]
    if missing:
        raise ValueError(f"no particle_id column and missing split columns {missing}")
    packed = np.zeros(len(df), dtype=U64)
    for column, shift, bits in BARCODE_LAYOUT:
        values = df[column].to_numpy()
        if values.dtype.kind not in "iu":
            raise ValueError(f"{column} must be integer, got {values.dtype}")
        if values.size and (int(values.min()) < 0 or int(values.max()) >= 1 << bits):
            raise ValueError(
                f"{column} values must be in [0, {(1 << bits) - 1}] to pack into the "
                f"{bits}-bit barcode field; found [{int(values.min())}, {int(values.max())}]"
            )
        packed |= values.astype(U64) << U64.type(shift)
    return packed


def split_particle_id(particle_id: np.ndarray | pd.Series) -> pd.DataFrame:
    """Inverse of `combine_particle_id`: the five ``particle_id_*`` uint32 columns."""
    ids = np.asarray(particle_id, dtype=U64)
    return pd.DataFrame(
        {
            column: ((ids >> U64.type(shift)) & U64.type((1 << bits) - 1)).astype(U32)
            for column, shift, bits in BARCODE_LAYOUT
        }
    )


# ------------------------------------------------------------------------ writing


def _column_for_write(values: pd.Series, dtype: np.dtype, column: str) -> np.ndarray:
    """One column cast to its schema dtype for writing (or ValueError).

    pandas writes float columns through numpy's ``astype(str)``, which prints float32
    in the shortest form that parses back to the same float32 ("0.1", not the
    17-digit double expansion); the round-trip tests pin this down.
    """
    arr = values.to_numpy()
    if dtype == STR:
        return values.astype(object).where(values.notna(), "").astype(str).to_numpy(object)
    if dtype == F32:
        if arr.dtype.kind not in "iufb":
            raise ValueError(f"column '{column}' must be numeric, got {arr.dtype}")
        return arr.astype(F32)
    if arr.dtype.kind not in "iub":
        raise ValueError(
            f"column '{column}' must hold integers for {_DTYPE_NAME[dtype]}, got {arr.dtype}"
            " (ids never go through float)"
        )
    lo, hi = _INT_RANGE[dtype]
    if arr.size and (int(arr.min()) < lo or int(arr.max()) > hi):
        raise ValueError(
            f"column '{column}' has values outside [{lo}, {hi}] for {_DTYPE_NAME[dtype]}"
        )
    return arr.astype(dtype)


def write_table(path: StrPath, df: pd.DataFrame, schema: TableSchema) -> None:
    """Write `df` as a CSV file with the schema's columns in schema order, atomically.

    Optional columns absent from `df` are left out (the file keeps the table's variant);
    other columns of `df` are ignored. The file appears complete or not at all.
    """
    path = Path(path)
    missing = [c for c in schema.required if c not in df.columns]
    if missing:
        raise MissingColumnError(path, missing, {}, [str(c) for c in df.columns],
                                 row=None, what="(in the table to write) ")
    columns = [c for c in schema.columns if c in df.columns]
    typed = pd.DataFrame(
        {c: _column_for_write(df[c], schema.columns[c], c) for c in columns}, columns=columns
    )

    def write(handle: TextIO) -> None:
        typed.to_csv(handle, index=False, lineterminator="\n", na_rep="nan")

    atomic_write_text(path, write)


def write_tracks_csv(path: StrPath, track_ids: np.ndarray | Iterable[int]) -> None:
    """Track label per space point as ``spacepoint_id,track_id`` (row i = space point i)."""
    ids = np.asarray(track_ids)
    if ids.ndim != 1:
        raise ValueError(f"track_ids must be 1-D, got shape {ids.shape}")
    if ids.size and ids.dtype.kind not in "iu":
        raise ValueError(f"track_ids must be integers, got {ids.dtype}")
    df = pd.DataFrame({"spacepoint_id": np.arange(ids.size, dtype=I64),
                       "track_id": ids.astype(I64)})
    write_table(path, df, TRACKS)


def read_tracks_csv(
    path: StrPath, *, event: int | None = None, nonfinite: NonFinite = "raise"
) -> np.ndarray:
    """Track label per space point (int64, index = spacepoint_id), from any row order.

    The spacepoint ids must be exactly 0..N-1 once each; a gap or duplicate is an
    `InputFormatError` naming the line.
    """
    path = Path(path)
    df = read_table(path, TRACKS, event=event)
    return _tracks_by_spacepoint(
        df["spacepoint_id"].to_numpy(), df["track_id"].to_numpy(), path, event
    )


def _tracks_by_spacepoint(
    spacepoint: np.ndarray,
    track: np.ndarray,
    path: Path | None,
    event: int | None,
    *,
    lines: bool = True,
) -> np.ndarray:
    """Track ids reordered by spacepoint id; the ids must be 0..N-1 exactly once.
    `lines`: report CSV line numbers (False for ROOT, which has no lines)."""
    order = np.argsort(spacepoint, kind="stable")
    wrong = np.flatnonzero(spacepoint[order] != np.arange(spacepoint.size))
    if wrong.size:
        k = int(wrong[0])
        row = int(order[k])
        raise InputFormatError(
            path,
            f"spacepoint_id {int(spacepoint[row])} breaks the sequence 0..{spacepoint.size - 1}"
            f" (each id exactly once; id {k} is missing or duplicated)"
            + ("" if lines else f" in event {event}, entry position {row}"),
            row=_line_of_row(path, row) if lines else None,
            column="spacepoint_id",
            expected=f"ids 0..{spacepoint.size - 1} once each",
            event=event,
        )
    out = np.empty(spacepoint.size, dtype=I64)
    out[spacepoint] = track
    return out


# --------------------------------------------------------------------- whole events


def _reader_for(kind: str) -> Callable[..., object]:
    readers: dict[str, Callable[..., object]] = {
        "spacepoint": read_spacepoints,
        "hits": read_hits,
        "measurements": read_measurements,
        "measurement-simhit-map": read_measurement_simhit_map,
        "tracks": read_tracks_csv,
    }
    if kind in readers:
        return readers[kind]
    if kind.startswith("particles"):  # particles, particles_initial, particles_final, ...
        return read_particles
    raise ValueError(f"no reader for event file kind '{kind}'; known: {sorted(readers)}")


def _schema_for(kind: str, df: pd.DataFrame) -> TableSchema:
    if kind == "spacepoint":
        return spacepoint_schema(df)
    if kind == "hits":
        return hits_schema(df)
    if kind.startswith("particles"):
        return PARTICLES
    fixed = {"measurements": MEASUREMENTS, "measurement-simhit-map": MEASUREMENT_SIMHIT_MAP,
             "tracks": TRACKS}
    if kind in fixed:
        return fixed[kind]
    raise ValueError(f"no schema for event file kind '{kind}'")


def write_event(directory: StrPath, event: int, tables: Mapping[str, pd.DataFrame]) -> None:
    """Write one file per kind (``event%09d-<kind>.csv``); each file is atomic."""
    for kind, df in tables.items():
        write_table(event_path(directory, event, kind), df, _schema_for(kind, df))


def read_event(
    directory: StrPath,
    event: int,
    kinds: Iterable[str] | None = None,
    *,
    nonfinite: NonFinite = "raise",
) -> dict[str, object]:
    """Read the files of one event: `kinds` (stems), or every readable kind present.

    A kind missing for this event is `MissingEventFileError` naming the file and the
    kinds the event does have. Tracks come back as a track id array, tables as
    DataFrames.
    """
    d = Path(directory)
    stems = _event_files(d, f"event{event:09d}-*.csv")
    have = sorted(s for s, events in stems.items() if event in events)
    if kinds is None:
        kinds = [s for s in have if _readable(s)]
        if not kinds:
            raise MissingEventFileError(
                event_path(d, event, "spacepoint"),
                f"no event files for event {event} in {d}", event=event,
            )
    out: dict[str, object] = {}
    for kind in kinds:
        path = event_path(d, event, kind)
        if not path.is_file():
            raise MissingEventFileError(
                path,
                f"missing {kind} file for event {event} in {d} "
                f"(files this event has: {', '.join(have) if have else 'none'})",
                event=event,
            )
        out[kind] = _reader_for(kind)(path, event=event, nonfinite=nonfinite)
    return out


def _readable(kind: str) -> bool:
    try:
        _reader_for(kind)
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------------------- truth


def attach_truth(
    spacepoints: pd.DataFrame, measurement_simhit_map: pd.DataFrame, hits: pd.DataFrame
) -> np.ndarray:
    """Particle id (uint64) per space point; 0 for noise.

    Chain: space point -> its (first) measurement (``measurement_id_1``, or
    ``measurement_id`` in the single variant) -> hit via the map (``hit_id`` is the
    0-based row of the hits file, as ACTS writes it) -> that hit's particle. A
    measurement with several hits (merged clusters) takes the first hit in map order.
    Measurements without a hit, and space points whose measurement is not in the map,
    are noise. Map rows for measurements without a space point are fine; a hit_id past
    the end of the hits table is `BadReferenceError` naming the map file and line.
    """
    id_column = "measurement_id_1" if "measurement_id_1" in spacepoints else "measurement_id"
    sp_meas = spacepoints[id_column].to_numpy(dtype=U64)
    map_meas = measurement_simhit_map["measurement_id"].to_numpy(dtype=U64)
    map_hit = measurement_simhit_map["hit_id"].to_numpy(dtype=U64)

    n_hits = len(hits)
    if not hits.index.equals(pd.RangeIndex(n_hits)):
        raise ValueError(
            "hits table rows were removed or reordered (its index is not 0..n-1), but "
            "hit_id is the row position in the hits file; read it with nonfinite='keep'"
        )
    beyond = np.flatnonzero(map_hit >= np.uint64(n_hits))
    if beyond.size:
        row = int(beyond[0])
        map_path = _source_path(measurement_simhit_map)
        hits_path = _source_path(hits)
        hits_name = hits_path.name if hits_path else "the hits table"
        raise BadReferenceError(
            map_path,
            f"hit_id {int(map_hit[row])} is past the end of {hits_name} ({n_hits} hits; "
            f"hit_id is the 0-based row index in the hits file)",
            row=_line_of_row(map_path, row) if map_path else None,
            column="hit_id",
            expected=f"hit_id < {n_hits}",
            event=measurement_simhit_map.attrs.get("event"),
        )

    particle = combine_particle_id(hits)
    out = np.zeros(sp_meas.size, dtype=U64)
    if map_meas.size == 0 or sp_meas.size == 0:
        return out
    order = np.argsort(map_meas, kind="stable")
    keys, first = np.unique(map_meas[order], return_index=True)
    hit_of_key = map_hit[order][first].astype(np.intp)
    pos = np.minimum(np.searchsorted(keys, sp_meas), keys.size - 1)
    found = keys[pos] == sp_meas
    out[found] = particle[hit_of_key[pos[found]]]
    return out
