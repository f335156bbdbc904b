"""TrackML (Kaggle 2018 / ACTS-Fatras) event reader as a framework algorithm."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from algorithms.csv_io import check_bad_event_policy
from algorithms.keys import SPACEPOINT_PARTICLE_IDS, SPACEPOINTS
from sonic_exatrkx.framework import (
    AlgorithmContext,
    ConfigurationError,
    ProcessCode,
    Reader,
    WriteHandle,
)
from sonic_exatrkx.io import acts_csv, trackml
from sonic_exatrkx.io.errors import InputFormatError


class TrackMLReader(Reader):
    """Reads TrackML hits + truth (+ particles) and converts them to our arrays:
    a single-measurement space point table and a particle id per space point.

    ACTS-Fatras TrackML files can hold hits with NaN positions (the public Fatras
    sample has 75 of 630): by default that is an error naming the line; with
    ``nonfinite="drop"`` those hits are left out (the reader logs how many) and the
    others keep their ids.
    """

    def __init__(
        self,
        input_dir: str | os.PathLike[str],
        *,
        output_spacepoints: str = SPACEPOINTS,
        output_particle_ids: str = SPACEPOINT_PARTICLE_IDS,
        on_bad_event: str = "fail",
        nonfinite: str = "raise",
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        check_bad_event_policy(self.name, on_bad_event)
        if nonfinite not in ("raise", "drop"):
            raise ConfigurationError(
                f"{self.name}: nonfinite must be 'raise' or 'drop', got {nonfinite!r}"
            )
        self.nonfinite = nonfinite
        self.input_dir = Path(input_dir)
        self.on_bad_event = on_bad_event
        self.spacepoints = WriteHandle(self, output_spacepoints, pd.DataFrame)
        self.particle_ids = WriteHandle(self, output_particle_ids, np.ndarray)

    def available_events(self) -> list[int]:
        return acts_csv.list_events(self.input_dir, "hits")

    def execute(self, ctx: AlgorithmContext) -> ProcessCode:
        try:
            files = trackml.read_trackml_event(
                self.input_dir, ctx.event, ("hits", "truth"), nonfinite=self.nonfinite
            )
            hits = files["hits"]
            truth = files["truth"]
            truth = truth[truth["hit_id"].isin(hits["hit_id"])]
            event = trackml.trackml_to_event(hits, truth)
        except InputFormatError as err:
            if self.on_bad_event == "skip":
                self.logger.warning("skipping event %d: %s", ctx.event, err)
                return ProcessCode.SKIP
            raise
        self.spacepoints(ctx, event["spacepoint"])
        self.particle_ids(ctx, event["particle_id"])
        return ProcessCode.SUCCESS
