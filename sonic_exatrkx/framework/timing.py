"""Per-algorithm timing, written as ACTS's timing.csv."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class AlgorithmTiming:
    identifier: str
    time_total_s: float = 0.0
    calls: int = 0

    @property
    def time_perevent_s(self) -> float:
        return self.time_total_s / self.calls if self.calls else 0.0


@dataclass
class TimingTable:
    """Accumulates time per algorithm; only the event-loop thread adds to it."""

    rows: dict[str, AlgorithmTiming] = field(default_factory=dict)

    def add(self, identifier: str, seconds: float) -> None:
        row = self.rows.setdefault(identifier, AlgorithmTiming(identifier))
        row.time_total_s += seconds
        row.calls += 1

    def slowest(self) -> AlgorithmTiming | None:
        return max(self.rows.values(), key=lambda r: r.time_total_s, default=None)

    def merge_csv(self, path: Path) -> None:
        """Add the rows of another job's timing.csv (totals add; calls from per-event)."""
        if not path.is_file():
            return
        with path.open(newline="") as f:
            for row in csv.DictReader(f):
                total, per_event = float(row["time_total_s"]), float(row["time_perevent_s"])
                item = self.rows.setdefault(row["identifier"], AlgorithmTiming(row["identifier"]))
                item.time_total_s += total
                item.calls += round(total / per_event) if per_event > 0 else 0

    def write_csv(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["identifier", "time_total_s", "time_perevent_s"])
            for r in self.rows.values():
                w.writerow([r.identifier, f"{r.time_total_s:.6g}", f"{r.time_perevent_s:.6g}"])
        os.replace(tmp, path)
