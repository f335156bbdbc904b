"""Study ``instances`` (the seeds' Fig. 4b): events/s of the custom backend against the
number of model instances, for each number of torch/FAISS threads per instance; with a
GPU, also its utilisation (``nvidia-smi``, sampled while the requests run).

Each (instances, threads) pair gets its own server started here (custom backend only, so
it starts quickly), with ``concurrency`` requests in flight (default: two per instance, so
that every instance has the next event queued). Against ``--server URL`` the server's own
configuration is measured once (its instance count read from its model config).
Ratios to one instance are within the run (trial k against trial k).
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sonic_exatrkx.bench import plots
from sonic_exatrkx.bench.references import A100
from sonic_exatrkx.bench.results import (
    StudyResult,
    markdown_table,
    ratio_by_trial,
    summarize,
)
from sonic_exatrkx.bench.studies.common import (
    BenchError,
    BenchSettings,
    Say,
    event_features,
    load_pipeline,
    quiet,
    served,
)
from sonic_exatrkx.checks import check_count

__all__ = ["GpuSampler", "InstancesConfig", "plot_instances", "run_instances"]
METRICS = ("events_per_s", "p50_ms", "gpu_util")


@dataclass(frozen=True)
class InstancesConfig:
    settings: BenchSettings = field(default_factory=BenchSettings)
    instances: tuple[int, ...] = (1, 2, 3, 4)
    threads_per_instance: tuple[int, ...] = (1,)
    concurrency: int | None = None  # None: two requests per instance

    def __post_init__(self) -> None:
        if not self.instances or not self.threads_per_instance:
            raise BenchError("instances and threads per instance: give at least one value")
        for n in (*self.instances, *self.threads_per_instance):
            check_count(n, "instances and threads per instance", error=BenchError)
        if self.concurrency is not None:
            check_count(self.concurrency, "concurrency", error=BenchError)


class GpuSampler:
    """Mean GPU utilisation (%) over a block, from ``nvidia-smi`` every 0.2 s; NaN without
    a GPU (nothing runs then)."""

    def __init__(self) -> None:
        self.enabled = shutil.which("nvidia-smi") is not None and _has_gpu()
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _loop(self) -> None:
        while not self._stop.wait(0.2):
            try:
                out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu",
                                      "--format=csv,noheader,nounits"], capture_output=True,
                                     text=True, timeout=5, check=True).stdout
                self.samples.append(float(np.mean([float(v) for v in out.split()])))
            except (OSError, subprocess.SubprocessError, ValueError):
                return

    def __enter__(self) -> GpuSampler:
        if self.enabled:
            self._thread = threading.Thread(target=self._loop, daemon=True, name="gpu-util")
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    @property
    def mean(self) -> float:
        return float(np.mean(self.samples)) if self.samples else float("nan")


def _has_gpu() -> bool:
    from sonic_exatrkx.bench.machine import gpus

    return bool(gpus())


def run_instances(config: InstancesConfig, say: Say = quiet) -> StudyResult:
    from sonic_exatrkx.bench.serve import bench_direct, bench_served
    from sonic_exatrkx.bench.studies.throughput import rows_frame

    s = config.settings
    pipe = load_pipeline(s, threads=1)
    blocks = {s.pileup: event_features(pipe, s)}
    _, expected = bench_direct(pipe, blocks, [1])  # the reference labels
    pairs = [(None, None)] if s.server else [
        (n, t) for t in config.threads_per_instance for n in config.instances]
    if s.server:
        say("a given server: its own instances and threads are measured (once)")
    rows: list[dict[str, Any]] = []
    servers = []
    for n, t in pairs:
        with served(s, instances=n, threads=t, ensemble=False, say=say) as server:
            servers.append(server.describe())
            instances = server.instances or 1
            c = config.concurrency or 2 * instances
            for trial in range(s.trials):
                with GpuSampler() as gpu:
                    got = bench_served(server.url, s.protocol, blocks, [c], [1], instances,
                                       expected, models=("exatrkx",))
                for row in rows_frame(got, trial):
                    row.update(instances=instances, threads_per_instance=server.threads or t,
                               gpu_util=gpu.mean)
                    rows.append(row)
            say(f"{instances} instance(s) x {server.threads or t} thread(s), {c} in flight: "
                + ", ".join(f"{r['events_per_s']:.1f}" for r in rows[-s.trials:])
                + " events/s")
    result = StudyResult("instances", {"config": {
        "instances": config.instances, "threads_per_instance": config.threads_per_instance,
        "concurrency": config.concurrency or "2 per instance"},
        "settings": s.described(), "servers": servers}, pd.DataFrame(rows), {})
    _summarize(result)
    return result


def _summarize(result: StudyResult) -> None:
    frame = result.rows
    summary = summarize(frame, ["threads_per_instance", "instances", "concurrency"], METRICS)
    result.tables = ["Custom backend events/s vs instances (median over trials, range):", "",
                     *markdown_table(summary, {
                         "threads_per_instance": "threads/instance",
                         "instances": "instances", "concurrency": "in flight",
                         "events_per_s": ("events/s", ".2f"),
                         "p50_ms": ("p50 ms", ".1f"),
                         "gpu_util": ("GPU util %", ".0f")})]
    for t in sorted(frame["threads_per_instance"].unique()):
        part = frame[frame["threads_per_instance"] == t]
        ns = sorted(part["instances"].unique())
        for n in ns[1:]:
            ratio = ratio_by_trial(part, "events_per_s", {"instances": n},
                                   {"instances": ns[0]})[None]
            result.headline[f"{n} / {ns[0]} instances ({t} thread(s) each)"] = ratio.median
            result.notes.append(f"{n} instances / {ns[0]} ({t} thread(s) each): "
                                f"{ratio.text()}x")
    ref = A100["instances"]
    result.notes.append("seeds' A100: " + ", ".join(
        f"{int(x)}: {y:g}" for x, y in zip(ref.x, ref.y, strict=True))
        + " events/s (2 / 1 = 1.31x)")
    if frame["gpu_util"].notna().any():
        result.headline["max GPU utilisation %"] = float(frame["gpu_util"].max())
    bad = int(frame["labels_equal"].eq(False).sum())
    result.headline["label mismatches"] = bad
    if bad:
        result.notes.append(f"LABEL MISMATCH in {bad} pass(es)")


def plot_instances(runs: plots.Runs, folder: Path) -> list[str]:
    with plots.figure() as (fig, (ax,)):
        twin = None
        for k, (label, result) in enumerate(runs):
            summary = summarize(result.rows, ["threads_per_instance", "instances"], METRICS)
            for c, t in enumerate(sorted(summary["threads_per_instance"].unique())):
                part = summary[summary["threads_per_instance"] == t]
                plots.series(ax, part, "instances", "events_per_s",
                             plots.label_for(f"custom backend, {t} thread(s)/instance", label,
                                             len(runs)), run=k, colour=c)
                if part["gpu_util"].notna().any():
                    twin = twin or ax.twinx()
                    twin.plot(part["instances"], part["gpu_util"], color="red", marker="x",
                              ls=("-", "--", ":")[k % 3],
                              label=plots.label_for("GPU utilisation", label, len(runs)))
        plots.reference(ax, A100["instances"], colour=3)
        ax.set_ylim(bottom=0)
        if twin is not None:
            twin.set_ylabel("GPU utilisation [%]", color="red")
            twin.set_ylim(0, 100)
        return [plots.save(fig, ax, folder / "instances.png", xlabel="Model instances",
                           ylabel="Throughput [events/s]",
                           title="Custom backend vs instances (seeds' Fig. 4b)")]
