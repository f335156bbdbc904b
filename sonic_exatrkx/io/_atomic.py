"""Atomic file replacement: write to a temporary sibling, rename on success.

A crash or exception mid-write must never leave a truncated event file that a later
job would read as a (silently shorter) event. The temporary file lives in the same
directory so `os.replace` is an atomic rename on POSIX; its name starts with a dot and
ends in `.tmp`, so `list_events` never mistakes it for an event file.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import TextIO


def temp_path_for(path: Path) -> Path:
    """A fresh, unused temporary name next to `path`."""
    return path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")


def commit(tmp: Path, path: Path) -> None:
    """Move a finished temporary file over its final name (atomic on one filesystem)."""
    os.replace(tmp, path)


def discard(tmp: Path) -> None:
    """Remove a temporary file after a failure; a missing file is fine."""
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()


def atomic_write_text(path: Path, write: Callable[[TextIO], None]) -> None:
    """Call `write(handle)` on a temporary file and rename it to `path` on success.

    The file is created with O_EXCL and mode 0o666 (minus the umask), like a normal
    `open(..., "w")`, so the final file has ordinary permissions.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        commit(tmp, path)
    except BaseException:
        discard(tmp)
        raise
