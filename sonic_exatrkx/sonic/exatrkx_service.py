"""ExaTrkX as a service: which stages run where (the seeds' service options S0-S4).

Model names, tensor specs and stage functions are the service contract of
:mod:`sonic_exatrkx.exatrkx.stages`, which the server's repository and served models read
too; the local stages call the same stage functions as the served ones, so every option
gives the labels of ``Pipeline.run``.

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

from sonic_exatrkx.exatrkx import Pipeline, PipelineConfig
from sonic_exatrkx.exatrkx import stages as contract
from sonic_exatrkx.exatrkx.stages import (
    ENSEMBLE_MODEL,
    PIPELINE_MODEL,
    STAGE_MODELS,
    STAGES,
    SpecError,
    Specs,
)
from sonic_exatrkx.framework import ConfigurationError
from sonic_exatrkx.sonic.client import InferenceClient, LocalClient
from sonic_exatrkx.sonic.staged import StagedClient
from sonic_exatrkx.sonic.triton import TritonClient

SERVICE_OPTIONS: dict[str, tuple[str, ...] | str] = {
    "S0": (),
    "S1": ("embed", "filter", "gnn"),
    "S2": ("embed", "graph", "filter", "gnn"),
    "S3": STAGES,
    "S4": "ensemble",
    "custom": "pipeline",
}
_LOCAL_STAGES = ("pipeline", *STAGES)


def stage_specs(stage: str, config: PipelineConfig) -> tuple[Specs, Specs]:
    """Input and output specs of ``stage`` (or ``"pipeline"``), with symbolic sizes:
    N space points, E graph edges, Ef filtered edges (the contract's table)."""
    try:
        return contract.stage_specs(stage, config)
    except SpecError as exc:
        raise ConfigurationError(str(exc)) from None


def local_stage(pipeline: Pipeline, stage: str) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    """The in-process function of ``stage``: the contract's stage function, as served."""
    if stage not in _LOCAL_STAGES:
        raise ConfigurationError(f"unknown ExaTrkX stage {stage!r}; one of "
                                 f"{', '.join(_LOCAL_STAGES)}")
    if stage == "pipeline":
        return lambda t: {"LABELS": contract.run_pipeline(pipeline, t["FEATURES"])}
    return lambda t: contract.run_stage(pipeline, stage, t)


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
