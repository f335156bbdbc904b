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

from sonic_exatrkx.exatrkx import Pipeline, PipelineConfig, PipelineResult
from sonic_exatrkx.exatrkx import stages as contract
from sonic_exatrkx.exatrkx.stages import (
    DYNAMIC_MODEL,
    ENSEMBLE_MODEL,
    MODULE_IDS,
    PIPELINE_MODEL,
    STAGE_MODELS,
    STAGES,
    SpecError,
    Specs,
    pipeline_stages,
)
from sonic_exatrkx.framework import ConfigurationError
from sonic_exatrkx.sonic.batch_dim import BatchDimClient
from sonic_exatrkx.sonic.client import InferenceClient, LocalClient
from sonic_exatrkx.sonic.options import TritonOptions
from sonic_exatrkx.sonic.service_option import ServiceOption
from sonic_exatrkx.sonic.staged import StagedClient
from sonic_exatrkx.sonic.triton import TritonClient

_LOCAL_STAGES = ("pipeline", "dynamic", *STAGES)


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
        return lambda t: {"LABELS": contract.run_pipeline(pipeline, t["FEATURES"],
                                                          module_ids=t.get(MODULE_IDS))}
    if stage == "dynamic":  # one event behind the batch dimension (custom-batched's
        # fallback): the pipeline's labels
        return lambda t: {"LABELS": contract.run_pipeline(pipeline, t["FEATURES"][0])[None]}
    return lambda t: contract.run_stage(pipeline, stage, t)


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
        result = pipeline.run(t["FEATURES"], return_intermediates=True,
                              module_ids=t.get(MODULE_IDS))
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
    models_checksum: str | None = None,
) -> InferenceClient:
    """FEATURES -> LABELS for one event, with the stages placed as ``service_option``
    says, on ``servers`` (failover order) with the transport ``options`` shared by every
    served model; ``options.fallback_local`` gives each of them a local fallback.
    ``models_checksum``: the job's models folder's; servers serving other models are
    refused (:class:`~sonic_exatrkx.sonic.errors.ModelMismatchError`)."""
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
                            options=opts, fallback=fallback, models_checksum=models_checksum)

    if option.whole == "pipeline":
        return remote(PIPELINE_MODEL, "pipeline")
    if option.whole == "dynamic":
        inputs, outputs = stage_specs("pipeline", pipeline.config)
        return BatchDimClient(remote(DYNAMIC_MODEL, "dynamic"), inputs=inputs, outputs=outputs)
    if option.whole == "ensemble":
        return remote(ENSEMBLE_MODEL, "pipeline")
    stages: list[InferenceClient] = [
        remote(STAGE_MODELS[s], s) if s in option.stages
        else local_client(pipeline, max_workers=local_threads, stage=s)
        for s in pipeline_stages(pipeline.config)  # a module map has no embed stage
    ]
    inputs, outputs = stage_specs("pipeline", pipeline.config)
    return StagedClient(stages, name=f"staged:{option}", inputs=inputs, outputs=outputs)
