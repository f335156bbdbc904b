"""Per-event commits: what makes a job resumable and its shards mergeable.

After every writer has finished an event, the Sequencer asks each writer for the state it
needs to rebuild its end-of-job output without the event (``Writer.checkpoint``: e.g. the
track labels a ROOT file is written from, the per-event arrays the performance is computed
from) and stores them with the event's status in ``<folder>/event%09d.npz``, written to a
temporary name, flushed and renamed: a job killed at any point (SIGKILL, preemption) leaves
whole commits only. A job restarted on the folder restores its writers from the commits
(``Writer.restore``) instead of processing those events again; a merge restores the writers
of the merged output from every shard's commits, in event order. Per-event files that
writers write themselves (CSV tracks) are written atomically before the commit, so a
committed event's files are complete.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np

#: Statuses of a committed event: written by every writer, or skipped by an algorithm.
DONE, SKIPPED = "done", "skipped"
_NAME = re.compile(r"^event(\d{9})\.npz$")

State = Mapping[str, np.ndarray]


class EventCommits:
    """The commits of one output folder (``<output>/commits`` by convention)."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)

    def path(self, event: int) -> Path:
        return self.folder / f"event{event:09d}.npz"

    def events(self) -> list[int]:
        """Committed event numbers, sorted."""
        if not self.folder.is_dir():
            return []
        return sorted(int(m.group(1)) for p in self.folder.iterdir()
                      if (m := _NAME.match(p.name)))

    def commit(self, event: int, status: str, states: Mapping[str, State]) -> None:
        """Store ``states`` (writer name -> arrays) and ``status`` for ``event``, atomically."""
        self.folder.mkdir(parents=True, exist_ok=True)
        arrays = {"status": np.array(status)}
        for writer, state in states.items():
            for key, value in state.items():
                arrays[f"{writer}/{key}"] = np.asarray(value)
        final = self.path(event)
        tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as handle:
                np.savez(handle, **arrays)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, final)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    def status(self, event: int) -> str:
        """The committed status of ``event`` (reads only that entry)."""
        with np.load(self.path(event), allow_pickle=False) as data:
            return str(data["status"])

    def load(self, event: int) -> tuple[str, dict[str, dict[str, np.ndarray]]]:
        """The status and the writers' states committed for ``event``."""
        states: dict[str, dict[str, np.ndarray]] = {}
        with np.load(self.path(event), allow_pickle=False) as data:
            status = str(data["status"])
            for key in data.files:
                if key != "status":
                    writer, _, name = key.partition("/")
                    states.setdefault(writer, {})[name] = data[key]
        return status, states

    def clear(self) -> None:
        """Remove every commit (a job told to start over)."""
        for event in self.events():
            self.path(event).unlink()
