"""Shards: N jobs that together cover a job's events exactly once.

Shard ``I/N`` (``I`` from 0, as HTCondor's ``$(Process)`` and Slurm's array index count)
takes the ``I``-th of ``N`` contiguous blocks of the job's event list (the readers' common
events after ``skip`` / ``events``), block ``I`` being ``events[I*n//N : (I+1)*n//N]``: the
blocks differ in size by at most one event, keep neighbouring events together, and their
union is the whole list with no event twice.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from sonic_exatrkx.framework.errors import ConfigurationError

_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    def __post_init__(self) -> None:
        if not (isinstance(self.count, int) and self.count >= 1
                and isinstance(self.index, int) and 0 <= self.index < self.count):
            raise ConfigurationError(f"shard must be I/N with 0 <= I < N, got "
                                     f"{self.index}/{self.count}")

    @classmethod
    def parse(cls, spec: str) -> Shard:
        """From ``"I/N"``."""
        m = _SPEC.match(spec)
        if m is None:
            raise ConfigurationError(f"shard must be I/N (e.g. 0/4), got {spec!r}")
        return cls(int(m.group(1)), int(m.group(2)))

    def select(self, events: Sequence[int]) -> list[int]:
        """This shard's block of ``events``."""
        n = len(events)
        return list(events[self.index * n // self.count:(self.index + 1) * n // self.count])

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"
