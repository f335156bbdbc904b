"""TrackML (Kaggle 2018 / ACTS-Fatras) event reader as a framework algorithm."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from algorithms.duplicates import handle_duplicates
from algorithms.input_options import InputCounts, reader_options
from algorithms.keys import SPACEPOINT_PARTICLE_IDS, SPACEPOINT_WEIGHTS, SPACEPOINTS
from sonic_exatrkx.framework import (
    AlgorithmContext,
    ConfigurationError,
    ProcessCode,
    Reader,
    WriteHandle,
)
from sonic_exatrkx.io import acts_csv, trackml
from sonic_exatrkx.io.acts_paths import event_source
from sonic_exatrkx.io.errors import InputFormatError, MissingEventFileError
from sonic_exatrkx.io.trackml import truth_has_weight


class TrackMLReader(Reader):
    """Reads TrackML hits (+ truth, + particles) and converts them to our arrays: a
    single-measurement space point table, a particle id per space point (``truth``), the
    particles table (``particles``, for the performance's pT and eta) and the truth's
    TrackML score ``weight`` per space point (``weights``).

    ``input_dir``: the event folder or one event file of it (``.../event000001000-
    hits.csv``: only that event). ACTS-Fatras TrackML files can hold hits with NaN
    positions (the public Fatras sample has 75 of 630): by default that is an error
    naming the line; with ``nonfinite="drop"`` those hits are left out (logged, and
    summed in ``counts``) and the others keep their ids. ``duplicates``: exact duplicate
    positions are warned about or dropped (:mod:`algorithms.duplicates`).
    """

    dropped_what = "hits"

    def __init__(
        self,
        input_dir: str | os.PathLike[str],
        *,
        truth: bool = True,
        particles: bool = False,
        weights: bool = False,
        output_spacepoints: str = SPACEPOINTS,
        output_particle_ids: str = SPACEPOINT_PARTICLE_IDS,
        output_particles: str = "particles",
        output_weights: str = SPACEPOINT_WEIGHTS,
        on_bad_event: str = "fail",
        duplicates: str = "warn",
        nonfinite: str = "error",
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self.options = reader_options(self.name, on_bad_event=on_bad_event,
                                     duplicates=duplicates, nonfinite=nonfinite)
        if (particles or weights) and not truth:
            raise ConfigurationError(f"{self.name}: particles and weights need truth=True")
        self.nonfinite = nonfinite
        self.input_dir, self.only_event = event_source(input_dir)
        self.on_bad_event = on_bad_event
        self.truth = truth
        self.spacepoints = WriteHandle(self, output_spacepoints, pd.DataFrame)
        self.particle_ids = WriteHandle(self, output_particle_ids, np.ndarray) if truth \
            else None
        self.particles = WriteHandle(self, output_particles, pd.DataFrame) if particles \
            else None
        self.weights = WriteHandle(self, output_weights, np.ndarray) if weights else None
        self.counts = InputCounts()

    def available_events(self) -> list[int]:
        events = acts_csv.list_events(self.input_dir, "hits")
        if self.only_event is None:
            return events
        if self.only_event not in events:
            raise MissingEventFileError(
                acts_csv.event_path(self.input_dir, self.only_event, "hits"),
                f"event {self.only_event} has no hits file in {self.input_dir}",
                event=self.only_event)
        return [self.only_event]

    def has_weights(self) -> bool:
        """Whether the truth of the first event has the ``weight`` column (Kaggle's
        has; ACTS-Fatras's may not), to decide before the job whether to read it."""
        events = self.available_events()
        return bool(events) and truth_has_weight(
            trackml.trackml_paths(self.input_dir, events[0])["truth"])

    def execute(self, ctx: AlgorithmContext) -> ProcessCode:
        try:
            event = self._read(ctx.event)
        except InputFormatError as err:
            if self.on_bad_event == "skip":
                self.logger.warning("skipping event %d: %s", ctx.event, err)
                return ProcessCode.SKIP
            raise
        sp = event["spacepoint"]
        kept = handle_duplicates(self.logger, ctx.event, sp, self.options.duplicates)
        self.counts.add(nonfinite_dropped=sp.attrs.get("dropped_nonfinite", 0),
                        duplicates_found=kept.found,
                        duplicates_dropped=kept.found if kept.keep is not None else 0)
        self.spacepoints(ctx, kept.spacepoints)
        if self.particle_ids is not None:
            self.particle_ids(ctx, kept.apply(event["particle_id"]))
        if self.particles is not None:
            self.particles(ctx, event["particles"])
        if self.weights is not None:
            self.weights(ctx, kept.apply(event["weight"]))
        return ProcessCode.SUCCESS

    def _read(self, event: int) -> dict[str, object]:
        drop = self.nonfinite == "drop"
        hits = trackml.read_trackml_event(self.input_dir, event, ("hits",),
                                          nonfinite=self.nonfinite)["hits"]
        if not self.truth:
            out = trackml.trackml_to_event(hits, None)
        else:
            kinds = ("truth", "particles") if self.particles is not None else ("truth",)
            # Truth and particles are kept whole: only the hits lose rows.
            files = trackml.read_trackml_event(self.input_dir, event, kinds,
                                               nonfinite="keep" if drop else "error")
            truth = files["truth"]
            if self.weights is not None and "weight" not in truth.columns:
                raise InputFormatError(
                    trackml.trackml_paths(self.input_dir, event)["truth"],
                    "no 'weight' column, though the truth of the job's first event has one "
                    f"(found columns: {', '.join(truth.columns)})", row=1, column="weight",
                    expected="the same truth columns in every event", event=event)
            truth = truth[truth["hit_id"].isin(hits["hit_id"])]
            out = trackml.trackml_to_event(hits, truth, files.get("particles"))
        spacepoint = out["spacepoint"]
        assert isinstance(spacepoint, pd.DataFrame)
        spacepoint.attrs.update(hits.attrs)
        return out
