"""Study ``throughput`` (the seeds' Fig. 4a): events/s and request latency (p50, p90,
p99) against the number of requests in flight, for the pipeline in this process
(``direct``: that many threads, one torch/FAISS thread each), the custom backend
(``custom``: one request runs the whole pipeline) and the ensemble (``ensemble``: Triton
chains the per-stage models), one event per request.

The engines are those of ``bench serve`` (:func:`~sonic_exatrkx.bench.serve.bench_direct`,
:func:`~sonic_exatrkx.bench.serve.bench_served`): each pass warms up first, then sends
every event once from long-lived client threads sharing one queue; every served label is
compared with the direct one. Ratios (custom / direct, ensemble / custom) are taken within
each trial, at each one's best concurrency.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from sonic_exatrkx.bench import plots
from sonic_exatrkx.bench.references import A100
from sonic_exatrkx.bench.results import Stat, StudyResult, markdown_table, summarize
from sonic_exatrkx.bench.studies.common import (
    SERVER_BATCHING_OPTION,
    BenchSettings,
    Say,
    check_among,
    check_counts,
    event_features,
    load_pipeline,
    quiet,
    served,
    server_batching,
)
from sonic_exatrkx.exatrkx.stages import DYNAMIC_MODEL

__all__ = ["PATHS", "ThroughputConfig", "plot_throughput", "run_throughput"]

#: custom-batched: the custom backend with Triton's dynamic batching (exatrkx_dynamic).
PATHS = ("direct", "custom", "custom-batched", "ensemble")
_SERVED_LABEL = {"exatrkx": "custom", "ensemble": "ensemble", "direct": "direct",
                 "custom-batched": "custom-batched"}
_MODELS = {"custom": "exatrkx", "custom-batched": DYNAMIC_MODEL, "ensemble": "exatrkx_ensemble"}
METRICS = ("events_per_s", "p50_ms", "p90_ms", "p99_ms")


@dataclass(frozen=True)
class ThroughputConfig:
    settings: BenchSettings = field(default_factory=BenchSettings)
    concurrency: tuple[int, ...] = (1, 2, 4, 8, 16)
    paths: tuple[str, ...] = PATHS

    def __post_init__(self) -> None:
        check_counts(self.concurrency, "concurrency")
        check_among(self.paths, PATHS, "paths")


def rows_frame(rows: list[Any], trial: int) -> list[dict[str, Any]]:
    """``bench serve`` rows as study rows of one trial."""
    return [{"trial": trial, "path": _SERVED_LABEL.get(r.path, r.path),
             "concurrency": r.concurrency, "events_per_request": r.events_per_request,
             "events": r.events, "space_points": r.space_points, "wall_s": r.wall_s,
             "events_per_s": r.events_per_s, "p50_ms": r.latency_ms(50),
             "p90_ms": r.latency_ms(90), "p99_ms": r.latency_ms(99),
             "instances": r.instances, "labels_equal": r.labels_equal} for r in rows]


def best_ratio(rows: pd.DataFrame, numerator: str, denominator: str) -> Stat:
    """Best events/s of ``numerator`` over that of ``denominator``, within each trial."""
    best = rows.groupby(["trial", "path"])["events_per_s"].max().unstack()
    if numerator not in best or denominator not in best:
        return Stat.of([])
    return Stat.of((best[numerator] / best[denominator]).to_numpy())


def run_throughput(config: ThroughputConfig, say: Say = quiet) -> StudyResult:
    from sonic_exatrkx.bench.serve import bench_direct, bench_served
    s = config.settings
    pipe = load_pipeline(s, threads=1)
    blocks = {s.pileup: event_features(pipe, s)}
    rows: list[dict[str, Any]] = []
    served_paths = [p for p in config.paths if p != "direct"]
    models = tuple(_MODELS[p] for p in served_paths)
    options = {SERVER_BATCHING_OPTION: server_batching()} \
        if "custom-batched" in config.paths else {}
    with served(s, ensemble="ensemble" in config.paths, repository_options=options,
                say=say) as server:
        for trial in range(s.trials):
            direct, expected = bench_direct(pipe, blocks, config.concurrency)
            if "direct" in config.paths:
                rows += rows_frame(direct, trial)
            if models:
                got = bench_served(server.url, s.protocol, blocks, config.concurrency, [1],
                                   server.instances or 1, expected, models=models)
                rows += rows_frame(got, trial)
            say(f"trial {trial + 1}/{s.trials}: " + ", ".join(
                f"{r['path']}@{r['concurrency']} {r['events_per_s']:.1f}/s"
                for r in rows if r["trial"] == trial))
    frame = pd.DataFrame(rows)
    result = StudyResult("throughput", {"config": {"concurrency": config.concurrency,
                                                   "paths": config.paths},
                                        "settings": s.described(),
                                        "server": server.describe()}, frame, {})
    _summarize(result)
    return result


def _summarize(result: StudyResult) -> None:
    frame = result.rows
    summary = summarize(frame, ["path", "concurrency"], METRICS)
    result.tables = ["Events/s and latency per request (median over trials, range):", "",
                     *markdown_table(summary, {
                         "path": "path", "concurrency": "in flight",
                         "events_per_s": ("events/s", ".2f"),
                         "p50_ms": ("p50 ms", ".1f"),
                         "p90_ms": ("p90 ms", ".1f"),
                         "p99_ms": ("p99 ms", ".1f")})]
    for path in frame["path"].unique():
        best = summary[summary["path"] == path]["events_per_s"].max()
        result.headline[f"best {path} events/s"] = float(best)
    seeds = {("custom", "direct"): "; seeds' A100: custom 54 vs direct 65 events/s (0.83)",
             ("ensemble", "custom"): "; seeds' A100: ensemble 25.5 vs custom 54 events/s "
                                     "(0.47)"}
    for num, den in (("custom", "direct"), ("custom-batched", "direct"),
                     ("custom-batched", "custom"), ("ensemble", "custom")):
        ratio = best_ratio(frame, num, den)
        if ratio.trials:
            result.headline[f"{num} / {den} (best concurrency)"] = ratio.median
            result.notes.append(f"{num} / {den} at each one's best concurrency: "
                                f"{ratio.text()} (within each trial)"
                                + seeds.get((num, den), ""))
    bad = frame["labels_equal"].eq(False).sum() if "labels_equal" in frame else 0
    result.headline["label mismatches"] = int(bad)
    result.notes.append("every served label equals the direct one" if bad == 0 else
                        f"LABEL MISMATCH in {bad} pass(es)")


def plot_throughput(runs: plots.Runs, folder: Path) -> list[str]:
    files = []
    with plots.figure() as (fig, (ax,)):
        for k, (label, result) in enumerate(runs):
            summary = summarize(result.rows, ["path", "concurrency"], METRICS)
            for c, path in enumerate(PATHS):
                part = summary[summary["path"] == path]
                plots.series(ax, part, "concurrency", "events_per_s",
                             plots.label_for(path, label, len(runs)), run=k, colour=c)
        plots.reference(ax, A100["direct"], colour=0)
        plots.reference(ax, A100["custom"], colour=1, hline=True)
        plots.reference(ax, A100["ensemble"], colour=2, hline=True)
        ax.set_xscale("log", base=2)
        ax.set_ylim(bottom=0)
        files.append(plots.save(fig, ax, folder / "throughput.png",
                                xlabel="Requests in flight (concurrency)",
                                ylabel="Throughput [events/s]",
                                title="Throughput vs concurrency (seeds' Fig. 4a)"))
    with plots.figure(ncols=3, width=5.5) as (fig, axes):
        for k, (label, result) in enumerate(runs):
            summary = summarize(result.rows, ["path", "concurrency"], METRICS)
            for ax, q in zip(axes, ("p50_ms", "p90_ms", "p99_ms"), strict=True):
                for c, path in enumerate(PATHS):
                    part = summary[summary["path"] == path]
                    plots.series(ax, part, "concurrency", q,
                                 plots.label_for(path, label, len(runs)), run=k, colour=c)
                ax.set_xscale("log", base=2)
                ax.set_title(q.split("_")[0], fontsize="small")
        files.append(plots.save(fig, axes, folder / "latency.png",
                                xlabel="Requests in flight (concurrency)",
                                ylabel=[f"{q} latency per request [ms]"
                                        for q in ("p50", "p90", "p99")],
                                title="Request latency vs concurrency"))
    return files
