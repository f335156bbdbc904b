"""ACTS CSV event files (``event%09d-<stem>.csv``): read and validate.

The pieces live in their own modules and are re-exported here, the one place callers
import CSV I/O from: file naming (`acts_paths`), located-error diagnostics
(`csv_diagnostics`), writing (`csv_writers`) and truth / barcodes (`truth`).

Reading takes the fastest engine that gives exact values: a clean numeric file (the
usual, machine-written one) is parsed by numpy in one pass (`csv_fast`); any other file
by one `pandas.read_csv` pass, and only when a column does not convert cleanly does a
second, string-only diagnostic pass run to find the first bad line and column. Both
engines give the same arrays, and every error comes from the careful pandas reader, so
good files pay nothing for the error reporting and bad ones are reported as before.

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
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from .acts_paths import StrPath, event_files, event_from_name, event_path, list_events
from .csv_diagnostics import (
    bad_tokens,
    diagnose,
    field_count_error,
    line_of_row,
    nonfinite_error,
    nonfinite_rows,
)
from .csv_fast import CleanFile, open_clean, parse_clean
from .csv_writers import write_event, write_table, write_tracks_csv
from .errors import (
    EmptyFileError,
    InputFormatError,
    MissingColumnError,
    MissingEventFileError,
)
from .schema import (
    F32,
    FILL_FROM,
    I64,
    INT_RANGE,
    MEASUREMENT_SIMHIT_MAP,
    MEASUREMENTS,
    NA_TOKENS,
    PARTICLE_ID_PARTS,
    PARTICLES,
    SPACEPOINT,
    SPACEPOINT_SINGLE,
    STR,
    TRACKS,
    U32,
    U64,
    TableSchema,
    hits_schema,
    spacepoint_schema,
)
from .spacepoint_checks import COORDINATES, ENVELOPE_MM, check_envelope
from .truth import BARCODE_LAYOUT, attach_truth, combine_particle_id, split_particle_id

# Also the names of the modules split off this one, which callers import from here.
__all__ = [
    "BARCODE_LAYOUT",
    "NonFinite",
    "StrPath",
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

#: What to do with NaN/inf in `schema.FINITE_COLUMNS`: raise `NonFiniteValueError`
#: (default), drop those rows (logged, counted in ``df.attrs["dropped_nonfinite"]``; the
#: DataFrame index keeps the file row positions), or keep them.
NonFinite = Literal["error", "drop", "keep"]

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
    except UnicodeDecodeError:
        raise InputFormatError(
            path, "not a text CSV file (binary or compressed? a .csv.gz must be unpacked)",
            event=event) from None
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


# ----------------------------------------------------------------- conversions


def _ints_from_parsed(values: pd.Series, dtype: np.dtype) -> np.ndarray | None:
    """Exact integer array from what pandas inferred, or None if it needs diagnosis
    (inferred float/object, or a value out of `dtype`'s range)."""
    arr = values.to_numpy()
    if arr.size == 0:
        return np.empty(0, dtype=dtype)
    if arr.dtype.kind not in "iu":
        return None
    lo, hi = INT_RANGE[dtype]
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
    bad, _ = bad_tokens(text, U64, allow_empty=True)
    if bad.any():
        return None
    empty = (text == "").to_numpy(bool)
    out = text.where(~empty, "0").to_numpy(str).astype(np.uint64)
    out[empty] = fill[empty] if fill is not None else 0
    return out


# ------------------------------------------------------------------------ reading


def _open(path: Path, event: int | None) -> tuple[list[str], CleanFile | None]:
    """The header, and the file's bytes when the fast engine may read it."""
    clean = open_clean(path)
    return (clean.header, clean) if clean is not None else (_read_header(path, event), None)


def _read_validated(
    path: Path,
    schema: TableSchema,
    header: list[str],
    event: int | None,
    what: str = "",
    nonfinite: NonFinite = "error",
    check_range: bool = True,
    clean: CleanFile | None = None,
) -> pd.DataFrame:
    present = _check_columns(path, header, schema, event, what)
    columns = parse_clean(clean, schema) if clean is not None else None
    if columns is None:
        columns = _parse_careful(path, schema, header, present, event)
    return _validated_frame(path, schema, present, columns, event, nonfinite, check_range)


def _parse_careful(path: Path, schema: TableSchema, header: list[str], present: list[str],
                   event: int | None) -> dict[str, np.ndarray]:
    """The careful reader: pandas, then the diagnostic pass that locates a bad value."""
    strings = [c for c in present if schema.columns[c] == STR]
    dtype: dict[str, object] = {c: object for c in strings}
    na_values = {c: NA_TOKENS for c in present if c not in dtype}
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
        error = field_count_error(path, len(header), event)
        raise error or InputFormatError(path, f"malformed CSV: {exc}", event=event) from None
    # pandas pads rows with too few fields with NaN, silently; such a row (e.g. the
    # last line of a truncated file) leaves the last column empty, so only then count.
    if len(raw) and raw[raw.columns[-1]].isna().any():
        error = field_count_error(path, len(header), event)
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
        if arr is None and column in FILL_FROM:
            # Empty cells (pixel space points) made pandas infer float: re-read this
            # column as text so the ids stay exact, and fill the empty ones.
            text = pd.read_csv(path, usecols=[column], dtype=str, keep_default_na=False,
                               na_filter=False, index_col=False, engine="c")[column]
            arr = _filled_ids(text, columns.get(FILL_FROM[column]))
        if arr is None:
            raise diagnose(path, present, schema, event, column)
        columns[column] = arr

    return columns


def _validated_frame(path: Path, schema: TableSchema, present: list[str],
                     columns: dict[str, np.ndarray], event: int | None,
                     nonfinite: NonFinite, check_range: bool) -> pd.DataFrame:
    """The checks every parsed table passes (finite values, the detector envelope)."""
    if nonfinite not in ("error", "drop", "keep"):
        raise ValueError(f"nonfinite must be 'error', 'drop' or 'keep', got {nonfinite!r}")
    bad, first = nonfinite_rows(columns) if nonfinite != "keep" else (None, None)
    if first is not None and nonfinite == "error":
        raise nonfinite_error(path, columns, first, event)
    df = pd.DataFrame(columns, columns=present)
    retype = {c: schema.columns[c] for c in present if columns[c].dtype != schema.columns[c]
              or schema.columns[c] == STR}
    if retype:  # strings (pandas would infer its string dtype)
        df = df.astype(retype)
    if first is not None:  # nonfinite == "drop"
        log.warning(
            "%s: dropping %d of %d rows with non-finite values (first: line %d, column '%s')",
            path.name, int(bad.sum()), len(df), line_of_row(path, first[0]), first[1],
        )
        df = df[~bad]
    if check_range and not _inside_envelope(columns):  # only then the located error
        check_envelope(df, path, event, lambda row: line_of_row(path, row))
    df.attrs["path"] = str(path)
    df.attrs["event"] = event
    df.attrs["dropped_nonfinite"] = int(bad.sum()) if first is not None else 0
    return df


def _inside_envelope(columns: dict[str, np.ndarray]) -> bool:
    """Whether every x, y, z is within `check_envelope`'s box (NaN passes, as there)."""
    with np.errstate(invalid="ignore"):
        return not any((np.abs(columns[c]) > ENVELOPE_MM).any()
                       for c in COORDINATES if c in columns)


def read_table(
    path: StrPath, schema: TableSchema, *, event: int | None = None, nonfinite: NonFinite = "error"
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
        event = event_from_name(path)
    header, clean = _open(path, event)
    return _read_validated(path, schema, header, event, nonfinite=nonfinite, clean=clean)


def read_spacepoints(
    path: StrPath, *, event: int | None = None, nonfinite: NonFinite = "error",
    check_range: bool = True,
) -> pd.DataFrame:
    """Space points, in the variant the header shows (two-measurement or single).

    ``check_range``: refuse coordinates outside any detector (|x|, |y|, |z| > 100 m,
    :mod:`.spacepoint_checks`); False reads any finite value (format tests).

    Pixel space points written with an empty ``measurement_id_2`` (``geometry_id_2``)
    get ``measurement_id_1`` (``geometry_id_1``) repeated, the other convention ACTS
    uses for them; any written value (including 0 or the 2**64-1 "none" sentinel) is
    kept as read.
    """
    path = Path(path)
    if event is None:
        event = event_from_name(path)
    header, clean = _open(path, event)
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
    return _read_validated(path, schema, header, event, "space point ", nonfinite,
                           check_range, clean)


def read_hits(
    path: StrPath, *, event: int | None = None, nonfinite: NonFinite = "error",
    particle_ids_only: bool = False,
) -> pd.DataFrame:
    """Simulated hits; keeps a single ``particle_id`` or the split ``particle_id_*``
    columns as the file has them (see `combine_particle_id`).

    ``particle_ids_only``: only those columns (one row per hit, as always), for the truth
    of space points (`attach_truth`): the hit positions and momenta that truth does not
    use are neither converted nor checked (the fast engine skips them)."""
    path = Path(path)
    if event is None:
        event = event_from_name(path)
    header, clean = _open(path, event)
    schema = hits_schema(header)
    if particle_ids_only:
        schema = schema.only(("particle_id", *PARTICLE_ID_PARTS))
    return _read_validated(path, schema, header, event, nonfinite=nonfinite, clean=clean)


def read_particles(
    path: StrPath, *, event: int | None = None, nonfinite: NonFinite = "error"
) -> pd.DataFrame:
    """Particles (`PARTICLES` columns). A file with only the split barcode columns
    gets them packed into ``particle_id`` (`combine_particle_id`)."""
    path = Path(path)
    if event is None:
        event = event_from_name(path)
    header, clean = _open(path, event)
    if "particle_id" in header or not set(PARTICLE_ID_PARTS) & set(header):
        return _read_validated(path, PARTICLES, header, event, nonfinite=nonfinite,
                               clean=clean)
    split = TableSchema(
        "particles",
        {**{c: U32 for c in PARTICLE_ID_PARTS},
         **{c: t for c, t in PARTICLES.columns.items() if c != "particle_id"}},
    )
    df = _read_validated(path, split, header, event, nonfinite=nonfinite, clean=clean)
    ids = combine_particle_id(df)
    df = df.drop(columns=list(PARTICLE_ID_PARTS))
    df.insert(0, "particle_id", ids)
    df.attrs.update(path=str(path), event=event)
    return df


def read_measurements(
    path: StrPath, *, event: int | None = None, nonfinite: NonFinite = "error"
) -> pd.DataFrame:
    """Measurements; ``local_key`` is kept as the exact string in the file ("" when
    empty, "unknown", or a raw control byte as some ACTS versions write it)."""
    return read_table(path, MEASUREMENTS, event=event, nonfinite=nonfinite)


def read_measurement_simhit_map(
    path: StrPath, *, event: int | None = None, nonfinite: NonFinite = "error"
) -> pd.DataFrame:
    """measurement_id -> hit_id links (hit_id = 0-based row in the hits file)."""
    return read_table(path, MEASUREMENT_SIMHIT_MAP, event=event, nonfinite=nonfinite)


def read_tracks_csv(
    path: StrPath, *, event: int | None = None, nonfinite: NonFinite = "error"
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
            row=line_of_row(path, row) if lines else None,
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


def read_event(
    directory: StrPath,
    event: int,
    kinds: Iterable[str] | None = None,
    *,
    nonfinite: NonFinite = "error",
    truth_only: Iterable[str] = (),
) -> dict[str, object]:
    """Read the files of one event: `kinds` (stems), or every readable kind present.

    A kind missing for this event is `MissingEventFileError` naming the file and the
    kinds the event does have. Tracks come back as a track id array, tables as
    DataFrames. Kinds in `truth_only` are read for the particle ids of space points
    only (hits: `read_hits` with ``particle_ids_only``).
    """
    truth_only = set(truth_only)
    d = Path(directory)

    def present() -> list[str]:  # lists the folder: only for kinds=None and errors
        stems = event_files(d, f"event{event:09d}-*.csv")
        return sorted(s for s, events in stems.items() if event in events)

    if kinds is None:
        have = present()
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
            have = present()  # a missing folder is named here
            raise MissingEventFileError(
                path,
                f"missing {kind} file for event {event} in {d} "
                f"(files this event has: {', '.join(have) if have else 'none'})",
                event=event,
            )
        if kind == "hits" and kind in truth_only:
            out[kind] = read_hits(path, event=event, nonfinite=nonfinite,
                                  particle_ids_only=True)
        else:
            out[kind] = _reader_for(kind)(path, event=event, nonfinite=nonfinite)
    return out


def _readable(kind: str) -> bool:
    try:
        _reader_for(kind)
    except ValueError:
        return False
    return True


