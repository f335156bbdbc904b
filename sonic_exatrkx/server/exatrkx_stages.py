"""The ExaTrkX chain cut into the stages that the per-stage Triton models serve.

Each stage is a function of named numpy arrays that calls the loaded
:class:`~sonic_exatrkx.exatrkx.Pipeline`'s own stage methods (``embed``, ``graph``,
``score_filter`` + ``filter_edge_mask``, ``score_gnn``, ``tracks``), exactly what
:meth:`Pipeline.run` is made of, so the ensemble gives the labels of the in-process
pipeline. Nothing here needs Triton: :func:`run_chain` strings the stages together the way
the ensemble does, which lets tests compare with ``Pipeline.run`` without a server.

Tensors between stages (ensemble-level names)::

    FEATURES [N,F] -> embed -> EMBEDDING [N,D]
    EMBEDDING, FEATURES -> graph -> EDGES [2,E]
    FEATURES, EDGES -> filter -> FILTERED_EDGES [2,E']      (filter model, cut, degree cap)
    FEATURES, FILTERED_EDGES -> gnn -> GNN_SCORES [E'] (logits)
    FEATURES, FILTERED_EDGES, GNN_SCORES -> tracks -> LABELS [N]

The ``exatrkx`` model also takes an optional ``ROW_SPLITS`` INT64 ``[n_events + 1]`` (see
:mod:`sonic_exatrkx.server.batching`): several events in one request, each run on its own,
so every event's labels equal those of a one-event request.

Bad requests raise ``ValueError`` with a message naming the tensor (the served models turn
it into a per-request Triton error): non-finite values, edges pointing outside the event,
tensors whose lengths disagree. Triton itself already refuses wrong data types and shapes
against the config.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import torch

from sonic_exatrkx.exatrkx import (
    Pipeline,
    PipelineConfig,
    check_finite,
)

from .batching import ROW_SPLITS, split_events

Spec = tuple[str, str, tuple[int, ...]]  # (tensor name, Triton data type, dims)
STAGES: tuple[str, ...] = ("embed", "graph", "filter", "gnn", "tracks")


class InputTooLargeError(ValueError):
    """An event with more space points than the model's MAX_SPACEPOINTS."""


def stage_io(stage: str, config: PipelineConfig) -> tuple[list[Spec], list[Spec]]:
    """Input and output tensor specs of ``stage`` (``"pipeline"`` = the whole chain)."""
    feats: Spec = ("FEATURES", "FP32", (-1, config.features.width))
    emb: Spec = ("EMBEDDING", "FP32", (-1, config.embedding.out_features))
    edges: Spec = ("EDGES", "INT64", (2, -1))
    f_edges: Spec = ("FILTERED_EDGES", "INT64", (2, -1))
    scores: Spec = ("GNN_SCORES", "FP32", (-1,))
    labels: Spec = ("LABELS", "INT64", (-1,))
    row_splits: Spec = (ROW_SPLITS, "INT64", (-1,))
    table: dict[str, tuple[list[Spec], list[Spec]]] = {
        "pipeline": ([feats], [labels]),
        "batched": ([feats, row_splits], [labels]),  # the exatrkx model; ROW_SPLITS optional
        "embed": ([feats], [emb]),
        "graph": ([emb, feats], [edges]),
        "filter": ([feats, edges], [f_edges]),
        "gnn": ([feats, f_edges], [scores]),
        "tracks": ([feats, f_edges, scores], [labels]),
    }
    if stage not in table:
        raise ValueError(f"unknown ExaTrkX stage {stage!r}; one of {', '.join(table)}")
    return table[stage]


def prepare_features(pipeline: Pipeline, features: np.ndarray, max_spacepoints: int | None = None
                     ) -> np.ndarray:
    """The size limit of the served model, then ``Pipeline.prepare`` (threads, width and
    finiteness checks, float32 layout), as at the start of ``run``."""
    feats = np.asarray(features)
    if max_spacepoints is not None and feats.ndim >= 1 and feats.shape[0] > max_spacepoints:
        raise InputTooLargeError(
            f"event has {feats.shape[0]} space points, more than this model's "
            f"MAX_SPACEPOINTS={max_spacepoints}")
    return pipeline.prepare(feats)


def _check_edges(name: str, edges: np.ndarray, n_nodes: int) -> np.ndarray:
    """``edges`` as int64 ``[2, E]`` with every index in ``[0, n_nodes)``."""
    e = np.asarray(edges)
    if e.ndim != 2 or e.shape[0] != 2:
        raise ValueError(f"{name} must have shape [2, E], got {list(e.shape)}")
    if e.dtype.kind not in "iu":
        raise ValueError(f"{name} must be integers, got {e.dtype}")
    e = np.ascontiguousarray(e, dtype=np.int64)
    if e.size and (int(e.min()) < 0 or int(e.max()) >= n_nodes):
        raise ValueError(f"{name} holds node indices in [{int(e.min())}, {int(e.max())}] but "
                         f"FEATURES has {n_nodes} rows (valid: 0..{n_nodes - 1})")
    return e


def _check_float(name: str, array: np.ndarray, rows: int, stage: str) -> np.ndarray:
    """``array`` as contiguous float32 with ``rows`` rows and finite values."""
    a = np.asarray(array)
    if a.shape[:1] != (rows,):
        raise ValueError(f"{name} has {a.shape[0] if a.ndim else 0} rows, expected {rows} "
                         f"(shape {list(a.shape)})")
    check_finite(a, stage, name)
    return np.ascontiguousarray(a, dtype=np.float32)


# Each served stage calls the Pipeline's own stage method, so the per-stage models and
# the ensemble return what `Pipeline.run` computes, bit for bit: one implementation.


def _embed(p: Pipeline, t: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {"EMBEDDING": p.embed(t["FEATURES"])}


def _graph(p: Pipeline, t: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    emb = _check_float("EMBEDDING", t["EMBEDDING"], t["FEATURES"].shape[0], "graph")
    return {"EDGES": p.graph(emb, t["FEATURES"]).astype(np.int64, copy=False)}


def _filter(p: Pipeline, t: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    edges = _check_edges("EDGES", t["EDGES"], t["FEATURES"].shape[0])
    keep = p.filter_edge_mask(edges, p.score_filter(t["FEATURES"], edges))
    return {"FILTERED_EDGES": np.ascontiguousarray(edges[:, keep])}


def _gnn(p: Pipeline, t: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    f_edges = _check_edges("FILTERED_EDGES", t["FILTERED_EDGES"], t["FEATURES"].shape[0])
    return {"GNN_SCORES": p.score_gnn(t["FEATURES"], f_edges)}


def _tracks(p: Pipeline, t: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    f_edges = _check_edges("FILTERED_EDGES", t["FILTERED_EDGES"], t["FEATURES"].shape[0])
    scores = _check_float("GNN_SCORES", t["GNN_SCORES"], f_edges.shape[1], "tracks")
    labels = p.tracks(t["FEATURES"].shape[0], f_edges, scores)
    return {"LABELS": labels.astype(np.int64, copy=False)}


_STAGE_FUNCS: dict[str, Callable[[Pipeline, Mapping[str, np.ndarray]], dict[str, np.ndarray]]] = {
    "embed": _embed, "graph": _graph, "filter": _filter, "gnn": _gnn, "tracks": _tracks,
}


def run_stage(pipeline: Pipeline, stage: str, tensors: Mapping[str, np.ndarray],
              max_spacepoints: int | None = None) -> dict[str, np.ndarray]:
    """Run one stage on its named inputs; returns its named outputs."""
    if stage not in _STAGE_FUNCS:
        raise ValueError(f"unknown ExaTrkX stage {stage!r}; one of {', '.join(STAGES)}")
    t = dict(tensors)
    missing = [n for n, _, _ in stage_io(stage, pipeline.config)[0] if t.get(n) is None]
    if missing:
        raise ValueError(f"stage '{stage}' needs inputs {missing}")
    t["FEATURES"] = prepare_features(pipeline, t["FEATURES"], max_spacepoints)
    with torch.inference_mode():
        return _STAGE_FUNCS[stage](pipeline, t)


def run_pipeline(pipeline: Pipeline, features: np.ndarray, max_spacepoints: int | None = None,
                 row_splits: np.ndarray | None = None) -> np.ndarray:
    """Labels of the whole chain (the custom-backend model): ``Pipeline.run`` itself.

    With ``row_splits`` (offsets ``[n_events + 1]``), ``features`` holds several events one
    after the other: each is checked and run on its own and the labels are concatenated in
    the same order, each event numbered as if it came alone. ``max_spacepoints`` applies per
    event.
    """
    if row_splits is None:
        feats = prepare_features(pipeline, features, max_spacepoints)
        return pipeline.run(feats).labels.astype(np.int64, copy=False)
    events = split_events(np.asarray(features), row_splits)
    prepared = []
    for i, event in enumerate(events):  # check every event before running any
        try:
            prepared.append(prepare_features(pipeline, event, max_spacepoints))
        except ValueError as exc:
            raise type(exc)(f"event {i} of {len(events)} in the request: {exc}") from None
    labels = [pipeline.run(f).labels.astype(np.int64, copy=False) for f in prepared]
    return np.concatenate(labels) if labels else np.zeros(0, np.int64)


def run_chain(pipeline: Pipeline, features: np.ndarray) -> np.ndarray:
    """Labels from the stages chained as in the ensemble (for tests, no server)."""
    tensors: dict[str, np.ndarray] = {"FEATURES": np.asarray(features)}
    for stage in STAGES:
        inputs, _ = stage_io(stage, pipeline.config)
        tensors.update(run_stage(pipeline, stage, {n: tensors[n] for n, _, _ in inputs}))
    return tensors["LABELS"]
