"""Study ``service-options`` (the V100 poster's table): mean time per event for each
service option S0-S4 and the custom backend, and where it goes, stage by stage.

Each event is sent alone (one in flight), through the SONIC clients a job uses
(:func:`~sonic_exatrkx.sonic.exatrkx_client`; S0 as the same stage chain run in this
process, so its stages are timed one by one too). Two sides per stage:

- client side: the time the job waits for the stage (for a served stage: its round trip,
  with conversion, gRPC and the server's time; for a local one: the computation);
- Triton side: the mean queue and compute time per request of that stage's model, from the
  server's statistics API (``get_inference_statistics``) read before and after each trial;
  for S4 the composing models report the stages that Triton chained itself.

The difference between the client side and the Triton side of a served stage is its
transport and conversion cost.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sonic_exatrkx.bench import plots
from sonic_exatrkx.bench.references import A100, V100_NOTES
from sonic_exatrkx.bench.results import StudyResult, markdown_table, summarize
from sonic_exatrkx.bench.studies.common import (
    BenchSettings,
    Say,
    check_among,
    event_features,
    load_pipeline,
    model_stats,
    quiet,
    served,
    server_timing,
)

__all__ = ["OPTIONS", "ServiceOptionsConfig", "plot_service_options", "run_service_options"]

OPTIONS = ("S0", "S1", "S2", "S3", "S4", "custom")
WARMUP_EVENTS = 2
METRICS = ("client_ms", "server_queue_ms", "server_compute_ms")


@dataclass(frozen=True)
class ServiceOptionsConfig:
    settings: BenchSettings = field(default_factory=BenchSettings)
    options: tuple[str, ...] = OPTIONS

    def __post_init__(self) -> None:
        check_among(self.options, OPTIONS, "service options")


def _client(pipe: Any, option: str, url: str, protocol: str) -> Any:
    from sonic_exatrkx.exatrkx.stages import STAGES
    from sonic_exatrkx.sonic import StagedClient, TritonOptions, exatrkx_client, local_client
    from sonic_exatrkx.sonic.exatrkx_service import stage_specs

    if option == "S0":  # everything local, but stage by stage so each stage is timed
        inputs, outputs = stage_specs("pipeline", pipe.config)
        return StagedClient([local_client(pipe, stage=s) for s in STAGES], name="staged:S0",
                            inputs=inputs, outputs=outputs)
    return exatrkx_client(pipe, option, [url], TritonOptions(protocol=protocol))


def _served_models(option: str) -> dict[str, str]:
    """Stage (or "total") -> the Triton model whose statistics give its server side."""
    from sonic_exatrkx.exatrkx.stages import ENSEMBLE_MODEL, PIPELINE_MODEL, STAGE_MODELS
    from sonic_exatrkx.sonic import ServiceOption

    parsed = ServiceOption.parse(option)
    if parsed.whole == "pipeline":
        return {"total": PIPELINE_MODEL}
    if parsed.whole == "ensemble":
        return {"total": ENSEMBLE_MODEL, **STAGE_MODELS}
    return {s: STAGE_MODELS[s] for s in parsed.stages}


def _placement(option: str, stage: str) -> str:
    from sonic_exatrkx.sonic import ServiceOption

    parsed = ServiceOption.parse(option)
    if stage != "total":
        return "served" if parsed.whole or stage in parsed.stages else "local"
    if not parsed.remote:
        return "local"
    return {"pipeline": "custom backend", "ensemble": "ensemble"}.get(parsed.whole or "",
                                                                      "local + served")


def _measure(client: Any, option: str, feats: list[np.ndarray], expected: list[np.ndarray],
             url: str, protocol: str, trial: int) -> list[dict[str, Any]]:
    from sonic_exatrkx.exatrkx.stages import STAGES

    models = _served_models(option)
    stage_clients = dict(zip(STAGES, client.stages, strict=True)) \
        if hasattr(client, "stages") else {}
    seen = {s: len(c.stats.latency_snapshot()) for s, c in stage_clients.items()}
    before = model_stats(url, protocol, list(models.values())) if models else {}
    walls, equal = [], True
    for f, labels in zip(feats, expected, strict=True):
        t0 = time.perf_counter()
        out = client.infer({"FEATURES": f})
        walls.append(time.perf_counter() - t0)
        equal &= bool(np.array_equal(out["LABELS"], labels))
    after = model_stats(url, protocol, list(models.values())) if models else {}
    rows = []
    for stage in ("total", *STAGES):
        row: dict[str, Any] = {"trial": trial, "option": option, "stage": stage,
                               "events": len(feats)}
        if stage == "total":
            row["client_ms"] = 1e3 * float(np.mean(walls))
            row["events_per_s"] = len(walls) / sum(walls)
            row["labels_equal"] = equal
        elif stage in stage_clients:
            lat = stage_clients[stage].stats.latency_snapshot()[seen[stage]:]
            row["client_ms"] = 1e3 * float(np.mean(lat)) if lat else float("nan")
        else:
            row["client_ms"] = float("nan")
        timing = server_timing(before, after, models[stage]) if stage in models else None
        if timing is not None:
            row.update(server_queue_ms=timing["queue_ms"],
                       server_compute_ms=timing["compute_ms"],
                       server_requests=timing["requests"])
        else:
            row.update(server_queue_ms=float("nan"), server_compute_ms=float("nan"),
                       server_requests=0)
        row["placement"] = _placement(option, stage)
        if stage != "total" and np.isnan(row["client_ms"]) and np.isnan(
                row["server_compute_ms"]):
            continue  # the custom backend: no stage is seen from outside
        rows.append(row)
    return rows


def run_service_options(config: ServiceOptionsConfig, say: Say = quiet) -> StudyResult:
    s = config.settings
    pipe = load_pipeline(s, threads=1)
    feats = event_features(pipe, s)
    warm = event_features(pipe, s, events=WARMUP_EVENTS, skip=s.events)
    expected = [pipe.run(f).labels for f in feats]
    rows: list[dict[str, Any]] = []
    with served(s, ensemble=any(o != "custom" for o in config.options), say=say) as server:
        clients = {o: _client(pipe, o, server.url, s.protocol) for o in config.options}
        try:
            for c in clients.values():
                c.check()
                for f in warm:  # warm-up, excluded: the statistics are read after it
                    c.infer({"FEATURES": f})
            for trial in range(s.trials):
                for option, c in clients.items():  # interleaved: drifts hit every option
                    rows += _measure(c, option, feats, expected, server.url, s.protocol,
                                     trial)
                say(f"trial {trial + 1}/{s.trials}: " + ", ".join(
                    f"{r['option']} {r['client_ms']:.1f} ms" for r in rows
                    if r["trial"] == trial and r["stage"] == "total"))
        finally:
            for c in clients.values():
                c.close()
    result = StudyResult("service-options", {"config": {"options": config.options},
                                             "settings": s.described(),
                                             "server": server.describe()},
                         pd.DataFrame(rows), {})
    _summarize(result)
    return result


def _summarize(result: StudyResult) -> None:
    frame = result.rows
    summary = summarize(frame, ["option", "stage", "placement"], METRICS)
    total = summary[summary["stage"] == "total"]
    result.tables = [
        "Mean time per event (one in flight), client side and Triton side (median over "
        "trials, range); ms:", "",
        *markdown_table(summary, {
            "option": "option", "stage": "stage", "placement": "runs",
            "client_ms": ("client side", ".2f"),
            "server_queue_ms": ("Triton queue", ".2f"),
            "server_compute_ms": ("Triton compute", ".2f")})]
    for _, r in total.iterrows():
        result.headline[f"{r['option']} ms/event"] = float(r["client_ms"])
    base = total.set_index("option")["client_ms"]
    if "S0" in base:
        for option, ms in base.items():
            if option != "S0":
                result.notes.append(f"{option}: {ms:.2f} ms per event, {ms - base['S0']:+.2f} "
                                    "ms against S0 (everything local)")
    bad = int(frame["labels_equal"].eq(False).sum())
    result.headline["label mismatches"] = bad
    result.notes.append("every option gives the labels of the local pipeline" if bad == 0
                        else f"LABEL MISMATCH in {bad} trial(s)")
    result.notes += list(V100_NOTES[:1])


def plot_service_options(runs: plots.Runs, folder: Path) -> list[str]:
    from sonic_exatrkx.exatrkx.stages import STAGES

    files = []
    width = 0.8 / max(len(runs), 1)
    with plots.figure(ncols=2, width=7.0) as (fig, (ax, bx)):
        for k, (label, result) in enumerate(runs):
            summary = summarize(result.rows, ["option", "stage"], METRICS)
            total = summary[summary["stage"] == "total"].set_index("option").reindex(
                [o for o in OPTIONS if o in set(summary["option"])])
            x = np.arange(len(total)) + k * width
            ax.bar(x, total["client_ms"], width * 0.9, label=plots.label_for(
                "client side (whole event)", label, len(runs)), color=plots.colour(k), alpha=0.85)
            served = total["server_queue_ms"].fillna(0) + total["server_compute_ms"]
            ax.plot(x, served, ls="none", marker="_", ms=18, mew=3, color="k",
                    label=plots.label_for("Triton side, whole model", label, len(runs))
                    if k == 0 else None)
            ax.set_xticks(np.arange(len(total)) + width * (len(runs) - 1) / 2, total.index)
            for c, option in enumerate(o for o in OPTIONS if o in set(summary["option"])):
                part = summary[(summary["option"] == option) & (summary["stage"] != "total")]
                if part.empty:  # the custom backend: no stage seen from outside
                    continue
                part = part.set_index("stage").reindex(STAGES)
                y = part["client_ms"].where(part["client_ms"].notna(),
                                            part["server_compute_ms"])
                bx.plot(np.arange(len(STAGES)), y, marker="os^Dv*"[c % 6], color=plots.colour(c),
                        ls=("-", "--", ":")[k % 3],
                        label=plots.label_for(option, label, len(runs)))
        ref = A100["stages_ms"]
        bx.plot(ref.x, ref.y, ls="none", marker="o", mfc="none", mec="k", ms=11, mew=2,
                label=ref.label)
        bx.set_xticks(range(len(STAGES)), STAGES)
        bx.set_yscale("log")
        files.append(plots.save(fig, [ax, bx], folder / "service_options.png",
                                xlabel=["Service option", "Stage"],
                                ylabel=["Mean time per event [ms]",
                                        "Time per stage per event [ms]"],
                                title="Service options: time per event and per stage "
                                      "(client side; S4: Triton side)"))
    return files
