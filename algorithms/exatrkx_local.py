"""ExaTrkX track finding as a SONIC producer: in this process or on Triton servers.

The module keeps its historical name: with the defaults (``inference="local"``) the
algorithm runs the pipeline in-process exactly as before; one keyword moves the work to
Triton (``inference="triton"``, ``server="127.0.0.1:8001"``) or lets the job decide
(``"auto"``: the server if it answers, else local, logged once).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from algorithms.keys import SPACEPOINTS, TRACKS
from sonic_exatrkx.exatrkx import Pipeline, PipelineResult
from sonic_exatrkx.framework import (
    AlgorithmContext,
    ConfigurationError,
    ReadHandle,
    WriteHandle,
)
from sonic_exatrkx.paths import data_dir
from sonic_exatrkx.sonic import (
    InferenceClient,
    LocalClient,
    SonicProducer,
    exatrkx_client,
    stage_specs,
)
from sonic_exatrkx.sonic.exatrkx_service import served_stages

#: Event store key of the full `PipelineResult` (edges and scores per stage).
INTERMEDIATES = "exatrkx_intermediates"
INFERENCE = ("local", "triton", "auto")


def default_model_dir() -> Path:
    """The shipped models (`data/models`)."""
    return data_dir() / "models"


class ExaTrkXTrackFinding(SonicProducer):
    """Space points -> track id per space point, in this process or on Triton.

    `num_threads` is the torch/FAISS thread count of each in-process pipeline call; the
    event loop's own threads run several events at once, so keep `num_threads *
    Sequencer.num_threads` at or below the cores you have (the seeds saw FAISS and
    framework threads fight).

    Remote inference: `inference` ("local" | "triton" | "auto"), `server` (host:port or a
    list, in failover order), `service_option` ("custom", "S0".."S4" or a tuple of stage
    names, see :mod:`sonic_exatrkx.sonic.exatrkx_service`), `mode` ("sync" |
    "pseudo-async" | "async"; default sync in-process, async for a server),
    `allowed_tries` per server, `fallback_local` (run locally when every server fails),
    `timeout_s` / `on_timeout` ("retry" | "fail"), `protocol` ("grpc" | "http"),
    `compression` ("gzip" | "deflate"), `headers`, `tls_root_certificates` (PEM file:
    gRPC over TLS), `shared_memory` (inputs and outputs through system shared memory:
    the server must be on this node, else the network is used, logged once),
    `model_version`, `local_threads` (the pool that runs
    local work in async modes), `metrics_file` (Prometheus textfile of client stats),
    `trace_file` (per-event CSV: client prep, round trip, produce times).
    Intermediates (`output_intermediates`) need in-process inference.
    """

    def __init__(
        self,
        *,
        models: str | os.PathLike[str] | None = None,
        num_threads: int = 1,
        input_spacepoints: str = SPACEPOINTS,
        output_tracks: str = TRACKS,
        output_intermediates: str | None = None,
        name: str | None = None,
        inference: str = "local",
        server: str | Sequence[str] | None = None,
        mode: str | None = None,
        service_option: str | Sequence[str] = "custom",
        protocol: str = "grpc",
        allowed_tries: int = 3,
        fallback_local: bool = False,
        timeout_s: float | None = None,
        on_timeout: str = "retry",
        model_version: str | int = "",
        compression: str | None = None,
        headers: Mapping[str, str] | None = None,
        tls_root_certificates: str | os.PathLike[str] | None = None,
        shared_memory: bool = False,
        local_threads: int = 1,
        helper_threads: int = 4,
        metrics_file: str | os.PathLike[str] | None = None,
        trace_file: str | os.PathLike[str] | None = None,
    ) -> None:
        label = name or type(self).__name__
        if inference not in INFERENCE:
            raise ConfigurationError(f"{label}: inference must be one of {INFERENCE}, "
                                     f"got {inference!r}")
        remote = inference != "local" and served_stages(service_option) != ()
        super().__init__(mode=mode or ("async" if remote else "sync"),
                         helper_threads=helper_threads, metrics_file=metrics_file,
                         trace_file=trace_file, name=name)
        if num_threads < 1:
            raise ConfigurationError(f"{self.name}: num_threads must be >= 1, got {num_threads}")
        self.model_dir = Path(models) if models is not None else default_model_dir()
        if not self.model_dir.is_dir():
            raise ConfigurationError(
                f"{self.name}: model folder {self.model_dir} not found (train one with "
                "`sonic-exatrkx train --output DIR` or pass models=DIR)"
            )
        if output_intermediates and remote:
            raise ConfigurationError(
                f"{self.name}: output_intermediates needs inference='local' (the served "
                "models return labels only)")
        if remote and server is None:
            raise ConfigurationError(
                f"{self.name}: inference={inference!r} needs server='host:port' (or a list)")
        self.inference = inference
        self._mode_given = mode is not None
        self.pipeline = Pipeline.from_directory(self.model_dir, num_threads=num_threads)
        self.spacepoints = ReadHandle(self, input_spacepoints, pd.DataFrame)
        self.tracks = WriteHandle(self, output_tracks, np.ndarray)
        self.intermediates = (
            WriteHandle(self, output_intermediates, PipelineResult)
            if output_intermediates
            else None
        )
        self.local = self._local_client(local_threads)
        if remote:
            self.client: InferenceClient | None = exatrkx_client(
                self.pipeline, service_option=service_option, servers=server,
                fallback_local=fallback_local, local_threads=local_threads,
                protocol=protocol, allowed_tries=allowed_tries, timeout_s=timeout_s,
                on_timeout=on_timeout, model_version=model_version,
                compression=compression, headers=headers, shared_memory=shared_memory,
                ssl=tls_root_certificates is not None,
                root_certificates=None if tls_root_certificates is None
                else str(tls_root_certificates))
        else:
            self.client = self.local

    def _local_client(self, workers: int) -> InferenceClient:
        if self.intermediates is None:
            return exatrkx_client(self.pipeline, service_option="S0", local_threads=workers)
        pipe = self.pipeline

        def run(t: Mapping[str, Any]) -> dict[str, Any]:
            result = pipe.run(t["FEATURES"], return_intermediates=True)
            return {"LABELS": result.labels, "RESULT": result}

        inputs, outputs = stage_specs("pipeline", pipe.config)
        return LocalClient(run, name="local:pipeline", inputs=inputs, outputs=outputs,
                           max_workers=workers)

    def initialize(self) -> None:
        if self.inference == "auto" and self.client is not self.local:
            assert self.client is not None
            if not self.client.healthy():
                self.logger.warning("%s: no Triton server answers; inference='auto' runs "
                                    "ExaTrkX in this process", self.name)
                self.client.close()
                self.client = self.local
                if not self._mode_given:
                    self.mode = "sync"  # as plain local inference: on the loop's threads
        super().initialize()
        self.logger.info("%s: %s inference (%s), mode %s, torch/FAISS threads per call %s, "
                         "local pool %d, helper threads %s", self.name,
                         "local" if self.client is self.local else "remote",
                         self.client.name if self.client else "-", self.mode,
                         self.pipeline.config.num_threads,
                         getattr(self.local, "max_workers", 1),
                         self.helper_threads if self.mode == "pseudo-async" else 0)

    def acquire(self, ctx: AlgorithmContext) -> Future[Any]:
        sp = self.spacepoints(ctx)
        features = self.pipeline.features(
            sp["x"].to_numpy(), sp["y"].to_numpy(), sp["z"].to_numpy()
        )
        return self.dispatch({"FEATURES": self.pipeline.prepare(features)})

    def produce(self, ctx: AlgorithmContext, outputs: Mapping[str, Any]) -> None:
        self.tracks(ctx, outputs["LABELS"])
        if self.intermediates is not None:
            self.intermediates(ctx, outputs["RESULT"])


__all__ = ["INFERENCE", "INTERMEDIATES", "ExaTrkXTrackFinding", "default_model_dir"]
