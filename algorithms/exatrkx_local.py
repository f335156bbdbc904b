"""ExaTrkX track finding in-process, as a framework algorithm."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from algorithms.keys import SPACEPOINTS, TRACKS
from sonic_exatrkx.exatrkx import Pipeline, PipelineResult
from sonic_exatrkx.framework import (
    Algorithm,
    AlgorithmContext,
    ConfigurationError,
    ReadHandle,
    WriteHandle,
)
from sonic_exatrkx.paths import data_dir

#: Event store key of the full `PipelineResult` (edges and scores per stage).
INTERMEDIATES = "exatrkx_intermediates"


def default_model_dir() -> Path:
    """The shipped models (`data/models`)."""
    return data_dir() / "models"


class ExaTrkXTrackFinding(Algorithm):
    """Space points -> track id per space point, with the pipeline in this process.

    `num_threads` is the torch/FAISS thread count of each pipeline call; the event loop's
    own threads run several events at once, so keep `num_threads * Sequencer.num_threads`
    at or below the cores you have (the seeds saw FAISS and framework threads fight).
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
    ) -> None:
        super().__init__(name=name)
        if num_threads < 1:
            raise ConfigurationError(f"{self.name}: num_threads must be >= 1, got {num_threads}")
        self.model_dir = Path(models) if models is not None else default_model_dir()
        if not self.model_dir.is_dir():
            raise ConfigurationError(
                f"{self.name}: model folder {self.model_dir} not found (train one with "
                "`sonic-exatrkx train --output DIR` or pass models=DIR)"
            )
        self.pipeline = Pipeline.from_directory(self.model_dir, num_threads=num_threads)
        self.spacepoints = ReadHandle(self, input_spacepoints, pd.DataFrame)
        self.tracks = WriteHandle(self, output_tracks, np.ndarray)
        self.intermediates = (
            WriteHandle(self, output_intermediates, PipelineResult)
            if output_intermediates
            else None
        )

    def execute(self, ctx: AlgorithmContext) -> None:
        sp = self.spacepoints(ctx)
        features = self.pipeline.features(
            sp["x"].to_numpy(), sp["y"].to_numpy(), sp["z"].to_numpy()
        )
        result = self.pipeline.run(features, return_intermediates=self.intermediates is not None)
        self.tracks(ctx, result.labels)
        if self.intermediates is not None:
            self.intermediates(ctx, result)
