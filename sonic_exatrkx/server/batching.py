"""Several events in one request: concatenated space points plus per-event row splits.

Numpy helpers for both sides of the wire. A client packs events with :func:`batch_events`
and sends ``FEATURES`` ``[N_total, F]`` plus ``ROW_SPLITS`` INT64 ``[n_events + 1]`` (the
offsets of each event's first row, then ``N_total``; the contract's optional input of the
``exatrkx`` model) to the ``exatrkx`` model; the model returns ``LABELS`` ``[N_total]``, each
event's slice numbered exactly as a one-event request for that event would be, and
:func:`split_labels` cuts them back per event. The model runs :func:`run_batched`, which
checks the offsets with :func:`check_row_splits` and cuts the events with
:func:`split_events`.

Why not Triton's own batching: with ``max_batch_size: 0`` (variable-size events have no
common batch dimension) ``dynamic_batching`` does nothing, and ragged batching would hide
the event boundaries from plain tritonclient users. Explicit offsets work over gRPC and HTTP
with any client.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from sonic_exatrkx.exatrkx.stages import ROW_SPLITS, prepare_features, run_pipeline

if TYPE_CHECKING:
    from sonic_exatrkx.exatrkx import Pipeline

__all__ = ["ROW_SPLITS", "batch_events", "check_row_splits", "run_batched", "split_events",
           "split_labels"]


def batch_events(features_list: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate per-event features ``[N_i, F]`` into ``(features [sum N_i, F] float32,
    row_splits [n + 1] int64)``. Events may be empty; all must have the same width."""
    if len(features_list) == 0:
        raise ValueError("batch_events: no events given")
    arrays = [np.asarray(f) for f in features_list]
    for i, a in enumerate(arrays):
        if a.ndim != 2:
            raise ValueError(f"batch_events: event {i} features must be 2-D [N, F], "
                             f"got shape {a.shape}")
    widths = {a.shape[1] for a in arrays}
    if len(widths) != 1:
        raise ValueError(f"batch_events: events have different feature widths "
                         f"{sorted(widths)}")
    row_splits = np.zeros(len(arrays) + 1, dtype=np.int64)
    np.cumsum([a.shape[0] for a in arrays], out=row_splits[1:])
    features = np.ascontiguousarray(np.concatenate(arrays, axis=0), dtype=np.float32)
    return features, row_splits


def check_row_splits(row_splits: np.ndarray, n_rows: int) -> np.ndarray:
    """``row_splits`` as int64 if it is a valid offsets vector for ``n_rows`` rows.

    Valid: 1-D integers, at least two entries, first 0, non-decreasing, last ``n_rows``.
    Raises ``ValueError`` saying what is wrong otherwise.
    """
    rs = np.asarray(row_splits)
    if rs.ndim != 1:
        raise ValueError(f"{ROW_SPLITS} must be 1-D [n_events + 1], got shape {rs.shape}")
    if rs.dtype.kind not in "iu":
        raise ValueError(f"{ROW_SPLITS} must be integers, got {rs.dtype}")
    if rs.size < 2:
        raise ValueError(f"{ROW_SPLITS} needs at least 2 entries (0 and the number of space "
                         f"points, {n_rows}) for one event, got {rs.tolist()}")
    rs = rs.astype(np.int64, copy=False)
    if rs[0] != 0:
        raise ValueError(f"{ROW_SPLITS} must start at 0, got {int(rs[0])}")
    if rs[-1] != n_rows:
        raise ValueError(f"{ROW_SPLITS} must end at the number of space points {n_rows}, "
                         f"got {int(rs[-1])}")
    steps = np.diff(rs)
    if (steps < 0).any():
        i = int(np.flatnonzero(steps < 0)[0])
        raise ValueError(f"{ROW_SPLITS} must be non-decreasing, but entry {i + 1} "
                         f"({int(rs[i + 1])}) < entry {i} ({int(rs[i])})")
    return rs


def split_events(features: np.ndarray, row_splits: np.ndarray) -> list[np.ndarray]:
    """The per-event row slices (views) of ``features`` (checked offsets)."""
    rs = check_row_splits(row_splits, np.asarray(features).shape[0])
    return [features[int(a):int(b)] for a, b in zip(rs[:-1], rs[1:], strict=True)]


def split_labels(labels: np.ndarray, row_splits: np.ndarray) -> list[np.ndarray]:
    """The per-event label arrays of a batched response (the offsets sent with it)."""
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {labels.shape}")
    return split_events(labels, row_splits)


def run_batched(pipeline: Pipeline, features: np.ndarray, max_spacepoints: int | None = None,
                row_splits: np.ndarray | None = None, module_ids: np.ndarray | None = None
                ) -> np.ndarray:
    """Labels of the ``exatrkx`` model: the contract's ``run_pipeline`` once per event.

    With ``row_splits`` (offsets ``[n_events + 1]``), ``features`` holds several events one
    after the other: each is checked and run on its own and the labels are concatenated in
    the same order, each event numbered as if it came alone. ``max_spacepoints`` applies per
    event. ``module_ids`` (a module-map pipeline's ``MODULE_IDS``, one per row) are cut the
    same way.
    """
    if row_splits is None:
        return run_pipeline(pipeline, features, max_spacepoints, module_ids)
    events = split_events(np.asarray(features), row_splits)
    ids = [None] * len(events) if module_ids is None else split_events(
        np.asarray(module_ids), row_splits)
    prepared = []
    for i, event in enumerate(events):  # check every event before running any
        try:
            prepared.append(prepare_features(pipeline, event, max_spacepoints))
        except ValueError as exc:
            raise type(exc)(f"event {i} of {len(events)} in the request: {exc}") from None
    labels = [run_pipeline(pipeline, f, module_ids=m)
              for f, m in zip(prepared, ids, strict=True)]
    return np.concatenate(labels) if labels else np.zeros(0, np.int64)
