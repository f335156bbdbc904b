"""Study ``latency`` (the seeds' future work, "measure the network latency"): how much of
an added network round trip each dispatch mode hides.

The framework job (one event-loop thread, ``in_flight`` events open, custom backend) runs
through a loopback proxy adding 0 to 50 ms of round trip
(:class:`~sonic_exatrkx.sonic.delay_proxy.DelayProxy`), in each mode: ``sync`` (the
event-loop thread waits on every request), ``pseudo-async`` (helper threads wait),
``async`` (no thread waits; the answers complete futures). The engine is ``bench sonic``'s
(:func:`~sonic_exatrkx.bench.sonic.delayed_job`).

Fraction hidden, per mode, delay and trial: 1 - (wall with the delay - wall without) /
(events x round trip), the latter being what blocking calls one after the other would add;
kept within [0, 1]. The goal (issue 19) is async hiding >= 80 % of a 20 ms round trip.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sonic_exatrkx.bench import plots
from sonic_exatrkx.bench.results import StudyResult, cell, markdown_table, summarize
from sonic_exatrkx.bench.studies.common import (
    BenchError,
    BenchSettings,
    Say,
    check_among,
    quiet,
    served,
)
from sonic_exatrkx.checks import check_count

__all__ = ["MODES", "LatencyConfig", "plot_latency", "run_latency"]

MODES = ("sync", "pseudo-async", "async")
METRICS = ("events_per_s", "wall_s", "hidden")


@dataclass(frozen=True)
class LatencyConfig:
    settings: BenchSettings = field(default_factory=lambda: BenchSettings(events=16))
    delays_ms: tuple[float, ...] = (0.0, 10.0, 20.0, 50.0)
    modes: tuple[str, ...] = MODES
    in_flight: int = 8
    cores: int | None = None  # split between the job and the server; None: all

    def __post_init__(self) -> None:
        if not self.delays_ms or any(not d >= 0 for d in self.delays_ms):
            raise BenchError(f"delays must be >= 0 ms, got {list(self.delays_ms)}")
        check_among(self.modes, MODES, "modes")
        check_count(self.in_flight, "in flight", error=BenchError)
        if self.cores is not None:
            check_count(self.cores, "cores", error=BenchError)


def run_latency(config: LatencyConfig, say: Say = quiet) -> StudyResult:
    import os

    from sonic_exatrkx.bench.sonic import (
        delayed_job,
        framework_job,
        hidden_fraction,
        mismatched_events,
        space_point_tables,
    )

    s = config.settings
    models = s.model_dir()
    cores = config.cores or os.cpu_count() or 1
    tables = space_point_tables(s.pileup, s.events, s.seed)
    _, _, reference = framework_job(tables, models, "local", 1, None, cores=cores)
    delays = sorted(set(config.delays_ms) | {0.0})
    rows: list[dict[str, Any]] = []
    mismatches = 0
    with served(s, ensemble=False, say=say) as server:
        framework_job(tables[:2], models, "custom", 1, server.url, cores=cores)  # warm-up
        for trial in range(s.trials):
            for mode in config.modes:
                walls = {}
                for delay in delays:
                    wall, labels = delayed_job(tables, models, server.url, mode,
                                               config.in_flight, cores=cores, delay_ms=delay)
                    mismatches += bool(mismatched_events(labels, reference))
                    walls[delay] = wall
                for delay in delays:
                    added = len(tables) * delay / 1e3
                    rows.append({"trial": trial, "mode": mode, "delay_ms": delay,
                                 "events": len(tables), "in_flight": config.in_flight,
                                 "wall_s": walls[delay], "events_per_s": len(tables)
                                 / walls[delay], "blocking_added_s": added,
                                 "measured_added_s": walls[delay] - walls[0.0],
                                 "hidden": hidden_fraction(added, walls[delay], walls[0.0])})
            say(f"trial {trial + 1}/{s.trials}: " + ", ".join(
                f"{r['mode']}+{r['delay_ms']:g}ms {r['events_per_s']:.1f}/s"
                for r in rows if r["trial"] == trial))
    result = StudyResult("latency", {"config": {
        "delays_ms": delays, "modes": config.modes, "in_flight": config.in_flight,
        "cores": cores, "event_loop_threads": 1}, "settings": s.described(),
        "server": server.describe()}, pd.DataFrame(rows), {})
    result.headline["label mismatches"] = mismatches
    _summarize(result)
    return result


def _summarize(result: StudyResult) -> None:
    from sonic_exatrkx.bench.sonic import HIDDEN_GOAL, goal_line

    frame = result.rows
    summary = summarize(frame, ["mode", "delay_ms"], METRICS)
    result.tables = ["Events/s and fraction of the added round trip hidden (median over "
                     "trials, range):", "",
                     *markdown_table(summary, {
                         "mode": "mode", "delay_ms": "added round trip ms",
                         "events_per_s": ("events/s", ".2f"),
                         "wall_s": ("wall s", ".2f"),
                         "hidden": ("fraction hidden", lambda r: "-" if r["delay_ms"] == 0
                                    else cell(r, "hidden", ".2f"))})]
    delayed = summary[summary["delay_ms"] > 0]
    for _, r in delayed.iterrows():
        result.headline[f"{r['mode']} hidden at {r['delay_ms']:g} ms"] = float(r["hidden"])
    goal = delayed[delayed["mode"] == "async"]
    if not goal.empty:  # the round trip nearest 20 ms
        r = goal.iloc[int(np.argmin(np.abs(goal["delay_ms"].to_numpy() - 20.0)))]
        result.notes.append(f"added round trip {r['delay_ms']:g} ms, "
                            f"{int(frame['in_flight'].iloc[0])} in flight: "
                            f"{goal_line(float(r['hidden']))}")
        result.headline[f"async hides >= {HIDDEN_GOAL:.0%} (1 = met)"] = float(
            goal_line(float(r["hidden"])).endswith(": met)"))
    bad = result.headline.get("label mismatches", 0)
    result.notes.append("every job's labels equal the local ones" if not bad else
                        f"LABEL MISMATCH in {bad} job(s)")


def plot_latency(runs: plots.Runs, folder: Path) -> list[str]:
    from sonic_exatrkx.bench.sonic import HIDDEN_GOAL

    with plots.figure(ncols=2) as (fig, (ax, bx)):
        for k, (label, result) in enumerate(runs):
            summary = summarize(result.rows, ["mode", "delay_ms"], METRICS)
            for c, mode in enumerate(MODES):
                part = summary[summary["mode"] == mode]
                plots.series(ax, part, "delay_ms", "events_per_s",
                             plots.label_for(mode, label, len(runs)), run=k, colour=c)
                plots.series(bx, part[part["delay_ms"] > 0], "delay_ms", "hidden",
                             plots.label_for(mode, label, len(runs)), run=k, colour=c)
        bx.axhline(HIDDEN_GOAL, color="grey", ls="--", lw=1.5,
                   label=f"goal {HIDDEN_GOAL:.0%} (async, 20 ms)")
        ax.set_ylim(bottom=0)
        bx.set_ylim(-0.05, 1.05)
        return [plots.save(fig, [ax, bx], folder / "latency.png",
                           xlabel="Added round trip [ms]",
                           ylabel=["Throughput [events/s]", "Fraction of the added latency "
                                   "hidden"],
                           title="Added network latency: sync, pseudo-async, async")]
