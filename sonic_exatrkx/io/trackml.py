"""TrackML (Kaggle 2018) event files, and their mapping onto our space point tables.

Files: ``event%09d-hits.csv``, ``-truth.csv`` and ``-particles.csv``; ACTS-Fatras
writes the same format with ``-fatras-particles.csv``, and its truth may lack
``weight``. TrackML hit ids start at 1 and are the join key between hits and truth.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .acts_csv import NonFinite, read_table
from .acts_paths import StrPath, event_path
from .csv_diagnostics import line_of_row, source_path
from .errors import BadReferenceError, MissingEventFileError
from .schema import (
    F32,
    PARTICLES,
    SPACEPOINT_SINGLE,
    TRACKML_HITS,
    TRACKML_PARTICLES,
    TRACKML_TRUTH,
    U64,
)

__all__ = [
    "read_trackml_event",
    "read_trackml_hits",
    "read_trackml_particles",
    "read_trackml_truth",
    "trackml_paths",
    "trackml_to_event",
    "truth_has_weight",
]

_PARTICLE_STEMS = ("particles", "fatras-particles")


def read_trackml_hits(
    path: StrPath, *, event: int | None = None, nonfinite: NonFinite = "error"
) -> pd.DataFrame:
    """``hit_id, x, y, z, volume_id, layer_id, module_id``."""
    return read_table(path, TRACKML_HITS, event=event, nonfinite=nonfinite)


def read_trackml_truth(
    path: StrPath, *, event: int | None = None, nonfinite: NonFinite = "error"
) -> pd.DataFrame:
    """``hit_id, particle_id, tx, ty, tz, tpx, tpy, tpz[, weight]`` (0 = noise)."""
    return read_table(path, TRACKML_TRUTH, event=event, nonfinite=nonfinite)


def read_trackml_particles(
    path: StrPath, *, event: int | None = None, nonfinite: NonFinite = "error"
) -> pd.DataFrame:
    """``particle_id, vx, vy, vz, px, py, pz, q[, nhits]``."""
    return read_table(path, TRACKML_PARTICLES, event=event, nonfinite=nonfinite)


def truth_has_weight(path: StrPath) -> bool:
    """Whether a TrackML truth file has the ``weight`` column (Kaggle's does, ACTS-Fatras's
    may not): the header only, so a job can decide before its first event."""
    try:
        header = pd.read_csv(path, nrows=0, index_col=False)
    except (OSError, ValueError, pd.errors.EmptyDataError):
        return False  # reading the event names the problem
    return "weight" in header.columns


def trackml_paths(directory: StrPath, event: int) -> dict[str, Path]:
    """Files of one TrackML event; particles from ``-particles.csv`` or, failing that,
    the ACTS-Fatras ``-fatras-particles.csv``. Missing files are not checked here."""
    particles = event_path(directory, event, _PARTICLE_STEMS[0])
    if not particles.is_file():
        fatras = event_path(directory, event, _PARTICLE_STEMS[1])
        particles = fatras if fatras.is_file() else particles
    return {
        "hits": event_path(directory, event, "hits"),
        "truth": event_path(directory, event, "truth"),
        "particles": particles,
    }


def read_trackml_event(
    directory: StrPath,
    event: int,
    kinds: tuple[str, ...] = ("hits", "truth", "particles"),
    *,
    nonfinite: NonFinite = "error",
) -> dict[str, pd.DataFrame]:
    """Read the TrackML files of one event (`kinds` among hits, truth, particles).

    ACTS-Fatras TrackML output can hold hits with NaN positions; pass
    ``nonfinite="drop"`` to skip them (the hit ids of the others are unchanged).
    """
    readers = {"hits": read_trackml_hits, "truth": read_trackml_truth,
               "particles": read_trackml_particles}
    paths = trackml_paths(directory, event)
    out = {}
    for kind in kinds:
        path = paths[kind]
        if not path.is_file():
            also = " or -fatras-particles.csv" if kind == "particles" else ""
            raise MissingEventFileError(
                path, f"missing TrackML {kind} file{also} for event {event} in {directory}",
                event=event,
            )
        out[kind] = readers[kind](path, event=event, nonfinite=nonfinite)
    return out


def trackml_to_event(
    hits: pd.DataFrame, truth: pd.DataFrame | None, particles: pd.DataFrame | None = None
) -> dict[str, object]:
    """Our arrays for one TrackML event.

    Returns ``spacepoint``: single-measurement space point table (measurement_id =
    hit_id, x, y, z, var_r = var_z = 0; no geometry_id, TrackML has only volume /
    layer / module numbers), rows in hits-file order; ``particle_id``: uint64 per space
    point (0 = noise); ``weight``: float32 per space point when truth has it; and
    ``particles`` (if given): the PARTICLES columns TrackML has (particle_id, vx, vy,
    vz, px, py, pz, q), in PARTICLES order and dtypes. Every hit must have exactly one
    truth row (`BadReferenceError` otherwise, naming the file and line). ``truth`` None
    (a test event, hits only): the space points alone.
    """
    hit_id = hits["hit_id"].to_numpy(dtype=U64)
    n = hit_id.size
    spacepoint = pd.DataFrame(
        {
            "measurement_id": hit_id,
            "x": hits["x"].to_numpy(dtype=F32),
            "y": hits["y"].to_numpy(dtype=F32),
            "z": hits["z"].to_numpy(dtype=F32),
            "var_r": np.zeros(n, dtype=F32),
            "var_z": np.zeros(n, dtype=F32),
        }
    ).astype({c: t for c, t in SPACEPOINT_SINGLE.columns.items() if c != "geometry_id"})
    if truth is None:
        return {"spacepoint": spacepoint}

    truth_id = truth["hit_id"].to_numpy(dtype=U64)
    order = np.argsort(truth_id, kind="stable")
    sorted_id = truth_id[order]
    duplicate = np.flatnonzero(sorted_id[1:] == sorted_id[:-1])
    if duplicate.size:
        row = int(truth.index[order[duplicate[0] + 1]])
        path = source_path(truth)
        raise BadReferenceError(
            path, f"hit_id {int(truth_id[row])} has more than one truth row",
            row=line_of_row(path, row) if path else None, column="hit_id",
            expected="one truth row per hit",
        )
    out: dict[str, object] = {"spacepoint": spacepoint}
    if n:
        pos = np.minimum(np.searchsorted(sorted_id, hit_id), max(sorted_id.size - 1, 0))
        found = (sorted_id[pos] == hit_id) if sorted_id.size else np.zeros(n, dtype=bool)
        if not found.all():
            row = int(hits.index[np.flatnonzero(~found)[0]])  # file row (drop keeps it)
            path = source_path(hits)
            truth_path = source_path(truth)
            raise BadReferenceError(
                path,
                f"hit_id {int(hit_id[row])} has no row in "
                f"{truth_path.name if truth_path else 'the truth table'}",
                row=line_of_row(path, row) if path else None, column="hit_id",
                expected="a truth row for every hit",
            )
        truth_row = order[pos]
    else:
        truth_row = np.empty(0, dtype=np.intp)
    out["particle_id"] = truth["particle_id"].to_numpy(dtype=U64)[truth_row]
    if "weight" in truth.columns:
        out["weight"] = truth["weight"].to_numpy(dtype=F32)[truth_row]
    if particles is not None:
        columns = [c for c in PARTICLES.columns if c in particles.columns]
        out["particles"] = particles[columns].astype({c: PARTICLES.columns[c] for c in columns})
    return out
