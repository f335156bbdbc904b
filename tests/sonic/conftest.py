"""Helpers of the SONIC tests: jobs over simulated events, repositories and servers of
their own. The session's ExaTrkX server (``exatrkx_server``, also holding the bad-shape
model) and its models are shared with the server tests: see :mod:`tests.exatrkx_serving`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from algorithms.keys import SPACEPOINTS, TRACKS
from sonic_exatrkx.framework import ProcessCode, Reader, ReadHandle, Sequencer, Writer
from sonic_exatrkx.io import acts_csv
from sonic_exatrkx.server import TritonServer
from tests.exatrkx_serving import BAD_SHAPE_MODEL

__all__ = ["BAD_SHAPE_MODEL", "CollectTracks", "CyclingReader", "run_job", "start_server",
           "write_repo"]


def write_repo(repo: Path, models: Path, *, ensemble: bool = True) -> Path:
    from sonic_exatrkx.server import ExaTrkXRepositoryOptions, write_exatrkx_repository

    write_exatrkx_repository(repo, models, ExaTrkXRepositoryOptions(
        instances=1, num_threads=1, max_spacepoints=0, ensemble=ensemble))
    return repo


def start_server(repo: Path, log_dir: Path) -> TritonServer:
    server = TritonServer(repo, env_threads=1, ready_timeout=180, exit_timeout=2,
                          log_file=log_dir / "server.log")
    server.start()
    return server


class CyclingReader(Reader):
    """``n_events`` events cycling over the space points of a CSV folder's events, each
    cut to its first ``max_points`` (small events for timing tests)."""

    def __init__(self, folder: Path, n_events: int, max_points: int | None = None) -> None:
        super().__init__(name="CyclingReader")
        events = acts_csv.list_events(folder, "spacepoint")
        self.tables = [acts_csv.read_spacepoints(acts_csv.event_path(folder, e, "spacepoint"))
                       .iloc[:max_points].reset_index(drop=True) for e in events]
        self.n_events = n_events
        from sonic_exatrkx.framework import WriteHandle

        self.out = WriteHandle(self, SPACEPOINTS, pd.DataFrame)

    def available_events(self) -> range:
        return range(self.n_events)

    def execute(self, ctx) -> ProcessCode:
        self.out(ctx, self.tables[ctx.event % len(self.tables)])
        return ProcessCode.SUCCESS


class CollectTracks(Writer):
    """Keeps every event's labels; counts writes per event (exactly-once checks)."""

    def __init__(self) -> None:
        super().__init__(name="CollectTracks")
        self.inp = ReadHandle(self, TRACKS, np.ndarray)
        self.labels: dict[int, np.ndarray] = {}
        self.write_counts: dict[int, int] = {}

    def execute(self, ctx) -> ProcessCode:
        self.labels[ctx.event] = np.array(self.inp(ctx))
        self.write_counts[ctx.event] = self.write_counts.get(ctx.event, 0) + 1
        return ProcessCode.SUCCESS


def run_job(reader: Reader, algorithm, *, threads: int = 2, in_flight: int = 4,
            writers=(), **seq_kw):
    """Run reader -> algorithm -> CollectTracks (+ writers); returns (collector, summary)."""
    seq = Sequencer(num_threads=threads, max_in_flight=in_flight, progress=False, **seq_kw)
    seq.add_reader(reader)
    seq.add_algorithm(algorithm)
    out = CollectTracks()
    seq.add_writer(out)
    for w in writers:
        seq.add_writer(w)
    summary = seq.run()
    return out, summary
