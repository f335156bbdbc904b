"""The manifest of a job's output folder: what the job is, what it has done.

``manifest.json`` is written when a reconstruction job starts (``complete: false``) and
again when it ends: the settings that decide its outputs (input, event selection, models
checksum, service option, performance settings), the shard, the events it covers and,
at the end, the events committed, skipped and failed, a checksum of every output file and
the software versions. A restarted job compares settings with it before resuming; a merge
checks that its inputs are shards of one job and that they cover its events exactly once.
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sonic_exatrkx.exatrkx.pipeline import file_sha256
from sonic_exatrkx.framework import ConfigurationError

MANIFEST = "manifest.json"
FORMAT = 1
#: The folder of a job's per-event commits (:mod:`sonic_exatrkx.framework.commits`).
COMMITS = "commits"
#: Outputs whose checksums the manifest records (timing and plots vary run to run).
CHECKSUMMED = ("tracks", "tracks.root", "performance.json", "performance.txt")


def software() -> dict[str, str]:
    from importlib.metadata import version  # the package's one version source

    import numpy
    import torch

    return {"sonic-exatrkx": version("sonic-exatrkx"), "python": platform.python_version(),
            "numpy": numpy.__version__, "torch": torch.__version__}


@dataclass
class Manifest:
    """See the module docstring. ``events``: the whole job's events (before sharding);
    ``planned``: this folder's share; ``done`` / ``skipped`` / ``failed``: at the end."""

    settings: dict[str, Any]
    events: list[int]
    planned: list[int]
    shard: str | None = None
    complete: bool = False
    done: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)
    client_stats: list[dict[str, Any]] = field(default_factory=list)
    software: dict[str, str] = field(default_factory=software)
    merged_from: list[str] = field(default_factory=list)
    format: int = FORMAT

    def write(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / MANIFEST
        tmp = path.with_name(f".{MANIFEST}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1, sort_keys=True) + "\n")
        os.replace(tmp, path)
        return path

    @classmethod
    def read(cls, folder: Path) -> Manifest:
        path = folder / MANIFEST
        try:
            data = json.loads(path.read_text())
            if data.get("format") != FORMAT:
                raise ValueError(f"format {data.get('format')!r}, expected {FORMAT}")
            return cls(**data)
        except FileNotFoundError:
            raise ConfigurationError(f"{folder}: no {MANIFEST}: not the output folder of a "
                                     "sonic-exatrkx job") from None
        except (ValueError, TypeError) as exc:
            raise ConfigurationError(f"{path}: not a valid manifest ({exc})") from exc

    @staticmethod
    def exists(folder: Path) -> bool:
        return (folder / MANIFEST).is_file()


def settings_difference(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """``key: a -> b`` for each setting that differs."""
    return [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b))
            if a.get(k) != b.get(k)]


def output_checksums(folder: Path, names: list[str]) -> dict[str, str]:
    """sha256 of each output file (paths relative to ``folder``; folders: their files)."""
    sums: dict[str, str] = {}
    for name in names:
        path = folder / name
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() \
            else [path] if path.is_file() else []
        for file in files:
            if not file.name.startswith("."):
                sums[str(file.relative_to(folder))] = file_sha256(file)
    return sums
