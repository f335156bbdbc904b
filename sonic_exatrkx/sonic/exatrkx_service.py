"""ExaTrkX as a service: which stages run where (the seeds' service options S0-S4).

The served models and their tensors are those the server package writes (model names
below must match its repository); the local stages call the same :class:`Pipeline` stage
methods as the served ones, so every option gives the labels of ``Pipeline.run``.

===========  =====================================================================
option       what runs on the server (the rest runs in this process)
===========  =====================================================================
``S0``       nothing: everything local
``S1``       the torch models: embedding, filter, GNN (graph and track building local)
``S2``       S1 plus graph building (track building local)
``S3``       every stage, each as its own request
``S4``       the ensemble ``exatrkx_ensemble`` (one request, stages chained server-side)
``custom``   the custom backend ``exatrkx`` (one request, whole pipeline in one model)
===========  =====================================================================

A tuple of stage names (e.g. ``("graph",)``) serves exactly those stages.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from sonic_exatrkx.exatrkx import Pipeline, PipelineConfig
from sonic_exatrkx.framework import ConfigurationError
from sonic_exatrkx.sonic.client import InferenceClient, LocalClient, TensorSpec
from sonic_exatrkx.sonic.staged import StagedClient
from sonic_exatrkx.sonic.triton import TritonClient

STAGES: tuple[str, ...] = ("embed", "graph", "filter", "gnn", "tracks")
PIPELINE_MODEL = "exatrkx"
ENSEMBLE_MODEL = "exatrkx_ensemble"
STAGE_MODELS: dict[str, str] = {stage: f"exatrkx_{stage}" for stage in STAGES}
SERVICE_OPTIONS: dict[str, tuple[str, ...] | str] = {
    "S0": (),
    "S1": ("embed", "filter", "gnn"),
    "S2": ("embed", "graph", "filter", "gnn"),
    "S3": STAGES,
    "S4": "ensemble",
    "custom": "pipeline",
}

Specs = dict[str, TensorSpec]


def stage_specs(stage: str, config: PipelineConfig) -> tuple[Specs, Specs]:
    """Input and output specs of ``stage`` (or ``"pipeline"``), with symbolic sizes:
    N space points, E graph edges, Ef filtered edges."""
    feats = TensorSpec("FP32", ("N", config.features.width))
    emb = TensorSpec("FP32", ("N", config.embedding.out_features))
    edges = TensorSpec("INT64", (2, "E"))
    f_edges = TensorSpec("INT64", (2, "Ef"))
    scores = TensorSpec("FP32", ("Ef",))
    labels = TensorSpec("INT64", ("N",))
    table: dict[str, tuple[Specs, Specs]] = {
        "pipeline": ({"FEATURES": feats}, {"LABELS": labels}),
        "embed": ({"FEATURES": feats}, {"EMBEDDING": emb}),
        "graph": ({"EMBEDDING": emb, "FEATURES": feats}, {"EDGES": edges}),
        "filter": ({"FEATURES": feats, "EDGES": edges}, {"FILTERED_EDGES": f_edges}),
        "gnn": ({"FEATURES": feats, "FILTERED_EDGES": f_edges}, {"GNN_SCORES": scores}),
        "tracks": ({"FEATURES": feats, "FILTERED_EDGES": f_edges, "GNN_SCORES": scores},
                   {"LABELS": labels}),
    }
    if stage not in table:
        raise ConfigurationError(f"unknown ExaTrkX stage {stage!r}; one of {', '.join(table)}")
    return table[stage]


def local_stage(pipeline: Pipeline, stage: str) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    """The in-process function of ``stage``: the Pipeline's own stage method, as served."""
    p = pipeline

    def embed(t: Mapping[str, Any]) -> dict[str, Any]:
        return {"EMBEDDING": p.embed(t["FEATURES"])}

    def graph(t: Mapping[str, Any]) -> dict[str, Any]:
        emb = np.ascontiguousarray(t["EMBEDDING"], dtype=np.float32)
        return {"EDGES": p.graph(emb, t["FEATURES"]).astype(np.int64, copy=False)}

    def filter_(t: Mapping[str, Any]) -> dict[str, Any]:
        edges = np.asarray(t["EDGES"], dtype=np.int64)
        keep = p.filter_edge_mask(edges, p.score_filter(t["FEATURES"], edges))
        return {"FILTERED_EDGES": np.ascontiguousarray(edges[:, keep])}

    def gnn(t: Mapping[str, Any]) -> dict[str, Any]:
        return {"GNN_SCORES": p.score_gnn(t["FEATURES"], np.asarray(t["FILTERED_EDGES"]))}

    def tracks(t: Mapping[str, Any]) -> dict[str, Any]:
        labels = p.tracks(t["FEATURES"].shape[0], np.asarray(t["FILTERED_EDGES"]),
                          np.asarray(t["GNN_SCORES"], dtype=np.float32))
        return {"LABELS": labels.astype(np.int64, copy=False)}

    def whole(t: Mapping[str, Any]) -> dict[str, Any]:
        return {"LABELS": p.run(t["FEATURES"]).labels.astype(np.int64, copy=False)}

    funcs = {"embed": embed, "graph": graph, "filter": filter_, "gnn": gnn,
             "tracks": tracks, "pipeline": whole}
    if stage not in funcs:
        raise ConfigurationError(f"unknown ExaTrkX stage {stage!r}; one of {', '.join(funcs)}")
    return funcs[stage]


def served_stages(service_option: str | Sequence[str]) -> tuple[str, ...] | str:
    """The stages served for ``service_option``, or ``"pipeline"`` / ``"ensemble"``."""
    if isinstance(service_option, str):
        if service_option not in SERVICE_OPTIONS:
            raise ConfigurationError(
                f"service_option must be one of {', '.join(SERVICE_OPTIONS)} or a tuple of "
                f"stages {STAGES}, got {service_option!r}")
        return SERVICE_OPTIONS[service_option]
    stages = tuple(service_option)
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise ConfigurationError(f"service_option: unknown stages {unknown}; stages are "
                                 f"{', '.join(STAGES)}")
    return tuple(s for s in STAGES if s in stages)


def local_client(pipeline: Pipeline, *, max_workers: int = 1, stage: str = "pipeline",
                 name: str | None = None) -> LocalClient:
    """``stage`` (default: the whole pipeline) in this process."""
    inputs, outputs = stage_specs(stage, pipeline.config)
    return LocalClient(local_stage(pipeline, stage), name=name or f"local:{stage}",
                       inputs=inputs, outputs=outputs, max_workers=max_workers)


def exatrkx_client(
    pipeline: Pipeline,
    *,
    service_option: str | Sequence[str] = "custom",
    servers: str | Sequence[str] | None = None,
    fallback_local: bool = False,
    local_threads: int = 1,
    **triton: Any,
) -> InferenceClient:
    """FEATURES -> LABELS for one event, with the stages placed as ``service_option``
    says. ``triton`` keywords go to every :class:`TritonClient` (protocol, timeout_s,
    allowed_tries, ...). ``fallback_local`` gives each remote model a local fallback."""
    served = served_stages(service_option)
    if served == () or served is None:
        return local_client(pipeline, max_workers=local_threads)
    if servers is None:
        raise ConfigurationError(f"service option {service_option!r} serves "
                                 f"{served}: give a server URL (server=host:port)")

    def remote(model: str, stage: str) -> TritonClient:
        inputs, outputs = stage_specs(stage, pipeline.config)
        fallback = local_client(pipeline, max_workers=local_threads, stage=stage) \
            if fallback_local else None
        return TritonClient(model=model, servers=servers, inputs=inputs, outputs=outputs,
                            fallback=fallback, **triton)

    if served == "pipeline":
        return remote(PIPELINE_MODEL, "pipeline")
    if served == "ensemble":
        return remote(ENSEMBLE_MODEL, "pipeline")
    stages: list[InferenceClient] = [
        remote(STAGE_MODELS[s], s) if s in served
        else local_client(pipeline, max_workers=local_threads, stage=s)
        for s in STAGES
    ]
    inputs, outputs = stage_specs("pipeline", pipeline.config)
    label = service_option if isinstance(service_option, str) else "+".join(served)
    return StagedClient(stages, name=f"staged:{label}", inputs=inputs, outputs=outputs)
