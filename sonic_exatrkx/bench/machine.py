"""What a benchmark ran on, saved with every result: a figure without its machine, package
versions and commit cannot be compared with anything."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["PACKAGES", "cpu_model", "git_commit", "gpus", "machine_info"]

#: Distributions whose versions move the figures.
PACKAGES = ("sonic-exatrkx", "torch", "faiss-cpu", "faiss-gpu", "numpy", "scipy",
            "tritonclient", "nvidia-pytriton", "grpcio")


def cpu_model() -> str:
    """The CPU's model name (Linux ``/proc/cpuinfo``; elsewhere what ``platform`` says)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpus() -> list[dict[str, Any]]:
    """The CUDA devices torch sees (name, memory); empty without a usable GPU."""
    try:
        import torch

        if not torch.cuda.is_available():
            return []
        out = []
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            out.append({"index": i, "name": props.name,
                        "memory_gib": round(props.total_memory / 2**30, 1)})
        return out
    except Exception:  # noqa: BLE001 - a broken CUDA install is "no GPU" here, said so
        return []


def git_commit(where: Path | None = None) -> dict[str, Any]:
    """Commit of the checkout the package runs from, and whether it has local changes
    (``None`` outside a git checkout, e.g. an installed wheel)."""
    root = where or Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], check=True,
                              capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                                "--untracked-files=no"], check=True, capture_output=True,
                               text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": head, "dirty": bool(dirty)}


def _versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def machine_info() -> dict[str, Any]:
    """CPU model, cores (all / usable by this process), memory, GPUs, OS, Python, package
    versions, git commit and the load average when the run started (a busy machine moves
    every figure)."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count() or 1
    try:
        import psutil

        memory_gib = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        memory_gib = None
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {
        "hostname": platform.node(),
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "memory_gib": memory_gib,
        "gpus": gpus(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "packages": _versions(),
        "git": git_commit(),
        "load_average": load,
    }
