"""What the readers do with what users bring, as one validated value, and the counts of
what they left out (printed in the job's summary, so a dropped hit is never silent).

`InputOptions` is shared by the three readers (ACTS CSV, ROOT, TrackML): a malformed
event fails the job or is skipped; exact duplicate space points are counted and warned
about or dropped; NaN/inf positions are an error naming file, line and column, or the
hits are dropped; and ACTS CSV output without a spacepoint file can get its space points
from the measurements or the hits (:mod:`sonic_exatrkx.io.spacepoints_from`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, fields

from sonic_exatrkx.framework import ConfigurationError
from sonic_exatrkx.io.spacepoint_checks import DUPLICATES
from sonic_exatrkx.io.spacepoints_from import SPACEPOINTS_FROM

BAD_EVENT_POLICIES = ("fail", "skip")
NONFINITE = ("error", "drop")


@dataclass(frozen=True)
class InputOptions:
    """``on_bad_event``: "fail" | "skip" a malformed event. ``duplicates``: "warn" |
    "drop" exact duplicate space points. ``nonfinite``: "error" (an error naming the
    line) | "drop" hits/space points with NaN/inf positions (ACTS-Fatras TrackML output
    has them). ``spacepoints_from``: None (the spacepoint files) | "measurements" |
    "hits", for ACTS CSV output that has no spacepoint file."""

    on_bad_event: str = "fail"
    duplicates: str = "warn"
    nonfinite: str = "error"
    spacepoints_from: str | None = None

    def __post_init__(self) -> None:
        for name, allowed in (("on_bad_event", BAD_EVENT_POLICIES),
                              ("duplicates", DUPLICATES), ("nonfinite", NONFINITE),
                              ("spacepoints_from", (None, *SPACEPOINTS_FROM))):
            value = getattr(self, name)
            if value not in allowed:
                raise ConfigurationError(f"{name} must be one of {allowed}, got {value!r}")


def reader_options(owner: str, **options: str | None) -> InputOptions:
    """A reader's options, checked; the error names the reader."""
    try:
        return InputOptions(**options)  # type: ignore[arg-type]
    except ConfigurationError as err:
        raise ConfigurationError(f"{owner}: {err}") from None


@dataclass
class InputCounts:
    """What a reader left out or warned about, summed over the events it read (readers
    run on several threads: `add` takes a lock)."""

    events: int = 0
    nonfinite_dropped: int = 0
    duplicates_found: int = 0
    duplicates_dropped: int = 0
    unplaced_measurements: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def add(self, **counts: int) -> None:
        with self._lock:
            self.events += 1
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + int(value))

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def line(self, what: str = "space points") -> str | None:
        """One summary line, or None when nothing was left out or repeated."""
        parts = []
        if self.nonfinite_dropped:
            parts.append(f"{self.nonfinite_dropped} {what} with non-finite positions "
                         "dropped (--nonfinite drop)")
        if self.unplaced_measurements:
            parts.append(f"{self.unplaced_measurements} measurements without a simulated "
                         "hit left out (no global position)")
        if self.duplicates_dropped:
            parts.append(f"{self.duplicates_dropped} duplicated space points dropped")
        elif self.duplicates_found:
            parts.append(f"{self.duplicates_found} duplicated space points kept "
                         "(--drop-duplicates drops them)")
        if not parts:
            return None
        return f"input ({self.events} events read): " + "; ".join(parts)


def input_summary(readers: Iterable[object]) -> list[str]:
    """The summary lines of the readers that count what they left out."""
    lines = []
    for reader in readers:
        counts = getattr(reader, "counts", None)
        if isinstance(counts, InputCounts):
            line = counts.line(getattr(reader, "dropped_what", "space points"))
            if line:
                lines.append(line)
    return lines
