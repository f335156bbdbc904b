"""ACTS CSV reader and writers as framework algorithms."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from algorithms.duplicates import handle_duplicates
from algorithms.input_options import InputCounts, reader_options
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
from sonic_exatrkx.io.acts_paths import event_source
from sonic_exatrkx.io.errors import EventDirectoryError, InputFormatError, MissingEventFileError
from sonic_exatrkx.io.spacepoints_from import spacepoints_from_hits, spacepoints_from_measurements
from sonic_exatrkx.io.truth import combine_particle_id

TRUTH_KINDS = ("hits", "measurement-simhit-map")
#: What each space point source reads besides the wanted kinds.
_SOURCE_KINDS: dict[str | None, tuple[str, ...]] = {
    None: ("spacepoint",),
    "measurements": ("measurements", "measurement-simhit-map", "hits"),
    "hits": ("hits",),
}


def check_kinds(owner: str, kinds: Sequence[str]) -> None:
    unknown = [k for k in kinds if k not in TABLE_KEYS]
    if unknown or not kinds:
        raise ConfigurationError(
            f"{owner}: unknown file kinds {unknown or list(kinds)}; known: {list(TABLE_KEYS)}"
        )


class CsvEventReader(Reader):
    """Reads ACTS CSV event files (`event%09d-<kind>.csv`) into the event store.

    `input_dir`: the event folder, or one event file of it (``.../event000000042-
    spacepoint.csv``: only that event). `kinds` selects the files (each goes to
    `TABLE_KEYS[kind]`); `truth=True` also reads hits and the measurement-simhit map and
    writes a particle id per space point. `on_bad_event="skip"` turns a malformed event
    into a warning and a SKIP instead of a failed job. `duplicates`, `nonfinite`,
    `spacepoints_from`: see :class:`~algorithms.input_options.InputOptions`; with
    `spacepoints_from` the "spacepoint" table is built from the measurements or hits
    (:mod:`sonic_exatrkx.io.spacepoints_from`). With ``nonfinite="drop"`` only the space
    points lose rows: the truth tables are kept whole (a hit's row is its id).
    `counts` sums what was dropped.
    """

    dropped_what = "space points"

    def __init__(
        self,
        input_dir: str | os.PathLike[str],
        *,
        kinds: Sequence[str] = ("spacepoint",),
        truth: bool = False,
        on_bad_event: str = "fail",
        duplicates: str = "warn",
        nonfinite: str = "error",
        spacepoints_from: str | None = None,
        output_particle_ids: str = SPACEPOINT_PARTICLE_IDS,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self.input_dir, self.only_event = event_source(input_dir)
        check_kinds(self.name, kinds)
        self.options = reader_options(self.name, on_bad_event=on_bad_event,
                                     duplicates=duplicates, nonfinite=nonfinite,
                                     spacepoints_from=spacepoints_from)
        self.duplicates = duplicates
        self.on_bad_event = on_bad_event
        self.kinds = tuple(dict.fromkeys(kinds))
        self.truth = truth
        if truth and "spacepoint" not in self.kinds:
            raise ConfigurationError(f"{self.name}: truth=True needs the 'spacepoint' kind")
        if spacepoints_from is not None and "spacepoint" not in self.kinds:
            raise ConfigurationError(f"{self.name}: spacepoints_from needs the 'spacepoint' "
                                     "kind")
        source = _SOURCE_KINDS[spacepoints_from] if "spacepoint" in self.kinds else ()
        if truth:
            source += ("hits",) if spacepoints_from == "hits" else TRUTH_KINDS
        self._read_kinds = tuple(dict.fromkeys(
            (*source, *(k for k in self.kinds if k != "spacepoint"))))
        self.tables = {k: WriteHandle(self, TABLE_KEYS[k], pd.DataFrame) for k in self.kinds}
        self.particle_ids = (
            WriteHandle(self, output_particle_ids, np.ndarray) if truth else None
        )
        self.counts = InputCounts()

    @property
    def _stem(self) -> str:
        """The file kind that defines the events."""
        if "spacepoint" not in self.kinds:
            return self.kinds[0]
        return self.options.spacepoints_from or "spacepoint"

    def available_events(self) -> list[int]:
        # The spacepoint (or first) kind defines the events; a kind missing for one of
        # them is reported when that event is read.
        stem = self._stem
        try:
            events = acts_csv.list_events(self.input_dir, stem)
        except EventDirectoryError as err:
            raise _with_source_hint(err, self.input_dir, stem) from None
        if self.only_event is None:
            return events
        if self.only_event not in events:
            path = acts_csv.event_path(self.input_dir, self.only_event, stem)
            raise MissingEventFileError(
                path, f"event {self.only_event} has no {stem} file in {self.input_dir}",
                event=self.only_event)
        return [self.only_event]

    def initialize(self) -> None:
        source = self.options.spacepoints_from
        if source is not None and "spacepoint" in self.kinds:
            self.logger.info(
                "no spacepoint files read: one space point per %s (true positions, no "
                "detector resolution; docs/jobs.md)",
                "measurement, at its simulated hit" if source == "measurements"
                else "simulated hit")

    def execute(self, ctx: AlgorithmContext) -> ProcessCode:
        try:
            tables, truth = self._read(ctx.event)
        except InputFormatError as err:
            if self.on_bad_event == "skip":
                self.logger.warning("skipping event %d: %s", ctx.event, err)
                return ProcessCode.SKIP
            raise
        counts: dict[str, int] = {}
        if "spacepoint" in tables:
            sp = tables["spacepoint"]
            if self.options.spacepoints_from and sp.attrs.get("dropped_nonfinite", 0):
                self.logger.warning("event %d: dropping %d space points whose simulated hit "
                                    "has a non-finite position", ctx.event,
                                    sp.attrs["dropped_nonfinite"])
            counts.update(nonfinite_dropped=sp.attrs.get("dropped_nonfinite", 0),
                          unplaced_measurements=sp.attrs.get("unplaced_measurements", 0))
            kept = handle_duplicates(self.logger, ctx.event, sp, self.duplicates)
            tables["spacepoint"], truth = kept.spacepoints, kept.apply(truth)
            counts.update(duplicates_found=kept.found,
                          duplicates_dropped=kept.found if kept.keep is not None else 0)
        self.counts.add(**counts)
        for kind, handle in self.tables.items():
            handle(ctx, tables[kind])
        if self.particle_ids is not None:
            self.particle_ids(ctx, truth)
        return ProcessCode.SUCCESS

    def _read(self, event: int) -> tuple[dict[str, pd.DataFrame], np.ndarray | None]:
        """The event's tables (the space points read or built) and particle ids."""
        drop = self.options.nonfinite == "drop"
        source = self.options.spacepoints_from
        # Only the space points lose rows; the other tables stay whole (row = hit id).
        tables: dict[str, pd.DataFrame] = {}
        # hits read for the space points' particle ids only (not to build space points,
        # nor asked for as a table): their particle id columns alone
        truth_only = ("hits",) if source is None and "hits" not in self.kinds else ()
        if not drop:
            tables.update(acts_csv.read_event(self.input_dir, event, self._read_kinds,
                                              truth_only=truth_only))
        else:  # in file order: a missing spacepoint file is reported first
            for group, policy in ((("spacepoint",), "drop"),
                                  (tuple(k for k in self._read_kinds if k != "spacepoint"),
                                   "keep")):
                kinds = [k for k in group if k in self._read_kinds]
                if kinds:
                    tables.update(acts_csv.read_event(
                        self.input_dir, event, kinds, nonfinite=policy,  # type: ignore[arg-type]
                        truth_only=truth_only))
        if "spacepoint" in self.kinds and source == "measurements":
            tables["spacepoint"] = spacepoints_from_measurements(
                tables["measurements"], tables["measurement-simhit-map"], tables["hits"],
                nonfinite=self.options.nonfinite)
        elif "spacepoint" in self.kinds and source == "hits":
            tables["spacepoint"] = spacepoints_from_hits(tables["hits"],
                                                         nonfinite=self.options.nonfinite)
        if not self.truth:
            return tables, None
        if source == "hits":
            rows = tables["spacepoint"]["measurement_id"].to_numpy(np.intp)
            return tables, combine_particle_id(tables["hits"])[rows]
        return tables, acts_csv.attach_truth(
            tables["spacepoint"], tables["measurement-simhit-map"], tables["hits"])


def _with_source_hint(err: EventDirectoryError, directory: Path,
                      stem: str) -> EventDirectoryError:
    """No spacepoint files but ACTS measurements / hits: say how to use them."""
    if stem != "spacepoint" or not directory.is_dir():
        return err
    stems = acts_csv.event_files(directory, "event*-*.csv")
    have = [s for s in ("measurements", "hits") if s in stems]
    if not have:
        return err
    source = "the measurements' simulated hits" if have[0] == "measurements" \
        else "the simulated hits"
    hint = (f"; this ACTS output has {' and '.join(have)} but no space points: "
            f"--spacepoints-from {have[0]} builds them from {source} (docs/jobs.md)")
    return EventDirectoryError(err.path, f"{err.detail}{hint}")


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
