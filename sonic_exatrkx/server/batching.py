"""Several events in one execution: explicit row splits, and Triton's dynamic batching.

Two ways, both computed by :meth:`Pipeline.run_many` (one embedding, filter and GNN call on
every event's rows, graph and track building per event; each event's labels are bit for
bit those of a one-event request, see :mod:`sonic_exatrkx.exatrkx.pipeline`):

- **Explicit, by the client** (model ``exatrkx``, ``max_batch_size: 0``): a client packs
  events with :func:`batch_events` and sends ``FEATURES`` ``[N_total, F]`` plus
  ``ROW_SPLITS`` INT64 ``[n_events + 1]`` (the offsets of each event's first row, then
  ``N_total``; the contract's optional input); the model returns ``LABELS`` ``[N_total]``,
  each event's slice numbered as a one-event request for that event would be, and
  :func:`split_labels` cuts them back per event. The model runs :func:`run_batched`, which
  checks the offsets with :func:`check_row_splits` and cuts the events with
  :func:`split_events`. Works over gRPC and HTTP with any client.
- **Dynamic, by the server** (model ``exatrkx_dynamic``, written with
  ``ExaTrkXRepositoryOptions(dynamic_batching=...)``): Triton's dynamic batcher queues the
  requests of concurrent clients for up to ``max_queue_delay_us`` and hands up to
  ``max_batch_size`` of them to one ``execute``. Events differ in size, so ``FEATURES``
  (and ``ROW_SPLITS``) are ragged inputs (``allow_ragged_batch``), and the model's tensors
  carry Triton's batch dimension: a request sends ``FEATURES`` ``[1, N, F]`` (optionally
  ``ROW_SPLITS`` ``[1, n + 1]``) and gets ``LABELS`` ``[1, N]``; :func:`run_requests`
  computes every event of every request of the batch in one pass. The ``exatrkx`` model is
  unchanged (a model with a batch dimension cannot take ``[N, F]`` and ``[n + 1]`` in one
  request), so plain and row-split clients keep working.

  Where the offsets come from: backends that concatenate ragged inputs for the model
  (ONNX, PyTorch, TensorRT) need a ``batch_input`` of kind
  ``BATCH_ACCUMULATED_ELEMENT_COUNT`` to find each request's rows in the concatenation.
  The Python backend does not concatenate (nor provide batch inputs, checked with this
  Triton): ``execute`` gets the requests one by one, so :func:`run_requests` takes each
  request's row counts from its own tensors, the same accumulated counts, and
  concatenates the events itself.

Bound: a request holds at most ``max_events`` events (the model parameter
``MAX_EVENTS_PER_REQUEST``, :data:`DEFAULT_MAX_EVENTS_PER_REQUEST` by default). The count
is read from the length of ``ROW_SPLITS`` and checked before anything else is done with
the offsets, so an oversized request (a million empty events is 8 MB on the wire) is
refused in constant time instead of holding a model instance for the per-event loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from sonic_exatrkx.exatrkx.stages import (
    ROW_SPLITS,
    InputTooLargeError,
    prepare_features,
    run_pipeline,
)

if TYPE_CHECKING:
    from sonic_exatrkx.exatrkx import Pipeline

__all__ = ["DEFAULT_MAX_EVENTS_PER_REQUEST", "ROW_SPLITS", "TooManyEventsError",
           "batch_events", "check_event_count", "check_row_splits", "request_events",
           "run_batched", "run_requests", "split_events", "split_labels"]

#: Events one request may hold unless the model says otherwise (MAX_EVENTS_PER_REQUEST):
#: far above what a client gains from (a few to a few tens), far below a request whose
#: per-event loop would hold a model instance for seconds.
DEFAULT_MAX_EVENTS_PER_REQUEST = 64


class TooManyEventsError(InputTooLargeError):
    """A request whose ROW_SPLITS holds more events than the model's
    MAX_EVENTS_PER_REQUEST."""


def check_event_count(row_splits: np.ndarray, max_events: int | None) -> None:
    """Refuse ``row_splits`` of more than ``max_events`` events, reading only its length
    (O(1): nothing of the offsets is looked at, copied or converted)."""
    if max_events is None or np.ndim(row_splits) != 1:
        return  # no bound, or a shape check_row_splits reports
    n_events = np.shape(row_splits)[0] - 1
    if n_events > max_events:
        raise TooManyEventsError(
            f"request has {n_events} events ({ROW_SPLITS} of {n_events + 1} entries), more "
            f"than this model's MAX_EVENTS_PER_REQUEST={max_events}: send them in several "
            "requests")


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


def check_row_splits(row_splits: np.ndarray, n_rows: int, max_events: int | None = None
                     ) -> np.ndarray:
    """``row_splits`` as int64 if it is a valid offsets vector for ``n_rows`` rows.

    Valid: 1-D integers, at most ``max_events + 1`` entries (checked first, in O(1): see
    :func:`check_event_count`), at least two, first 0, non-decreasing, last ``n_rows``.
    Raises ``ValueError`` saying what is wrong otherwise (:class:`TooManyEventsError` for
    too many events).
    """
    rs = np.asarray(row_splits)
    if rs.ndim != 1:
        raise ValueError(f"{ROW_SPLITS} must be 1-D [n_events + 1], got shape {rs.shape}")
    check_event_count(rs, max_events)
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


def split_events(features: np.ndarray, row_splits: np.ndarray,
                 max_events: int | None = None) -> list[np.ndarray]:
    """The per-event row slices (views) of ``features`` (checked offsets, at most
    ``max_events`` events)."""
    rs = check_row_splits(row_splits, np.asarray(features).shape[0], max_events)
    return [features[int(a):int(b)] for a, b in zip(rs[:-1], rs[1:], strict=True)]


def split_labels(labels: np.ndarray, row_splits: np.ndarray) -> list[np.ndarray]:
    """The per-event label arrays of a batched response (the offsets sent with it)."""
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {labels.shape}")
    return split_events(labels, row_splits)


#: One prepared event of a request: its node features and its MODULE_IDS (None unless the
#: pipeline builds its graph from a module map).
Event = tuple[np.ndarray, np.ndarray | None]


def request_events(pipeline: Pipeline, features: np.ndarray, row_splits: np.ndarray | None,
                   max_spacepoints: int | None, max_events: int | None,
                   module_ids: np.ndarray | None = None) -> list[Event]:
    """The checked, prepared events of one request of the ``exatrkx`` model, each with its
    ``MODULE_IDS`` slice (a module-map pipeline's; else None): ``features`` alone is one
    event, with ``row_splits`` several (at most ``max_events``, checked first, in O(1));
    every event is checked before any is run."""
    if row_splits is None:
        return [(prepare_features(pipeline, features, max_spacepoints), module_ids)]
    check_event_count(row_splits, max_events)
    events = split_events(np.asarray(features), row_splits, max_events)
    ids = [None] * len(events) if module_ids is None else split_events(
        np.asarray(module_ids), row_splits, max_events)
    prepared = []
    for i, event in enumerate(events):
        try:
            prepared.append(prepare_features(pipeline, event, max_spacepoints))
        except ValueError as exc:
            raise type(exc)(f"event {i} of {len(events)} in the request: {exc}") from None
    return list(zip(prepared, ids, strict=True))


def _labels(pipeline: Pipeline, events: Sequence[Event]) -> list[np.ndarray]:
    ids = [i for _, i in events]
    labels = pipeline.run_many([f for f, _ in events],
                               ids if any(i is not None for i in ids) else None)
    return [lab.astype(np.int64, copy=False) for lab in labels]


def _joined(labels: Sequence[np.ndarray]) -> np.ndarray:
    return np.concatenate(labels) if len(labels) else np.zeros(0, np.int64)


def run_batched(pipeline: Pipeline, features: np.ndarray, max_spacepoints: int | None = None,
                row_splits: np.ndarray | None = None,
                max_events: int | None = DEFAULT_MAX_EVENTS_PER_REQUEST,
                module_ids: np.ndarray | None = None) -> np.ndarray:
    """Labels of the ``exatrkx`` model for one request.

    With ``row_splits`` (offsets ``[n_events + 1]``), ``features`` holds several events one
    after the other: all are checked, then computed in one pass, and the labels are
    concatenated in the same order, each event numbered as if it came alone.
    ``max_spacepoints`` applies per event, ``max_events`` (None: no bound) to the request,
    before any other work. ``module_ids`` (a module-map pipeline's ``MODULE_IDS``, one per
    row) are cut the same way.
    """
    if row_splits is None:
        return run_pipeline(pipeline, features, max_spacepoints, module_ids)
    return _joined(_labels(pipeline, request_events(pipeline, features, row_splits,
                                                    max_spacepoints, max_events,
                                                    module_ids)))


#: One request of the ``exatrkx_dynamic`` model: its FEATURES ``[B, N, F]`` and its
#: ROW_SPLITS ``[B, n + 1]`` or None (B, Triton's batch dimension, is 1 for one event).
DynamicRequest = tuple[np.ndarray, np.ndarray | None]


def run_requests(pipeline: Pipeline, requests: Sequence[DynamicRequest],
                 max_spacepoints: int | None = None,
                 max_events: int | None = DEFAULT_MAX_EVENTS_PER_REQUEST
                 ) -> list[np.ndarray | Exception]:
    """LABELS ``[B, N]`` of each request the dynamic batcher gave one ``execute``, or the
    exception that refuses it.

    Every event of every valid request is computed in one :meth:`Pipeline.run_many`
    pass. A request's own error (shape, size, bound, non-finite values) refuses that
    request only; if the joint pass fails, each request is run on its own so that the
    error lands on the request that caused it.
    """
    checked: list[_Items | Exception] = []
    for features, row_splits in requests:
        try:
            checked.append(_request_items(pipeline, features, row_splits, max_spacepoints,
                                          max_events))
        except ValueError as exc:
            checked.append(exc)
    valid = [c for c in checked if isinstance(c, _Items)]
    try:
        labels = iter(_labels(pipeline, [e for c in valid for item in c.events for e in item]))
    except Exception:  # noqa: BLE001 - find the request that caused it
        return [_alone(pipeline, c) for c in checked]
    return [c if isinstance(c, Exception)
            else c.stacked([_joined([next(labels) for _ in item]) for item in c.events])
            for c in checked]


class _Items:
    """The prepared events of each of a request's B batch items, and N."""

    def __init__(self, events: list[list[Event]], n_rows: int) -> None:
        self.events = events
        self.n_rows = n_rows

    def stacked(self, per_item: Sequence[np.ndarray]) -> np.ndarray:
        """LABELS ``[B, N]`` from the B items' label vectors."""
        return np.stack(per_item) if per_item else np.zeros((0, self.n_rows), np.int64)


def _request_items(pipeline: Pipeline, features: np.ndarray, row_splits: np.ndarray | None,
                   max_spacepoints: int | None, max_events: int | None) -> _Items:
    feats = np.asarray(features)
    if feats.ndim != 3:
        raise ValueError(f"FEATURES must be [batch, N, F] for the dynamically batched "
                         f"model, got shape {list(feats.shape)}")
    if row_splits is not None:
        if np.ndim(row_splits) != 2 or np.shape(row_splits)[0] != feats.shape[0]:
            raise ValueError(f"{ROW_SPLITS} must be [batch, n_events + 1] with the batch of "
                             f"FEATURES ({feats.shape[0]}), got shape "
                             f"{list(np.shape(row_splits))}")
        check_event_count(row_splits[0], max_events)  # O(1), before any work
    return _Items([request_events(pipeline, feats[b],
                                  None if row_splits is None else row_splits[b],
                                  max_spacepoints, max_events)
                   for b in range(feats.shape[0])], feats.shape[1])


def _alone(pipeline: Pipeline, checked: _Items | Exception) -> np.ndarray | Exception:
    """One request's labels from a pass of its own (after a joint pass failed)."""
    if isinstance(checked, Exception):
        return checked
    try:
        return checked.stacked([_joined(_labels(pipeline, item)) for item in checked.events])
    except Exception as exc:  # noqa: BLE001 - this request's error
        return exc
