"""Simulation throughput benchmark: events/s, s/event and hits/event per (sample, pileup).

Single process, as the issue's targets are stated (>= 50 events/s for mu=0 HNL events,
<= 2 s per mu=200 event). Each row runs `events` events or until `time_budget` seconds
are spent (at least `min_events`), so a benchmark on a shared 2-core machine stays bounded.
Run with `python -m sonic_exatrkx.sim.bench` or `sonic-exatrkx bench sim`.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from sonic_exatrkx.checks import check_count
from sonic_exatrkx.io.acts_csv import write_event
from sonic_exatrkx.sim.config import SimulationConfig
from sonic_exatrkx.sim.event import simulate_event, simulate_events

__all__ = ["BenchRow", "bench_sim", "format_table", "main"]


@dataclass(frozen=True)
class BenchRow:
    """One benchmark result (times in seconds, counts per event)."""

    sample: str
    pileup: float
    events: int
    seconds: float
    events_per_s: float
    s_per_event: float
    hits_per_event: float
    spacepoints_per_event: float
    particles_per_event: float
    write: bool

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def bench_sim(samples: Sequence[str] = ("hnl",), events: int = 50,
              pileups: Sequence[float] = (0, 50, 200), *, seed: int = 42,
              time_budget: float = 20.0, min_events: int = 2, write: bool = False,
              warmup: bool = True) -> list[BenchRow]:
    """Time the simulation (plus the CSV write with `write=True`) per sample and pileup.

    Uses `simulate_events`, the batched path `write_events` and the CLI use, so the
    figures are what `sonic-exatrkx simulate` achieves (minus writing, unless `write`).
    """
    check_count(events, "events")
    rows = []
    for sample in samples:
        for mu in pileups:
            cfg = SimulationConfig(sample=sample, pileup=float(mu), seed=seed)
            if warmup:  # lookup tables and imports are built once per process
                simulate_event(cfg, 10**6)
            with tempfile.TemporaryDirectory(prefix="sim-bench-") as tmp:
                n_hits, n_sp, n_part = [], [], []
                start = time.perf_counter()
                # the same batched path `write_events` (and so the CLI) uses
                for event, tables in simulate_events(cfg, range(events)):
                    if write:
                        write_event(Path(tmp), event, tables)
                    n_hits.append(len(tables["hits"]))
                    n_sp.append(len(tables["spacepoint"]))
                    n_part.append(len(tables["particles"]))
                    if len(n_hits) >= min_events and time.perf_counter() - start > time_budget:
                        break
                seconds = time.perf_counter() - start
                done = len(n_hits)
            rows.append(BenchRow(sample, float(mu), done, seconds, done / seconds,
                                 seconds / done, float(np.mean(n_hits)), float(np.mean(n_sp)),
                                 float(np.mean(n_part)), write))
    return rows


def format_table(rows: Sequence[BenchRow]) -> str:
    """Plain-text table of benchmark rows."""
    head = (f"{'sample':<11}{'pileup':>7}{'events':>7}{'events/s':>10}{'s/event':>9}"
            f"{'hits/ev':>10}{'sp/ev':>10}{'particles/ev':>13}{'write':>6}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r.sample:<11}{r.pileup:>7g}{r.events:>7d}{r.events_per_s:>10.1f}"
                     f"{r.s_per_event:>9.3f}{r.hits_per_event:>10.0f}"
                     f"{r.spacepoints_per_event:>10.0f}{r.particles_per_event:>13.0f}"
                     f"{'yes' if r.write else 'no':>6}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> list[BenchRow]:
    """Command line: print the benchmark table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", default="hnl", help="comma-separated samples")
    parser.add_argument("--pileups", default="0,50,200", help="comma-separated mu values")
    parser.add_argument("--events", type=int, default=50, help="events per row (at most)")
    parser.add_argument("--time-budget", type=float, default=20.0, help="seconds per row")
    parser.add_argument("--write", action="store_true", help="include the CSV writing")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    rows = bench_sim(samples=[s.strip() for s in args.samples.split(",") if s.strip()],
                     events=args.events,
                     pileups=[float(p) for p in args.pileups.split(",") if p.strip()],
                     seed=args.seed, time_budget=args.time_budget, write=args.write)
    print(format_table(rows))
    return rows


if __name__ == "__main__":
    main()
