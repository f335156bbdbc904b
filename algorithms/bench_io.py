"""Read+write throughput of the I/O chain (`sonic-exatrkx bench io`)."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from algorithms.csv_io import CsvEventReader, CsvEventWriter
from algorithms.keys import SPACEPOINTS
from algorithms.root_io import RootSpacePointWriter
from sonic_exatrkx.framework import AlgorithmContext, ReadHandle, Sequencer, Writer


@dataclass
class IoBenchResult:
    events: int
    spacepoints: int
    threads: int
    in_flight: int
    wall_s: float

    @property
    def events_per_s(self) -> float:
        return self.events / self.wall_s

    def line(self) -> str:
        return (
            f"threads={self.threads} in_flight={self.in_flight}: {self.events} events "
            f"({self.spacepoints / max(self.events, 1):.0f} space points/event) read with "
            f"truth + written as CSV and ROOT in {self.wall_s:.2f} s = "
            f"{self.events_per_s:.1f} events/s"
        )


def bench_io(input_dir: Path, *, threads: int = 1, in_flight: int = 1) -> IoBenchResult:
    """Time one job: read every CSV event with truth, write CSV + flat ROOT."""
    with tempfile.TemporaryDirectory(prefix="bench-io-") as tmp:
        seq = Sequencer(num_threads=threads, max_in_flight=in_flight, output_dir=tmp,
                        progress=False, log_level="WARNING")
        seq.add_reader(CsvEventReader(input_dir, truth=True))
        seq.add_writer(CsvEventWriter(Path(tmp) / "csv"))
        seq.add_writer(RootSpacePointWriter(Path(tmp) / "spacepoints.root"))
        counter = _SpacePointCounter()
        seq.add_writer(counter)
        start = time.perf_counter()
        summary = seq.run()
        wall = time.perf_counter() - start
    return IoBenchResult(summary.processed, counter.total, threads, in_flight, wall)


class _SpacePointCounter(Writer):
    """Counts space points, to quote the event size next to the rate."""

    def __init__(self) -> None:
        super().__init__(name="SpacePointCounter")
        self.spacepoints = ReadHandle(self, SPACEPOINTS, pd.DataFrame)
        self.total = 0

    def execute(self, ctx: AlgorithmContext) -> None:
        self.total += len(self.spacepoints(ctx))
