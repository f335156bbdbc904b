"""Engine of `sonic-exatrkx bench io`: read+write throughput of the I/O chain (a framework
job of the CSV reader and the CSV and ROOT writers), at several thread counts."""

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

__all__ = ["IoBenchConfig", "IoBenchReport", "IoBenchResult", "bench_io", "run_io_bench"]


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


@dataclass(frozen=True)
class IoBenchConfig:
    """What `bench io` runs (the command's options)."""

    input: Path | None  # ACTS CSV events with truth; None: simulate `events` HNL mu=0 ones
    events: int
    threads: tuple[int, ...]  # one job per thread count
    in_flight: int  # events in flight per thread
    seed: int  # of the simulation


@dataclass(frozen=True)
class IoBenchReport:
    """One job per thread count, in order."""

    results: tuple[IoBenchResult, ...]

    def lines(self) -> list[str]:
        out = [r.line() for r in self.results]
        if len(self.results) > 1:
            first, last = self.results[0], self.results[-1]
            out.append(f"ratio {last.threads} threads / {first.threads} thread(s): "
                       f"{last.events_per_s / first.events_per_s:.2f}")
        return out


def run_io_bench(config: IoBenchConfig) -> IoBenchReport:
    """:func:`bench_io` at every thread count, on ``config.input`` or on events simulated
    into a temporary folder first."""
    with tempfile.TemporaryDirectory(prefix="bench-io-input-") as tmp:
        input_dir = config.input
        if input_dir is None:
            from sonic_exatrkx.sim import SimulationConfig, write_events

            input_dir = Path(tmp)
            write_events(SimulationConfig(sample="hnl", pileup=0, seed=config.seed),
                         input_dir, config.events)
        return IoBenchReport(tuple(bench_io(input_dir, threads=t, in_flight=t * config.in_flight)
                                   for t in config.threads))


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
