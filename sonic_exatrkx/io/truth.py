"""Truth: ACTS particle barcodes, and the particle behind each space point.

A particle id is a packed uint64 barcode (`BARCODE_LAYOUT`); ACTS v44+ writes it split
into five columns, which `combine_particle_id` packs back. `attach_truth` follows the
space point -> measurement -> simulated hit chain to label space points.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .csv_diagnostics import line_of_row, source_path
from .errors import BadReferenceError
from .schema import PARTICLE_ID_PARTS, U32, U64

__all__ = ["BARCODE_LAYOUT", "attach_truth", "check_hit_ids", "combine_particle_id",
           "first_hit_of", "split_particle_id"]

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


#: Above this share of space points without a measurement in the map, the truth files do
#: not belong to the space points (noise alone is ~15 % in our samples and ACTS's).
MAX_UNJOINED = 0.5


def attach_truth(
    spacepoints: pd.DataFrame, measurement_simhit_map: pd.DataFrame, hits: pd.DataFrame,
    *, max_unjoined: float = MAX_UNJOINED,
) -> np.ndarray:
    """Particle id (uint64) per space point; 0 for noise.

    Chain: space point -> its (first) measurement (``measurement_id_1``, or
    ``measurement_id`` in the single variant) -> hit via the map (``hit_id`` is the
    0-based row of the hits file, as ACTS writes it) -> that hit's particle. A
    measurement with several hits (merged clusters) takes the first hit in map order.
    Measurements without a hit, and space points whose measurement is not in the map,
    are noise. Map rows for measurements without a space point are fine; a hit_id past
    the end of the hits table is `BadReferenceError` naming the map file and line. More
    than ``max_unjoined`` of the space points without a measurement in the map is
    `BadReferenceError` too: ids that do not join (files of another event or production)
    would otherwise turn most space points into noise and the fake rate into nonsense.
    """
    id_column = "measurement_id_1" if "measurement_id_1" in spacepoints else "measurement_id"
    sp_meas = spacepoints[id_column].to_numpy(dtype=U64)
    map_meas = measurement_simhit_map["measurement_id"].to_numpy(dtype=U64)
    map_hit = measurement_simhit_map["hit_id"].to_numpy(dtype=U64)
    check_hit_ids(measurement_simhit_map, hits)

    particle = combine_particle_id(hits)
    out = np.zeros(sp_meas.size, dtype=U64)
    if map_meas.size == 0 or sp_meas.size == 0:
        return out
    pos, found = first_hit_of(map_meas, sp_meas)
    unjoined = int(sp_meas.size - np.count_nonzero(found))
    if unjoined > max_unjoined * sp_meas.size:
        sp_path, map_path = source_path(spacepoints), source_path(measurement_simhit_map)
        map_name = map_path.name if map_path else "the measurement-simhit map"
        raise BadReferenceError(
            sp_path,
            f"{unjoined} of {sp_meas.size} space points ({100 * unjoined / sp_meas.size:.0f} "
            f"%) have a {id_column} that is not in {map_name}: the truth files do not "
            f"belong to these space points",
            column=id_column,
            expected=f"at most {100 * max_unjoined:.0f} % without truth (noise)",
            event=spacepoints.attrs.get("event"),
        )
    out[found] = particle[map_hit[pos[found]].astype(np.intp)]
    return out


def first_hit_of(map_measurement: np.ndarray, measurement: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """For each of ``measurement``: the row of the measurement-simhit map holding its
    first hit (map order), and whether it has one (the row is meaningless where not)."""
    order = np.argsort(map_measurement, kind="stable")
    keys, first = np.unique(map_measurement[order], return_index=True)
    if keys.size == 0:
        return np.zeros(measurement.size, dtype=np.intp), np.zeros(measurement.size, bool)
    pos = np.minimum(np.searchsorted(keys, measurement), keys.size - 1)
    return order[first][pos], keys[pos] == measurement


def check_hit_ids(measurement_simhit_map: pd.DataFrame, hits: pd.DataFrame) -> None:
    """Every ``hit_id`` of the map is a row of the hits table (`BadReferenceError` naming
    the map file and line otherwise); the hits table must be whole (rows not removed)."""
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
        map_path = source_path(measurement_simhit_map)
        hits_path = source_path(hits)
        hits_name = hits_path.name if hits_path else "the hits table"
        raise BadReferenceError(
            map_path,
            f"hit_id {int(map_hit[row])} is past the end of {hits_name} ({n_hits} hits; "
            f"hit_id is the 0-based row index in the hits file)",
            row=line_of_row(map_path, row) if map_path else None,
            column="hit_id",
            expected=f"hit_id < {n_hits}",
            event=measurement_simhit_map.attrs.get("event"),
        )
