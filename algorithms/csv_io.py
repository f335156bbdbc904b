"""ACTS CSV reader and writers as framework algorithms."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from algorithms.duplicates import check_duplicates_policy, handle_duplicates
from algorithms.keys import SPACEPOINT_PARTICLE_IDS, TABLE_KEYS, TRACKS
from sonic_exatrkx.framework import (
    AlgorithmContext,
    ConfigurationError,
    ProcessCode,
    Reader,
    ReadHandle,
    WriteHandle,
    Writer,
)
from sonic_exatrkx.io import acts_csv
from sonic_exatrkx.io.errors import InputFormatError

TRUTH_KINDS = ("hits", "measurement-simhit-map")
BAD_EVENT_POLICIES = ("fail", "skip")


def check_bad_event_policy(owner: str, on_bad_event: str) -> None:
    if on_bad_event not in BAD_EVENT_POLICIES:
        raise ConfigurationError(
            f"{owner}: on_bad_event must be one of {BAD_EVENT_POLICIES}, got {on_bad_event!r}"
        )


def check_kinds(owner: str, kinds: Sequence[str]) -> None:
    unknown = [k for k in kinds if k not in TABLE_KEYS]
    if unknown or not kinds:
        raise ConfigurationError(
            f"{owner}: unknown file kinds {unknown or list(kinds)}; known: {list(TABLE_KEYS)}"
        )


class CsvEventReader(Reader):
    """Reads ACTS CSV event files (`event%09d-<kind>.csv`) into the event store.

    `kinds` selects the files (each goes to `TABLE_KEYS[kind]`); `truth=True` also reads
    hits and the measurement-simhit map and writes a particle id per space point.
    `on_bad_event="skip"` turns a malformed event into a warning and a SKIP instead of
    a failed job.
    """

    def __init__(
        self,
        input_dir: str | os.PathLike[str],
        *,
        kinds: Sequence[str] = ("spacepoint",),
        truth: bool = False,
        on_bad_event: str = "fail",
        duplicates: str = "warn",
        output_particle_ids: str = SPACEPOINT_PARTICLE_IDS,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self.input_dir = Path(input_dir)
        check_kinds(self.name, kinds)
        check_bad_event_policy(self.name, on_bad_event)
        check_duplicates_policy(self.name, duplicates)
        self.duplicates = duplicates
        self.kinds = tuple(dict.fromkeys(kinds))
        self.truth = truth
        self.on_bad_event = on_bad_event
        self._read_kinds = tuple(dict.fromkeys((*self.kinds, *(TRUTH_KINDS if truth else ()))))
        if truth and "spacepoint" not in self.kinds:
            raise ConfigurationError(f"{self.name}: truth=True needs the 'spacepoint' kind")
        self.tables = {k: WriteHandle(self, TABLE_KEYS[k], pd.DataFrame) for k in self.kinds}
        self.particle_ids = (
            WriteHandle(self, output_particle_ids, np.ndarray) if truth else None
        )

    def available_events(self) -> list[int]:
        # The spacepoint (or first) kind defines the events; a kind missing for one of
        # them is reported when that event is read.
        stem = "spacepoint" if "spacepoint" in self.kinds else self.kinds[0]
        return acts_csv.list_events(self.input_dir, stem)

    def execute(self, ctx: AlgorithmContext) -> ProcessCode:
        try:
            tables = acts_csv.read_event(self.input_dir, ctx.event, self._read_kinds)
            truth = (
                acts_csv.attach_truth(
                    tables["spacepoint"], tables["measurement-simhit-map"], tables["hits"]
                )
                if self.truth
                else None
            )
        except InputFormatError as err:
            if self.on_bad_event == "skip":
                self.logger.warning("skipping event %d: %s", ctx.event, err)
                return ProcessCode.SKIP
            raise
        if "spacepoint" in tables:
            tables["spacepoint"], truth = handle_duplicates(
                self.logger, ctx.event, tables["spacepoint"], truth, self.duplicates)
        for kind, handle in self.tables.items():
            handle(ctx, tables[kind])
        if self.particle_ids is not None:
            self.particle_ids(ctx, truth)
        return ProcessCode.SUCCESS


class CsvEventWriter(Writer):
    """Writes tables from the event store as ACTS CSV files, one file per kind."""

    def __init__(
        self,
        output_dir: str | os.PathLike[str],
        *,
        kinds: Sequence[str] = ("spacepoint",),
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        check_kinds(self.name, kinds)
        self.output_dir = Path(output_dir)
        self.tables = {k: ReadHandle(self, TABLE_KEYS[k], pd.DataFrame) for k in kinds}

    def initialize(self) -> None:
        self.output_dir.mkdir(parents=True, exist_ok=True)

    def execute(self, ctx: AlgorithmContext) -> None:
        acts_csv.write_event(
            self.output_dir, ctx.event, {k: h(ctx) for k, h in self.tables.items()}
        )


class CsvTrackWriter(Writer):
    """Writes `event%09d-tracks.csv`: one row per space point with its track id."""

    def __init__(
        self,
        output_dir: str | os.PathLike[str],
        *,
        input_tracks: str = TRACKS,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self.output_dir = Path(output_dir)
        self.tracks = ReadHandle(self, input_tracks, np.ndarray)

    def initialize(self) -> None:
        self.output_dir.mkdir(parents=True, exist_ok=True)

    def execute(self, ctx: AlgorithmContext) -> None:
        acts_csv.write_tracks_csv(
            acts_csv.event_path(self.output_dir, ctx.event, "tracks"), self.tracks(ctx)
        )
