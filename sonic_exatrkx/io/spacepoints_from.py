"""Space points for ACTS outputs that have none: built from the measurements or the hits.

Many ACTS productions (the traccc samples among them) write ``hits``, ``measurements``
and ``measurement-simhit-map`` but no ``spacepoint`` file. ACTS measurement files hold
*local* coordinates only (``local0, local1`` on the module) and placing them needs the
detector geometry, which the files do not carry; the global position we can give a
measurement is that of its simulated hit (``tx, ty, tz``, through the measurement-simhit
map). So:

* ``"measurements"``: one space point per measurement that has a simulated hit, at the
  hit's true position (the first hit in map order for a merged cluster, as the truth
  chain takes it). ``measurement_id`` and ``geometry_id`` are the measurement's, so the
  usual truth chain (`truth.attach_truth`) labels them. Measurements without a hit
  (noise) have no position and are left out, counted.
* ``"hits"``: one space point per simulated hit (every sensitive crossing, including
  ones a digitizer would miss): ``measurement_id`` is the hit's row in the hits file
  (the ``hit_id`` of the map), and the particle is the hit's own.

Both give true positions, without detector resolution, so tracking looks better than on
reconstructed space points; the variances are 0 (unknown), as for TrackML input. The
tables are the single-measurement space point variant (`schema.SPACEPOINT_SINGLE`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .csv_diagnostics import line_of_row, source_path
from .errors import InputFormatError, NonFiniteValueError
from .schema import F32, SPACEPOINT_SINGLE, U64
from .spacepoint_checks import ENVELOPE_MM
from .truth import check_hit_ids, first_hit_of

__all__ = ["SPACEPOINTS_FROM", "spacepoints_from_hits", "spacepoints_from_measurements"]

#: Where space points can come from when an event has no spacepoint file.
SPACEPOINTS_FROM = ("measurements", "hits")


def spacepoints_from_measurements(
    measurements: pd.DataFrame, measurement_simhit_map: pd.DataFrame, hits: pd.DataFrame,
    *, nonfinite: str = "error",
) -> pd.DataFrame:
    """One space point per measurement with a simulated hit, at that hit's position.

    ``attrs["unplaced_measurements"]`` counts the measurements left out (no hit);
    ``nonfinite``: a hit with a NaN/inf position is `NonFiniteValueError` naming the hits
    file line ("error") or its space point is left out (``"drop"``, counted in
    ``attrs["dropped_nonfinite"]``). The hits table must be whole (read with
    ``nonfinite="keep"``), since ``hit_id`` is its row number.
    """
    check_hit_ids(measurement_simhit_map, hits)
    meas_id = measurements["measurement_id"].to_numpy(dtype=U64)
    map_row, found = first_hit_of(
        measurement_simhit_map["measurement_id"].to_numpy(dtype=U64), meas_id)
    hit_row = measurement_simhit_map["hit_id"].to_numpy(dtype=U64)[map_row[found]]
    hit_row = hit_row.astype(np.intp)
    table = _table(meas_id[found], measurements["geometry_id"].to_numpy(dtype=U64)[found],
                   hits, hit_row)
    table.attrs["unplaced_measurements"] = int(found.size - np.count_nonzero(found))
    return _checked(table, hits, hit_row, measurements, nonfinite)


def spacepoints_from_hits(hits: pd.DataFrame, *, nonfinite: str = "error") -> pd.DataFrame:
    """One space point per simulated hit at its position; ``measurement_id`` = the hit's
    row (0-based, as ``hit_id`` in the map), so the particle of space point ``i`` is
    ``combine_particle_id(hits)[table["measurement_id"][i]]``. ``nonfinite``: as for
    `spacepoints_from_measurements`."""
    if not hits.index.equals(pd.RangeIndex(len(hits))):
        raise ValueError("hits table rows were removed or reordered; read it with "
                         "nonfinite='keep' (the hit row is the space point's id)")
    rows = np.arange(len(hits), dtype=np.intp)
    table = _table(rows.astype(U64), hits["geometry_id"].to_numpy(dtype=U64), hits, rows)
    table.attrs["unplaced_measurements"] = 0
    return _checked(table, hits, rows, hits, nonfinite)


def _table(ids: np.ndarray, geometry: np.ndarray, hits: pd.DataFrame,
           hit_row: np.ndarray) -> pd.DataFrame:
    n = ids.size
    columns = {
        "measurement_id": ids,
        "geometry_id": geometry,
        **{c: hits[t].to_numpy(dtype=F32)[hit_row] for c, t in (("x", "tx"), ("y", "ty"),
                                                                  ("z", "tz"))},
        "var_r": np.zeros(n, dtype=F32),
        "var_z": np.zeros(n, dtype=F32),
    }
    return pd.DataFrame(columns).astype(SPACEPOINT_SINGLE.columns)


def _checked(table: pd.DataFrame, hits: pd.DataFrame, hit_row: np.ndarray,
             source: pd.DataFrame, nonfinite: str) -> pd.DataFrame:
    """Non-finite positions handled and coordinates inside any detector; errors name the
    hits file, line and column (the positions are the hits')."""
    if nonfinite not in ("error", "drop"):
        raise ValueError(f"nonfinite must be 'error' or 'drop', got {nonfinite!r}")
    hits_path = source_path(hits)
    event = source.attrs.get("event", hits.attrs.get("event"))
    xyz = table[["x", "y", "z"]].to_numpy()
    bad = ~np.isfinite(xyz)
    if bad.any() and nonfinite == "error":
        row, col = (int(v) for v in np.argwhere(bad)[0])
        raise NonFiniteValueError(
            hits_path, f"non-finite hit position {xyz[row, col]} (a space point is built "
            "from this hit; --nonfinite drop leaves such space points out)",
            row=_line(hits_path, hit_row[row]), column=_HIT_COLUMNS[col],
            expected="finite float32", event=event)
    outside = np.abs(np.where(bad, 0.0, xyz)) > ENVELOPE_MM
    if outside.any():
        row, col = (int(v) for v in np.argwhere(outside)[0])
        raise InputFormatError(
            hits_path, f"{_HIT_COLUMNS[col]} = {xyz[row, col]:g} mm is outside any detector",
            row=_line(hits_path, hit_row[row]), column=_HIT_COLUMNS[col],
            expected=f"|{_HIT_COLUMNS[col]}| <= {ENVELOPE_MM:g} mm", event=event)
    keep = ~bad.any(axis=1)
    attrs = dict(table.attrs)
    if not keep.all():
        table = table[keep].reset_index(drop=True)
    table.attrs.update(attrs, path=str(source_path(source) or ""), event=event,
                       dropped_nonfinite=int(keep.size - np.count_nonzero(keep)))
    return table


_HIT_COLUMNS = ("tx", "ty", "tz")


def _line(path: Path | None, row: np.integer | int) -> int | None:
    return line_of_row(path, int(row)) if path is not None else None
