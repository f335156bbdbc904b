"""ROOT space point / track readers and writers (uproot) as framework algorithms."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from algorithms.duplicates import handle_duplicates
from algorithms.input_options import InputCounts, reader_options
from algorithms.keys import SPACEPOINTS, TRACKS
from sonic_exatrkx.framework import (
    AlgorithmContext,
    ConfigurationError,
    Reader,
    ReadHandle,
    WriteHandle,
    Writer,
)
from sonic_exatrkx.io import acts_root


class RootSpacePointReader(Reader):
    """Reads a `spacePoints` tree (ACTS flat layout or our jagged one).

    The file is read once, on the first event, and kept in memory: fine for the
    small files this is for; split big productions into several files. ``nonfinite``
    ("error" | "drop" space points with NaN/inf positions or variances) and
    ``duplicates`` ("warn" | "drop" exact duplicate positions) as for the CSV reader;
    ``counts`` sums what was dropped.
    """

    dropped_what = "space points"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        tree: str = "spacePoints",
        output_spacepoints: str = SPACEPOINTS,
        duplicates: str = "warn",
        nonfinite: str = "error",
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self.options = reader_options(self.name, duplicates=duplicates, nonfinite=nonfinite)
        self.path = Path(path)
        self.tree = tree
        self.spacepoints = WriteHandle(self, output_spacepoints, pd.DataFrame)
        self._events: dict[int, pd.DataFrame] | None = None
        self._lock = threading.Lock()
        self.counts = InputCounts()

    def available_events(self) -> list[int]:
        return sorted(acts_root.root_event_ids(self.path, self.tree))

    def _load(self) -> dict[int, pd.DataFrame]:
        with self._lock:
            if self._events is None:
                self._events = acts_root.read_spacepoints_root(
                    self.path, self.tree, nonfinite=self.options.nonfinite)
            return self._events

    def execute(self, ctx: AlgorithmContext) -> None:
        table = self._load()[ctx.event]
        kept = handle_duplicates(self.logger, ctx.event, table, self.options.duplicates)
        dropped = table.attrs.get("dropped_nonfinite", 0)
        if dropped:
            self.logger.warning("event %d: dropping %d of %d space points with non-finite "
                                "values in %s", ctx.event, dropped, len(table) + dropped,
                                self.path.name)
        self.counts.add(nonfinite_dropped=dropped, duplicates_found=kept.found,
                        duplicates_dropped=kept.found if kept.keep is not None else 0)
        # Copy: the store hands the table to other algorithms; keep ours pristine.
        self.spacepoints(ctx, kept.spacepoints.copy())


class _RootFileWriter(Writer):
    """A writer of one ROOT file for the whole job: opened in `initialize`, renamed into
    place in `finalize`, and deleted in `abort` so a failed job leaves no partial file."""

    def __init__(self, path: str | os.PathLike[str], name: str | None) -> None:
        super().__init__(name=name)
        self.path = Path(path)
        self._writer: acts_root.SpacePointRootWriter | acts_root.TrackRootWriter | None = None

    def open(self) -> acts_root.SpacePointRootWriter | acts_root.TrackRootWriter:
        raise NotImplementedError

    def initialize(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = self.open()

    def finalize(self) -> None:
        if self._writer is not None:
            self._writer.close()

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.abort()


class RootSpacePointWriter(_RootFileWriter):
    """Writes all events' space points to one ROOT file (flat ACTS layout or jagged)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        layout: str = "flat",
        input_spacepoints: str = SPACEPOINTS,
        name: str | None = None,
    ) -> None:
        super().__init__(path, name)
        if layout not in ("flat", "jagged"):
            raise ConfigurationError(f"{self.name}: layout must be 'flat' or 'jagged'")
        self.layout = layout
        self.spacepoints = ReadHandle(self, input_spacepoints, pd.DataFrame)

    def open(self) -> acts_root.SpacePointRootWriter:
        return acts_root.SpacePointRootWriter(self.path, layout=self.layout)

    def execute(self, ctx: AlgorithmContext) -> None:
        assert self._writer is not None
        self._writer.write(ctx.event, self.spacepoints(ctx))


class RootTrackWriter(_RootFileWriter):
    """Writes track ids per space point, one entry per event (jagged branches)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        input_tracks: str = TRACKS,
        name: str | None = None,
    ) -> None:
        super().__init__(path, name)
        self.tracks = ReadHandle(self, input_tracks, np.ndarray)

    def open(self) -> acts_root.TrackRootWriter:
        return acts_root.TrackRootWriter(self.path)

    def execute(self, ctx: AlgorithmContext) -> None:
        assert self._writer is not None
        self._writer.write(ctx.event, self.tracks(ctx))

    def checkpoint(self, ctx: AlgorithmContext) -> dict[str, np.ndarray]:
        """The event's labels: the file is written at the end of the job."""
        return {"labels": np.asarray(self.tracks(ctx))}

    def restore(self, event: int, state: Mapping[str, np.ndarray]) -> None:
        assert self._writer is not None
        self._writer.write(event, state["labels"])
