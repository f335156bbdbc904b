"""ExaTrkX as a service: the clients that run the stages where the service option says.

:func:`exatrkx_client` builds, for a :class:`~sonic_exatrkx.sonic.service_option.ServiceOption`
(S0-S4, custom, or stage names: the table is in that module), one client from FEATURES to
LABELS: in-process, one Triton model (custom backend or ensemble) or a chain of stages each
local or served. The local stages call the same :class:`Pipeline` stage methods as the
served ones, so every option gives the labels of ``Pipeline.run``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from sonic_exatrkx.exatrkx import Pipeline, PipelineConfig, PipelineResult
from sonic_exatrkx.framework import ConfigurationError
from sonic_exatrkx.sonic.client import InferenceClient, LocalClient, TensorSpec
from sonic_exatrkx.sonic.options import TritonOptions
from sonic_exatrkx.sonic.service_option import ServiceOption
from sonic_exatrkx.sonic.staged import StagedClient
from sonic_exatrkx.sonic.triton import TritonClient

STAGES: tuple[str, ...] = ("embed", "graph", "filter", "gnn", "tracks")
PIPELINE_MODEL = "exatrkx"
ENSEMBLE_MODEL = "exatrkx_ensemble"
STAGE_MODELS: dict[str, str] = {stage: f"exatrkx_{stage}" for stage in STAGES}

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


#: The optional output of the in-process pipeline: the full :class:`PipelineResult`
#: (edges and scores of every stage) for edge-level performance.
INTERMEDIATES_OUTPUT = "INTERMEDIATES"


def local_client(pipeline: Pipeline, *, max_workers: int = 1, stage: str = "pipeline",
                 name: str | None = None, intermediates: bool = False) -> LocalClient:
    """``stage`` (default: the whole pipeline) in this process. ``intermediates``: the
    whole pipeline also returns its :class:`PipelineResult` as the declared optional
    output ``INTERMEDIATES``."""
    inputs, outputs = stage_specs(stage, pipeline.config)
    if not intermediates:
        return LocalClient(local_stage(pipeline, stage), name=name or f"local:{stage}",
                           inputs=inputs, outputs=outputs, max_workers=max_workers)
    if stage != "pipeline":
        raise ConfigurationError(f"intermediates come from the whole pipeline, not the "
                                 f"{stage!r} stage")

    def run(t: Mapping[str, Any]) -> dict[str, Any]:
        result = pipeline.run(t["FEATURES"], return_intermediates=True)
        return {"LABELS": result.labels, INTERMEDIATES_OUTPUT: result}

    return LocalClient(run, name=name or "local:pipeline", inputs=inputs, outputs=outputs,
                       max_workers=max_workers, extras={INTERMEDIATES_OUTPUT: PipelineResult})


def exatrkx_client(
    pipeline: Pipeline,
    service_option: str | Sequence[str] | ServiceOption = "custom",
    servers: Sequence[str] = (),
    options: TritonOptions | None = None,
    *,
    local_threads: int = 1,
) -> InferenceClient:
    """FEATURES -> LABELS for one event, with the stages placed as ``service_option``
    says, on ``servers`` (failover order) with the transport ``options`` shared by every
    served model; ``options.fallback_local`` gives each of them a local fallback."""
    option = ServiceOption.parse(service_option)
    if not option.remote:
        return local_client(pipeline, max_workers=local_threads)
    if not servers:
        raise ConfigurationError(f"service option {option} serves "
                                 f"{option.whole or option.stages}: give a server URL "
                                 "(host:port)")
    opts = options if options is not None else TritonOptions()

    def remote(model: str, stage: str) -> TritonClient:
        inputs, outputs = stage_specs(stage, pipeline.config)
        fallback = local_client(pipeline, max_workers=local_threads, stage=stage) \
            if opts.fallback_local else None
        return TritonClient(model=model, servers=servers, inputs=inputs, outputs=outputs,
                            options=opts, fallback=fallback)

    if option.whole == "pipeline":
        return remote(PIPELINE_MODEL, "pipeline")
    if option.whole == "ensemble":
        return remote(ENSEMBLE_MODEL, "pipeline")
    stages: list[InferenceClient] = [
        remote(STAGE_MODELS[s], s) if s in option.stages
        else local_client(pipeline, max_workers=local_threads, stage=s)
        for s in STAGES
    ]
    inputs, outputs = stage_specs("pipeline", pipeline.config)
    return StagedClient(stages, name=f"staged:{option}", inputs=inputs, outputs=outputs)
