"""Study ``batching``: events per request, two ways.

- client-side: ``B`` events concatenated into one request of the custom backend with
  their ``ROW_SPLITS`` offsets (:mod:`sonic_exatrkx.server.batching`), at each
  concurrency; the engine is ``bench serve``'s
  (:func:`~sonic_exatrkx.bench.serve.bench_served`);
- server-side (``server_batching``): one event per request to ``exatrkx_dynamic``, the
  server gathering concurrent requests into one pass (Triton dynamic batching of the
  custom backend, :func:`~sonic_exatrkx.bench.studies.common.server_batching`); a server
  given by URL must serve that model.

Events/s counts events, not requests; latency is per request (a request of ``B`` events
carries ``B``), and per event (divided by ``B``). Labels are compared with the direct ones.
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
    SERVER_BATCHING_OPTION,
    BenchError,
    BenchSettings,
    Say,
    event_features,
    load_pipeline,
    quiet,
    served,
    server_batching,
)
from sonic_exatrkx.checks import check_count
from sonic_exatrkx.exatrkx.stages import DYNAMIC_MODEL

__all__ = ["BatchingConfig", "plot_batching", "run_batching"]
METRICS = ("events_per_s", "p50_ms", "p50_ms_per_event")
CLIENT = "client-side (ROW_SPLITS)"
SERVER = "server-side (dynamic batching)"


@dataclass(frozen=True)
class BatchingConfig:
    settings: BenchSettings = field(default_factory=lambda: BenchSettings(events=16))
    events_per_request: tuple[int, ...] = (1, 2, 4, 8)
    concurrency: tuple[int, ...] = (1, 2)
    server_batching: bool = True

    def __post_init__(self) -> None:
        if not self.events_per_request or not self.concurrency:
            raise BenchError("events per request and concurrency: give at least one value")
        for n in (*self.events_per_request, *self.concurrency):
            check_count(n, "events per request and concurrency", error=BenchError)


def _rows(got: list[Any], trial: int, how: str) -> list[dict[str, Any]]:
    from sonic_exatrkx.bench.studies.throughput import rows_frame

    out = []
    for row in rows_frame(got, trial):
        row.update(batching=how, p50_ms_per_event=row["p50_ms"] / row["events_per_request"])
        out.append(row)
    return out


def run_batching(config: BatchingConfig, say: Say = quiet) -> StudyResult:
    from sonic_exatrkx.bench.serve import bench_direct, bench_served

    s = config.settings
    pipe = load_pipeline(s, threads=1)
    blocks = {s.pileup: event_features(pipe, s)}
    _, expected = bench_direct(pipe, blocks, [1])
    rows: list[dict[str, Any]] = []
    servers = []
    with served(s, ensemble=False, say=say) as server:
        servers.append(server.describe())
        for trial in range(s.trials):
            got = bench_served(server.url, s.protocol, blocks, config.concurrency,
                               config.events_per_request, server.instances or 1, expected,
                               models=("exatrkx",))
            rows += _rows(got, trial, CLIENT)
            say(f"trial {trial + 1}/{s.trials}: " + ", ".join(
                f"{r['events_per_request']} ev/req @{r['concurrency']} "
                f"{r['events_per_s']:.1f}/s" for r in rows if r["trial"] == trial))
    if config.server_batching:
        options = {} if s.server else {SERVER_BATCHING_OPTION: server_batching()}
        with served(s, ensemble=False, repository_options=options, say=say) as server:
            servers.append(server.describe())
            for trial in range(s.trials):
                got = bench_served(server.url, s.protocol, blocks, config.concurrency, [1],
                                   server.instances or 1, expected, models=(DYNAMIC_MODEL,))
                rows += _rows(got, trial, SERVER)
    result = StudyResult("batching", {"config": {
        "events_per_request": config.events_per_request, "concurrency": config.concurrency,
        "server_batching": config.server_batching}, "settings": s.described(),
        "servers": servers}, pd.DataFrame(rows), {})
    _summarize(result)
    return result


def _summarize(result: StudyResult) -> None:
    frame = result.rows
    summary = summarize(frame, ["batching", "concurrency", "events_per_request"], METRICS)
    result.tables = ["Events/s and latency vs events per request (median over trials, "
                     "range):", "",
                     *markdown_table(summary, {
                         "batching": "batching", "concurrency": "in flight",
                         "events_per_request": "events/request",
                         "events_per_s": ("events/s", ".2f"),
                         "p50_ms": ("p50 ms", ".1f"),
                         "p50_ms_per_event": ("p50 ms/event", ".1f")})]
    client = frame[frame["batching"] == CLIENT]
    sizes = sorted(client["events_per_request"].unique())
    for c in sorted(client["concurrency"].unique()):
        part = client[client["concurrency"] == c]
        for b in sizes[1:]:
            ratio = ratio_by_trial(part, "events_per_s", {"events_per_request": b},
                                   {"events_per_request": sizes[0]})[None]
            result.headline[f"{b} / {sizes[0]} events per request, {c} in flight"] = \
                ratio.median
            result.notes.append(f"{c} in flight: {b} events per request / {sizes[0]}: "
                                f"{ratio.text()}x events/s")
    bad = int(frame["labels_equal"].eq(False).sum())
    result.headline["label mismatches"] = bad
    result.notes.append("every batched label equals the one-event label" if bad == 0 else
                        f"LABEL MISMATCH in {bad} pass(es)")


def plot_batching(runs: plots.Runs, folder: Path) -> list[str]:
    with plots.figure(ncols=2) as (fig, (ax, bx)):
        for k, (label, result) in enumerate(runs):
            summary = summarize(result.rows, ["batching", "concurrency",
                                              "events_per_request"], METRICS)
            c = 0
            for how in (CLIENT, SERVER):
                for conc in sorted(summary["concurrency"].unique()):
                    part = summary[(summary["batching"] == how)
                                   & (summary["concurrency"] == conc)]
                    if part.empty:
                        continue
                    name = plots.label_for(f"{how}, {conc} in flight", label, len(runs))
                    if how == SERVER:  # one event per request: a level, not a curve
                        ax.axhline(float(part["events_per_s"].iloc[0]), color=plots.colour(c),
                                   ls=":", label=name)
                    else:
                        plots.series(ax, part, "events_per_request", "events_per_s", name,
                                     run=k, colour=c)
                        plots.series(bx, part, "events_per_request", "p50_ms_per_event",
                                     name, run=k, colour=c)
                    c += 1
        ax.set_ylim(bottom=0)
        bx.set_ylim(bottom=0)
        return [plots.save(fig, [ax, bx], folder / "batching.png",
                           xlabel="Events per request",
                           ylabel=["Throughput [events/s]",
                                   "p50 latency per event [ms]"],
                           title="Several events per request (ROW_SPLITS)")]
