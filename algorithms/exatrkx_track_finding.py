"""ExaTrkX track finding as a SONIC producer: in this process or on Triton servers.

The algorithm takes one :class:`TrackFindingConfig` (ACTS's ``Config`` struct, CMSSW's
parameter set): with the defaults it runs the shipped models in-process; ``inference``
moves the work to Triton (``"triton"``) or lets the job decide (``"auto"``: the server if
it answers, else local, logged once); ``service_option`` says which stages are served and
``triton`` carries every transport setting as one :class:`TritonOptions` value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from algorithms.keys import SPACEPOINTS, TRACKS
from sonic_exatrkx.exatrkx import Pipeline, PipelineResult
from sonic_exatrkx.exatrkx.pipeline import models_checksum
from sonic_exatrkx.exatrkx.stages import MODULE_IDS
from sonic_exatrkx.framework import (
    AlgorithmContext,
    ConfigurationError,
    ReadHandle,
    WriteHandle,
)
from sonic_exatrkx.paths import data_dir
from sonic_exatrkx.sonic import (
    InferenceClient,
    ServiceOption,
    SonicProducer,
    TritonOptions,
    exatrkx_client,
    local_client,
    parse_servers,
)
from sonic_exatrkx.sonic.errors import check_count
from sonic_exatrkx.sonic.exatrkx_service import INTERMEDIATES_OUTPUT

#: Event store key of the full `PipelineResult` (edges and scores per stage).
INTERMEDIATES = "exatrkx_intermediates"
INFERENCE = ("local", "triton", "auto")


def default_model_dir() -> Path:
    """The shipped models (`data/models`)."""
    return data_dir() / "models"


@runtime_checkable
class ServerSource(Protocol):
    """Where a job's servers are known only once it starts (a server the job launches as
    a framework service): asked for its URLs at ``initialize``."""

    def urls(self) -> Sequence[str]: ...


@dataclass(frozen=True)
class TrackFindingConfig:
    """Everything :class:`ExaTrkXTrackFinding` needs, validated once.

    ``models``: model folder (None: the shipped ``data/models``). ``pipeline_threads``:
    torch/FAISS threads of each in-process pipeline call; the event loop runs several
    events at once, so keep ``pipeline_threads * Sequencer.num_threads`` at or below the
    cores (the seeds saw FAISS and framework threads fight). ``inference``: local |
    triton | auto. ``servers``: host:port URLs in failover order, or a
    :class:`ServerSource`. ``service_option``: custom, S0-S4 or stage names
    (:class:`ServiceOption`). ``triton``: the transport (:class:`TritonOptions`).
    ``mode``: sync | pseudo-async | async (None: async for a server, sync in-process).
    ``local_threads``: the pool running local work in async modes; ``helper_threads``:
    pseudo-async waiters. ``metrics_file``: Prometheus textfile of client statistics,
    written at the end; ``metrics_port``: serve them on 127.0.0.1 during the job (0: a
    free port, logged);
    ``trace_file``: per-event CSV of preparation, round trip and produce times.
    ``output_intermediates``: also store the full :class:`PipelineResult` (in-process
    inference only: the served models return labels).
    """

    models: Path | None = None
    pipeline_threads: int = 1
    input_spacepoints: str = SPACEPOINTS
    output_tracks: str = TRACKS
    output_intermediates: str | None = None
    inference: str = "local"
    servers: tuple[str, ...] | ServerSource = ()
    service_option: ServiceOption = field(
        default_factory=lambda: ServiceOption.parse("custom"))
    triton: TritonOptions = field(default_factory=TritonOptions)
    mode: str | None = None
    local_threads: int = 1
    helper_threads: int = 4
    metrics_file: Path | None = None
    metrics_port: int | None = None
    trace_file: Path | None = None

    def __post_init__(self) -> None:
        if self.inference not in INFERENCE:
            raise ConfigurationError(f"inference must be one of {INFERENCE}, got "
                                     f"{self.inference!r}")
        set_ = object.__setattr__
        set_(self, "service_option", ServiceOption.parse(self.service_option))
        if not isinstance(self.triton, TritonOptions):
            raise ConfigurationError(f"triton must be TritonOptions, got {self.triton!r}")
        if not isinstance(self.servers, ServerSource):
            servers = self.servers
            set_(self, "servers", tuple(parse_servers(servers, self.triton.protocol))
                 if servers else ())
        for key in ("models", "metrics_file", "trace_file"):
            value = getattr(self, key)
            if value is not None:
                set_(self, key, Path(value))
        check_count(self.pipeline_threads, "pipeline_threads")
        check_count(self.local_threads, "local_threads")
        if self.remote and self.output_intermediates:
            raise ConfigurationError("output_intermediates needs inference='local' (the "
                                     "served models return labels only)")

    @property
    def remote(self) -> bool:
        """Whether anything may run on a server."""
        return self.inference != "local" and self.service_option.remote

    @property
    def model_dir(self) -> Path:
        return self.models if self.models is not None else default_model_dir()

    def server_urls(self) -> list[str]:
        """The servers' URLs now (a :class:`ServerSource` is asked)."""
        if isinstance(self.servers, ServerSource):
            return parse_servers(list(self.servers.urls()), self.triton.protocol)
        return list(self.servers)


class ExaTrkXTrackFinding(SonicProducer):
    """Space points -> track id per space point, in this process or on Triton."""

    Config = TrackFindingConfig

    def __init__(self, config: TrackFindingConfig | None = None, *, name: str | None = None,
                 level: int | str | None = None) -> None:
        cfg = config if config is not None else TrackFindingConfig()
        if not isinstance(cfg, TrackFindingConfig):
            raise ConfigurationError(f"{name or type(self).__name__}: config must be a "
                                     f"TrackFindingConfig, got {type(cfg).__name__}")
        super().__init__(mode=cfg.mode, helper_threads=cfg.helper_threads,
                         metrics_file=cfg.metrics_file, trace_file=cfg.trace_file,
                         metrics_port=cfg.metrics_port, name=name, level=level)
        self.config = cfg
        if cfg.remote and cfg.servers == ():  # a job may fill them in (its own server)
            raise ConfigurationError(f"{self.name}: inference={cfg.inference!r} needs "
                                     "servers (host:port, a list, or a server the job starts)")
        self.model_dir = cfg.model_dir
        if not self.model_dir.is_dir():
            raise ConfigurationError(
                f"{self.name}: model folder {self.model_dir} not found (train one with "
                "`sonic-exatrkx train --output DIR` or set TrackFindingConfig.models)"
            )
        self.pipeline = Pipeline.from_directory(self.model_dir,
                                                num_threads=cfg.pipeline_threads)
        self.spacepoints = ReadHandle(self, cfg.input_spacepoints, pd.DataFrame)
        self.tracks = WriteHandle(self, cfg.output_tracks, np.ndarray)
        self.intermediates = (
            WriteHandle(self, cfg.output_intermediates, PipelineResult)
            if cfg.output_intermediates else None
        )
        self.local: InferenceClient = local_client(
            self.pipeline, max_workers=cfg.local_threads,
            intermediates=self.intermediates is not None)
        self.client = None if cfg.remote else self.local

    def initialize(self) -> None:
        cfg = self.config
        if self.client is None:  # remote: the servers are known now (a job service)
            client = exatrkx_client(self.pipeline, cfg.service_option, cfg.server_urls(),
                                    cfg.triton, local_threads=cfg.local_threads,
                                    models_checksum=models_checksum(self.model_dir))
            if cfg.inference == "auto" and not client.healthy():
                self.logger.warning("%s: no Triton server answers; inference='auto' runs "
                                    "ExaTrkX in this process", self.name)
                client.close()
                client = self.local
            self.client = client
        super().initialize()
        extra = f", local pool {cfg.local_threads}" if self.mode == "async" else ""
        if self.mode == "pseudo-async":
            extra += f", helper threads {self.helper_threads}"
        self.logger.info("%s: %s (%s), mode %s, torch/FAISS threads per call %s%s",
                         self.name, "served inference" if self.client.remote
                         else "inference in this process", self.client.name, self.mode,
                         self.pipeline.config.num_threads, extra)

    def make_inputs(self, ctx: AlgorithmContext) -> dict[str, np.ndarray]:
        sp = self.spacepoints(ctx)
        features = self.pipeline.features(
            sp["x"].to_numpy(), sp["y"].to_numpy(), sp["z"].to_numpy()
        )
        inputs = {"FEATURES": self.pipeline.prepare(features)}
        if self.pipeline.config.module_map:
            if "geometry_id_1" not in sp.columns:
                raise ConfigurationError(
                    f"{self.name}: event {ctx.event}: the models' module map needs each space "
                    "point's module (column geometry_id_1), which these space points lack")
            inputs[MODULE_IDS] = sp["geometry_id_1"].to_numpy(np.uint64)
        return inputs

    def put_outputs(self, ctx: AlgorithmContext, outputs: Mapping[str, Any]) -> None:
        self.tracks(ctx, outputs["LABELS"])
        if self.intermediates is not None:
            self.intermediates(ctx, outputs[INTERMEDIATES_OUTPUT])

    def _close(self) -> None:
        super()._close()
        self.local.close()  # its pool, when the remote client was the one in use


__all__ = ["INFERENCE", "INTERMEDIATES", "ExaTrkXTrackFinding", "ServerSource",
           "TrackFindingConfig", "default_model_dir"]
