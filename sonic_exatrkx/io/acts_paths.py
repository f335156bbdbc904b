"""Names and listings of ACTS event files (``<directory>/event%09d-<stem>.csv``).

The "stem" is the file kind (``spacepoint``, ``hits``, ...). Listing checks the
directory first, so a wrong path is an `EventDirectoryError` naming it rather than
an empty event list.
"""

from __future__ import annotations

import os
import re
from os import PathLike
from pathlib import Path

from sonic_exatrkx.checks import check_count

from .errors import EventDirectoryError

__all__ = ["StrPath", "event_files", "event_from_name", "event_path", "event_source",
           "list_events"]

StrPath = str | PathLike[str]

_EVENT_FILE = re.compile(r"^event(\d+)-(.+)\.csv$")


def event_path(directory: StrPath, event: int, stem: str) -> Path:
    """Path of one event file, ``<directory>/event%09d-<stem>.csv`` as ACTS names it."""
    check_count(event, "event number", minimum=0)
    return Path(directory) / f"event{event:09d}-{stem}.csv"


def event_files(directory: StrPath, looking_for: str) -> dict[str, set[int]]:
    """Map stem -> event numbers of the event files in `directory` (checked to exist)."""
    d = Path(directory)
    if not d.exists():
        raise EventDirectoryError(
            d, f"event directory does not exist (looked for {looking_for} files)"
        )
    if not d.is_dir():
        raise EventDirectoryError(
            d, f"is not a directory (looked for {looking_for} files inside it)"
        )
    stems: dict[str, set[int]] = {}
    for name in os.listdir(d):
        match = _EVENT_FILE.match(name)
        if match:
            stems.setdefault(match[2], set()).add(int(match[1]))
    return stems


def list_events(directory: StrPath, stem: str = "spacepoint") -> list[int]:
    """Sorted event numbers that have an ``event%09d-<stem>.csv`` file in `directory`.

    Raises `EventDirectoryError` for a missing path, a path that is not a directory, or
    a directory without such files (the message lists the stems that are there, which
    catches e.g. asking for "spacepoints" in a directory of "spacepoint" files).
    """
    pattern = f"event*-{stem}.csv"
    stems = event_files(directory, pattern)
    events = sorted(stems.get(stem, ()))
    if not events:
        present = ", ".join(sorted(stems)) if stems else "none (no event*-*.csv files at all)"
        raise EventDirectoryError(
            Path(directory), f"no {pattern} files; event file stems present: {present}"
        )
    return events


def event_from_name(path: Path) -> int | None:
    """The event number in an ``event%09d-<stem>.csv`` file name, else None."""
    match = _EVENT_FILE.match(path.name)
    return int(match[1]) if match else None


def event_source(path: StrPath) -> tuple[Path, int | None]:
    """(directory, event) of what a user points at: a folder of event files gives
    ``(folder, None)`` (all its events); one event file, ``.../event000000042-<kind>.csv``,
    gives ``(its folder, 42)``, only that event (the event's other files are read from
    the same folder). A file that is not named like an event file is an
    `EventDirectoryError` saying what is expected."""
    p = Path(path)
    if p.is_dir():
        return p, None
    match = _EVENT_FILE.match(p.name)
    if match is None:
        if not p.exists():
            return p, None  # listing the folder reports it missing
        hint = " (a ROOT file: --input-format root)" if p.suffix == ".root" else ""
        raise EventDirectoryError(
            p, f"is a file but not an event file{hint}: give the event folder or one event "
            "file named event<number>-<kind>.csv (e.g. event000000000-spacepoint.csv)")
    if not p.is_file():
        raise EventDirectoryError(p, "event file does not exist")
    return p.parent, int(match[1])
