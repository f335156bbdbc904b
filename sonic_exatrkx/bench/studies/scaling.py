"""Study ``scaling``: time and memory of each pipeline stage against the event size, on
simulated HNL events with pileup mu = 0, 10, 50, 100, 200 (in this process; the served
models run the same stage code).

Each event runs stage by stage through the service contract's stage functions
(:func:`sonic_exatrkx.exatrkx.stages.run_stage`, the labels of ``Pipeline.run``), each
stage timed, with the process's resident memory sampled every few milliseconds: per stage
the peak RSS while it ran and its rise over the RSS at its start. The allocator keeps
freed memory for reuse (``exatrkx/allocator.py``), so a later stage's rise can be smaller
than what it allocates; the peak is what a machine must have. The first event of each
pileup is a warm-up and not recorded. Blocks run from small to large events.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sonic_exatrkx.bench import plots
from sonic_exatrkx.bench.references import A100, REFERENCE_SPACEPOINTS
from sonic_exatrkx.bench.results import StudyResult, markdown_table, summarize
from sonic_exatrkx.bench.studies.common import (
    BenchError,
    BenchSettings,
    Say,
    event_features,
    load_pipeline,
    quiet,
)
from sonic_exatrkx.checks import check_count

__all__ = ["RssSampler", "ScalingConfig", "plot_scaling", "run_scaling"]
METRICS = ("time_ms", "peak_rss_mib", "rss_rise_mib", "space_points")


@dataclass(frozen=True)
class ScalingConfig:
    settings: BenchSettings = field(default_factory=lambda: BenchSettings(events=3))
    pileups: tuple[float, ...] = (0.0, 10.0, 50.0, 100.0, 200.0)
    pipeline_threads: int = 1  # torch/FAISS threads per call

    def __post_init__(self) -> None:
        if not self.pileups or any(not mu >= 0 for mu in self.pileups):
            raise BenchError(f"pileups must be >= 0, got {list(self.pileups)}")
        check_count(self.pipeline_threads, "pipeline threads", error=BenchError)


class RssSampler:
    """The process's peak resident memory (MiB) between :meth:`start` and :meth:`stop`,
    sampled every ``interval_s`` by a thread (psutil)."""

    def __init__(self, interval_s: float = 0.002) -> None:
        import psutil

        self._process = psutil.Process()
        self.interval_s = interval_s
        self._peak = 0
        self._running = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="rss-sampler")
        self._thread.start()

    def rss(self) -> int:
        return int(self._process.memory_info().rss)

    def _loop(self) -> None:
        while not self._stop.is_set():
            if self._running.wait(0.05):
                value = self.rss()
                with self._lock:
                    self._peak = max(self._peak, value)
                time.sleep(self.interval_s)

    def start(self) -> int:
        start = self.rss()
        with self._lock:
            self._peak = start
        self._running.set()
        return start

    def stop(self) -> int:
        self._running.clear()
        end = self.rss()
        with self._lock:
            return max(self._peak, end)

    def close(self) -> None:
        self._stop.set()
        self._running.set()
        self._thread.join(5)


def _one_event(pipe: Any, feats: np.ndarray, rss: RssSampler) -> list[dict[str, Any]]:
    from sonic_exatrkx.exatrkx.stages import STAGES, run_stage, stage_specs

    tensors: dict[str, np.ndarray] = {"FEATURES": feats}
    rows = []
    for stage in STAGES:
        inputs, _ = stage_specs(stage, pipe.config)
        start = rss.start()
        t0 = time.perf_counter()
        tensors.update(run_stage(pipe, stage, {n: tensors[n] for n in inputs}))
        wall = time.perf_counter() - t0
        peak = rss.stop()
        rows.append({"stage": stage, "time_ms": 1e3 * wall, "peak_rss_mib": peak / 2**20,
                     "rss_rise_mib": (peak - start) / 2**20})
    edges = {"graph_edges": tensors["EDGES"].shape[1],
             "filtered_edges": tensors["FILTERED_EDGES"].shape[1]}
    total = {"stage": "total", "time_ms": sum(r["time_ms"] for r in rows),
             "peak_rss_mib": max(r["peak_rss_mib"] for r in rows),
             "rss_rise_mib": max(r["rss_rise_mib"] for r in rows)}
    return [{**r, **edges} for r in [*rows, total]]


def run_scaling(config: ScalingConfig, say: Say = quiet) -> StudyResult:
    s = config.settings
    pipe = load_pipeline(s, threads=config.pipeline_threads)
    rows: list[dict[str, Any]] = []
    rss = RssSampler()
    try:
        for mu in sorted(config.pileups):
            feats = event_features(pipe, s, pileup=mu, events=s.events + 1)
            _one_event(pipe, feats[0], rss)  # warm-up
            for trial in range(s.trials):
                for event, f in enumerate(feats[1:]):
                    for row in _one_event(pipe, f, rss):
                        rows.append({"trial": trial, "pileup": mu, "event": event,
                                     "space_points": f.shape[0], **row})
            total = [r["time_ms"] for r in rows if r["pileup"] == mu and r["stage"] == "total"]
            say(f"mu={mu:g}: {np.mean([f.shape[0] for f in feats[1:]]):.0f} space points, "
                f"{np.median(total):.0f} ms per event")
    finally:
        rss.close()
    result = StudyResult("scaling", {"config": {"pileups": sorted(config.pileups),
                                                "pipeline_threads": config.pipeline_threads},
                                     "settings": s.described()}, pd.DataFrame(rows), {})
    _summarize(result)
    return result


def per_trial(rows: pd.DataFrame) -> pd.DataFrame:
    """Each trial's mean over its events, per pileup and stage (then medians over trials)."""
    return rows.groupby(["trial", "pileup", "stage"], sort=False, as_index=False)[
        list(METRICS)].mean()


def _summarize(result: StudyResult) -> None:
    summary = summarize(per_trial(result.rows), ["pileup", "stage"], METRICS)
    result.tables = ["Mean per event (median over trials, range); time in ms, memory in MiB:",
                     "", *markdown_table(summary, {
                         "pileup": "mu", "space_points": lambda r: f"{r['space_points']:.0f}",
                         "stage": "stage", "time_ms": ("time ms", ".1f"),
                         "peak_rss_mib": ("peak RSS MiB", ".0f"),
                         "rss_rise_mib": ("RSS rise MiB", ".0f")})]
    total = summary[summary["stage"] == "total"]
    for _, r in total.iterrows():
        result.headline[f"mu={r['pileup']:g} ms/event"] = float(r["time_ms"])
        result.headline[f"mu={r['pileup']:g} peak RSS MiB"] = float(r["peak_rss_mib"])
    stages = summary[summary["stage"] != "total"]
    for mu, part in stages.groupby("pileup"):
        top = part.sort_values("time_ms").iloc[-1]
        result.notes.append(f"mu={mu:g} ({top['space_points']:.0f} space points): the "
                            f"largest stage is {top['stage']} ({top['time_ms']:.1f} ms)")
    ref = A100["stages_ms"]
    result.notes.append("seeds' A100 ensemble at 1,321 space points: embedding 0.8, FRNN "
                        f"4.1, filter 2.5, GNN 11.7, connected components 76 ms "
                        f"({sum(ref.y):.1f} ms in all)")


def plot_scaling(runs: plots.Runs, folder: Path) -> list[str]:
    from sonic_exatrkx.exatrkx.stages import STAGES

    with plots.figure(ncols=2) as (fig, (ax, bx)):
        for k, (label, result) in enumerate(runs):
            summary = summarize(per_trial(result.rows), ["pileup", "stage"], METRICS)
            for c, stage in enumerate((*STAGES, "total")):
                part = summary[summary["stage"] == stage]
                name = plots.label_for(stage, label, len(runs))
                plots.series(ax, part, "space_points", "time_ms", name, run=k, colour=c)
                plots.series(bx, part, "space_points", "peak_rss_mib", name, run=k,
                             colour=c)
        ref = A100["stages_ms"]
        for c, (_stage, y) in enumerate(zip(STAGES, ref.y, strict=True)):
            ax.plot([REFERENCE_SPACEPOINTS], [y], ls="none", marker="o", mfc="none",
                    mec=plots.colour(c), ms=10, mew=2,
                    label=f"{ref.label} (per stage, same colours)" if c == 0 else None)
        for a in (ax, bx):
            a.set_xscale("log")
        ax.set_yscale("log")
        return [plots.save(fig, [ax, bx], folder / "scaling.png",
                           xlabel="Space points per event",
                           ylabel=["Time per event [ms]", "Peak resident memory [MiB]"],
                           title="Cost per stage vs event size (pileup 0-200)")]
