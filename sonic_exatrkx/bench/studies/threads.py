"""Study ``threads`` (the seeds' Fig. 3, the CPU study): the time to process N events
against the number of CPU threads given to the work, three ways:

- ``direct``: N events through the pipeline in this process, ``threads`` events at once,
  each call with one torch/FAISS thread (the pools owned: what this project does);
- ``direct-shared-pools``: the same, but every call with ``threads`` torch/FAISS threads,
  as a job that leaves the libraries at their defaults does (threads x threads busy
  threads: the clash the seeds saw between FAISS and the framework's TBB);
- ``served``: the same events as ``threads`` requests in flight to the custom backend,
  whose server has at least that many instances of one thread each.

Reported as seconds per 100 events (the seeds' axis) and events/s; ratios within trials.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from sonic_exatrkx.bench import plots
from sonic_exatrkx.bench.results import (
    StudyResult,
    markdown_table,
    ratio_by_trial,
    summarize,
)
from sonic_exatrkx.bench.studies.common import (
    BenchSettings,
    Say,
    check_among,
    check_counts,
    event_features,
    load_pipeline,
    quiet,
    served,
)

__all__ = ["PATHS", "ThreadsConfig", "plot_threads", "run_threads"]

PATHS = ("direct", "direct-shared-pools", "served")
METRICS = ("s_per_100_events", "events_per_s")


@dataclass(frozen=True)
class ThreadsConfig:
    settings: BenchSettings = field(default_factory=BenchSettings)
    threads: tuple[int, ...] = (1, 2, 4)
    paths: tuple[str, ...] = PATHS

    def __post_init__(self) -> None:
        check_counts(self.threads, "threads")
        check_among(self.paths, PATHS, "paths")


def _row(trial: int, path: str, threads: int, events: int, wall: float) -> dict[str, Any]:
    return {"trial": trial, "path": path, "threads": threads, "events": events,
            "wall_s": wall, "s_per_100_events": 100.0 * wall / events,
            "events_per_s": events / wall}


def run_threads(config: ThreadsConfig, say: Say = quiet) -> StudyResult:
    from sonic_exatrkx.bench.serve import bench_served
    from sonic_exatrkx.bench.workers import run_concurrent

    s = config.settings
    owned = load_pipeline(s, threads=1)
    feats = event_features(owned, s)
    blocks = {s.pileup: feats}
    warm = feats[:2]
    expected = [owned.run(f).labels for f in feats]
    rows: list[dict[str, Any]] = []
    most = max(config.threads)
    notes = []
    with served(s, instances=most, threads=1, ensemble=False, say=say) as server:
        if "served" in config.paths and (server.instances or 0) < most:
            notes.append(f"the server has {server.instances} instance(s): served passes "
                         f"above that many threads queue on the server")
        for trial in range(s.trials):
            for t in config.threads:
                for path in config.paths:
                    if path == "served":
                        got = bench_served(server.url, s.protocol, blocks, [t], [1],
                                           server.instances or 1, {s.pileup: expected},
                                           models=("exatrkx",))
                        if got[0].labels_equal is False:
                            notes.append(f"LABEL MISMATCH: served, {t} threads, trial {trial}")
                        wall = got[0].wall_s
                    else:
                        pipe = owned if path == "direct" else load_pipeline(s, threads=t)
                        run_concurrent(lambda f, p=pipe: p.run(f), warm, min(t, len(warm)))
                        wall, _, _ = run_concurrent(lambda f, p=pipe: p.run(f).labels,
                                                    feats, t)
                    rows.append(_row(trial, path, t, len(feats), wall))
            say(f"trial {trial + 1}/{s.trials}: " + ", ".join(
                f"{r['path']}@{r['threads']} {r['s_per_100_events']:.2f} s/100"
                for r in rows if r["trial"] == trial))
    owned.run(feats[0])  # leave the process at one torch/FAISS thread
    result = StudyResult("threads", {"config": {"threads": config.threads,
                                                "paths": config.paths},
                                     "settings": s.described(), "server": server.describe()},
                         pd.DataFrame(rows), {}, notes=notes)
    _summarize(result)
    return result


def _summarize(result: StudyResult) -> None:
    frame = result.rows
    summary = summarize(frame, ["path", "threads"], METRICS)
    result.tables = [f"Time for 100 events vs threads ({int(frame['events'].iloc[0])} "
                     "events measured; median over trials, range):", "",
                     *markdown_table(summary, {
                         "path": "path", "threads": "threads",
                         "s_per_100_events": ("s per 100 events", ".2f"),
                         "events_per_s": ("events/s", ".2f")})]
    for t in sorted(frame["threads"].unique()):
        part = frame[frame["threads"] == t]
        for other in ("direct", "direct-shared-pools"):
            if {"served", other} <= set(part["path"]):
                ratio = ratio_by_trial(part, "events_per_s", {"path": "served"},
                                       {"path": other})[None]
                result.headline[f"served / {other}, {t} thread(s)"] = ratio.median
                result.notes.append(f"{t} thread(s): served / {other} events/s "
                                    f"{ratio.text()}x")
    result.notes.append("seeds (Perlmutter CPU node, 100 HNL events): the served pipeline "
                        "was clearly faster than direct inference at every thread count, "
                        "which they put down to FAISS and the framework (TBB) fighting "
                        "over threads")


def plot_threads(runs: plots.Runs, folder: Path) -> list[str]:
    with plots.figure() as (fig, (ax,)):
        for k, (label, result) in enumerate(runs):
            summary = summarize(result.rows, ["path", "threads"], METRICS)
            for c, path in enumerate(PATHS):
                plots.series(ax, summary[summary["path"] == path], "threads",
                             "s_per_100_events", plots.label_for(path, label, len(runs)),
                             run=k, colour=c)
        ax.set_xscale("log", base=2)
        ax.set_ylim(bottom=0)
        return [plots.save(fig, ax, folder / "threads.png", xlabel="CPU threads",
                           ylabel="Time for 100 events [s]",
                           title="Direct vs served on CPU (seeds' Fig. 3)")]
