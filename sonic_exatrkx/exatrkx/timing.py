"""Per-stage wall-clock timing, shared by the pipeline and by callers running stages alone."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


class StageTimer:
    """Accumulates ``time.perf_counter`` seconds per stage name.

    >>> timer = StageTimer()
    >>> with timer.stage("build_edges"):
    ...     pass
    >>> sorted(timer.timings)
    ['build_edges']
    """

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - t0

    @property
    def total(self) -> float:
        return sum(self.timings.values())
