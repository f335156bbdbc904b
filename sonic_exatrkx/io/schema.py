"""Column schemas of the ACTS CSV / TrackML file kinds we read and write.

One table per file kind; readers cast to these dtypes and writers emit columns in
this order, so every layer (sim, io, algorithms, exatrkx) agrees on names and types.
`geometry_id` and particle ids are uint64 end to end: never through float.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

U64 = np.dtype(np.uint64)
I64 = np.dtype(np.int64)
U32 = np.dtype(np.uint32)
I32 = np.dtype(np.int32)
F32 = np.dtype(np.float32)
STR = np.dtype(object)


@dataclass(frozen=True)
class TableSchema:
    """Ordered columns of one file kind; `optional` columns may be absent from a file."""

    kind: str
    columns: dict[str, np.dtype]
    optional: tuple[str, ...] = ()

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(c for c in self.columns if c not in self.optional)

    def only(self, columns: Iterable[str]) -> TableSchema:
        """The schema of ``columns`` alone (schema order): what a reader that needs only
        those parses and checks; the file's other columns are skipped."""
        keep = set(columns)
        return TableSchema(self.kind, {c: t for c, t in self.columns.items() if c in keep},
                           tuple(c for c in self.optional if c in keep))


# Current ACTS space points: strip space points have two measurements; pixel ones
# repeat measurement_id_1 (or leave the second empty / 0).
SPACEPOINT = TableSchema(
    "spacepoint",
    {
        "measurement_id_1": U64,
        "measurement_id_2": U64,
        "geometry_id_1": U64,
        "geometry_id_2": U64,
        "x": F32,
        "y": F32,
        "z": F32,
        "t": F32,
        "var_r": F32,
        "var_z": F32,
    },
    optional=("geometry_id_1", "geometry_id_2", "t"),
)

# Older ACTS space points (one measurement per space point).
SPACEPOINT_SINGLE = TableSchema(
    "spacepoint",
    {
        "measurement_id": U64,
        "geometry_id": U64,
        "x": F32,
        "y": F32,
        "z": F32,
        "var_r": F32,
        "var_z": F32,
    },
    optional=("geometry_id",),
)

_HIT_TAIL = {
    "geometry_id": U64,
    "tx": F32,
    "ty": F32,
    "tz": F32,
    "tt": F32,
    "tpx": F32,
    "tpy": F32,
    "tpz": F32,
    "te": F32,
    "deltapx": F32,
    "deltapy": F32,
    "deltapz": F32,
    "deltae": F32,
    "index": I32,
}

# Hits before ACTS v44: one packed uint64 particle_id (the barcode).
HITS = TableSchema("hits", {"particle_id": U64, **_HIT_TAIL})

# ACTS v44+: the barcode split into its components.
PARTICLE_ID_PARTS = (
    "particle_id_pv",
    "particle_id_sv",
    "particle_id_part",
    "particle_id_gen",
    "particle_id_subpart",
)
HITS_SPLIT = TableSchema("hits", {**{c: U32 for c in PARTICLE_ID_PARTS}, **_HIT_TAIL})

PARTICLES = TableSchema(
    "particles",
    {
        "particle_id": U64,
        "particle_type": I32,
        "process": U32,
        "vx": F32,
        "vy": F32,
        "vz": F32,
        "vt": F32,
        "px": F32,
        "py": F32,
        "pz": F32,
        "m": F32,
        "q": F32,
    },
)

MEASUREMENTS = TableSchema(
    "measurements",
    {
        "measurement_id": U64,
        "geometry_id": U64,
        "local_key": STR,
        "local0": F32,
        "local1": F32,
        "phi": F32,
        "theta": F32,
        "time": F32,
        "var_local0": F32,
        "var_local1": F32,
        "var_phi": F32,
        "var_theta": F32,
        "var_time": F32,
    },
)

MEASUREMENT_SIMHIT_MAP = TableSchema(
    "measurement-simhit-map", {"measurement_id": U64, "hit_id": U64}
)

# Our track finding output: one row per space point (row index = space point index).
TRACKS = TableSchema("tracks", {"spacepoint_id": I64, "track_id": I64})

# TrackML (Kaggle 2018) files.
TRACKML_HITS = TableSchema(
    "hits",
    {"hit_id": U64, "x": F32, "y": F32, "z": F32, "volume_id": I32, "layer_id": I32,
     "module_id": I32},
)
TRACKML_TRUTH = TableSchema(
    "truth",
    {"hit_id": U64, "particle_id": U64, "tx": F32, "ty": F32, "tz": F32, "tpx": F32,
     "tpy": F32, "tpz": F32, "weight": F32},
    optional=("weight",),
)
TRACKML_PARTICLES = TableSchema(
    "particles",
    {"particle_id": U64, "vx": F32, "vy": F32, "vz": F32, "px": F32, "py": F32, "pz": F32,
     "q": I32, "nhits": I32},
    optional=("nhits",),
)

# Float columns that must hold finite numbers: positions, times, momenta and the space
# point variances feed geometry (r, phi, eta, graph building), where one NaN silently
# poisons a whole event. Other float columns (e.g. measurement variances) may be NaN.
FINITE_COLUMNS = frozenset(
    {
        "x", "y", "z", "var_r", "var_z",
        "tx", "ty", "tz", "tt", "tpx", "tpy", "tpz", "te",
        "vx", "vy", "vz", "vt", "px", "py", "pz",
        "local0", "local1",
    }
)

#: Inclusive value range of each integer dtype; readers and writers check ids against
#: it instead of letting numpy wrap around.
INT_RANGE = {
    U64: (0, 2**64 - 1),
    I64: (-(2**63), 2**63 - 1),
    U32: (0, 2**32 - 1),
    I32: (-(2**31), 2**31 - 1),
}
#: The dtype names error messages use.
DTYPE_NAME = {U64: "uint64", I64: "int64", U32: "uint32", I32: "int32", F32: "float32"}
#: Tokens read as NaN in numeric columns (never in string columns such as local_key).
NA_TOKENS = ["", "nan", "NaN", "NAN", "-nan", "-NaN", "NA", "N/A"]
#: Pixel space points may leave the second measurement empty; it gets the first's value.
FILL_FROM = {"measurement_id_2": "measurement_id_1", "geometry_id_2": "geometry_id_1"}


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
