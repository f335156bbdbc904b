"""Checks of space point values that no schema catches: coordinates outside any detector,
and exact duplicates.

A coordinate of 1e30 mm parses as a float and would surface much later as "NaN in the
embedding output at row 2"; it is refused when the file is read, naming file, line and
column. Duplicated space points (the same x, y, z twice in one event) change the graph
and the physics without any error; readers count them and warn, or drop them on request.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from sonic_exatrkx.io.errors import InputFormatError

#: Half-size of a box any collider detector fits in (mm): 100 m.
ENVELOPE_MM = 1.0e5
COORDINATES = ("x", "y", "z")
DUPLICATES = ("warn", "drop")


def check_envelope(df: pd.DataFrame, path: Path | None, event: int | None,
                   line_of: Callable[[int], int | None] | None = None) -> None:
    """Refuse a table whose x, y or z is outside ``ENVELOPE_MM``; ``line_of`` maps a row
    label to the file line (CSV), else the error names the row."""
    present = [c for c in COORDINATES if c in df.columns]
    if not present or df.empty:
        return
    values = df[present].to_numpy(dtype=np.float64, copy=False)
    outside = np.abs(values) > ENVELOPE_MM
    if not outside.any():
        return
    row, col = np.argwhere(outside)[0]
    label = df.index[row]
    line = line_of(int(label)) if line_of is not None else None
    raise InputFormatError(
        path, f"{present[col]} = {values[row, col]:g} mm is outside any detector"
        + ("" if line is not None else f" (row {row} of event {event})"),
        row=line, column=present[col], expected=f"|{present[col]}| <= {ENVELOPE_MM:g} mm",
        event=event)


def duplicate_mask(df: pd.DataFrame) -> np.ndarray:
    """True for each space point whose x, y, z repeat an earlier one of the event."""
    present = [c for c in COORDINATES if c in df.columns]
    if not present:
        return np.zeros(len(df), dtype=bool)
    return df.duplicated(subset=present, keep="first").to_numpy()
