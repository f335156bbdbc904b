"""Writing ACTS CSV event files: one table per file, schema column order, atomically.

Ids are written from integer columns only (never through float) and range-checked
against their schema dtype; float32 columns are written in the shortest form that
reads back to the same float32, so read -> write -> read is exact.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TextIO

import numpy as np
import pandas as pd

from ._atomic import atomic_write_text
from .acts_paths import StrPath, event_path
from .errors import MissingColumnError
from .schema import (
    DTYPE_NAME,
    F32,
    I64,
    INT_RANGE,
    MEASUREMENT_SIMHIT_MAP,
    MEASUREMENTS,
    PARTICLES,
    STR,
    TRACKS,
    TableSchema,
    hits_schema,
    spacepoint_schema,
)

__all__ = ["write_event", "write_table", "write_tracks_csv"]


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
            f"column '{column}' must hold integers for {DTYPE_NAME[dtype]}, got {arr.dtype}"
            " (ids never go through float)"
        )
    lo, hi = INT_RANGE[dtype]
    if arr.size and (int(arr.min()) < lo or int(arr.max()) > hi):
        raise ValueError(
            f"column '{column}' has values outside [{lo}, {hi}] for {DTYPE_NAME[dtype]}"
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
    arrays = {c: _column_for_write(df[c], schema.columns[c], c) for c in columns}
    if all(a.dtype.kind in "iu" for a in arrays.values()):
        text = _integer_csv(columns, arrays)  # what pandas writes, without pandas

        def write(handle: TextIO) -> None:
            handle.write(text)
    else:
        typed = pd.DataFrame(arrays, columns=columns)

        def write(handle: TextIO) -> None:
            typed.to_csv(handle, index=False, lineterminator="\n", na_rep="nan")

    atomic_write_text(path, write)


def _integer_csv(columns: list[str], arrays: dict[str, np.ndarray]) -> str:
    """The CSV text of integer columns, as pandas writes it: header, then one ``%d`` per
    field (Python ints, so uint64 stays exact), comma-separated, ``\n`` after each row."""
    rows = len(next(iter(arrays.values()))) if arrays else 0
    fields = np.empty((rows, len(columns)), dtype=object)
    for j, c in enumerate(columns):
        fields[:, j] = arrays[c].tolist()
    line = ",".join(["%d"] * len(columns)) + "\n"
    return ",".join(columns) + "\n" + (line * rows) % tuple(fields.ravel().tolist())


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
