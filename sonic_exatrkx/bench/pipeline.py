"""Engine of `sonic-exatrkx bench pipeline`: speed and physics of the ExaTrkX pipeline on
held-out simulated events.

Speed: per-stage wall time per event (features included in ``total``), events/s in one
process, peak resident memory (``ru_maxrss``) after each pileup block (blocks run in the
given order, so sort them by size), and ``k``, the neighbours searched per space point
(``graph.max_k``, lowered for dense events by ``graph.neighbour_budget``). Physics: edge
efficiency / purity after graph building, filter and GNN (after its cut; "tracks": the
edges track building joins), and track efficiency (pT > 1 GeV and all pT), fake and
duplicate rates and TrackML score over all events of a block (micro-averaged).
Definitions: ``metrics.py`` and :func:`sonic_exatrkx.exatrkx.metrics.stage_edge_metrics`.
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["DEFAULT_BENCH_SEED", "STAGES", "BlockResult", "PipelineBenchConfig",
           "PipelineBenchResult", "bench_block", "format_results",
           "run_pipeline_bench"]

STAGES = ("features", "embedding", "build_edges", "filter", "gnn", "build_tracks", "total")
#: Seed of the held-out benchmark events (the shipped models are trained with seed 1000+).
DEFAULT_BENCH_SEED = 12345


def _maxrss_mib() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024.0 * 1024.0) if sys.platform == "darwin" else rss / 1024.0


@dataclass
class BlockResult:
    """Figures of one pileup block."""

    pileup: float
    events: int
    mean_space_points: float
    timings: dict[str, float]  # mean seconds per event
    events_per_s: float
    max_event_s: float
    peak_rss_mib: float
    edges: dict[str, dict[str, float]] = field(default_factory=dict)
    tracks: dict[str, float] = field(default_factory=dict)
    mean_edges: dict[str, float] = field(default_factory=dict)
    neighbours: tuple[int, int] = (0, 0)  # fewest / most neighbours per space point searched


def bench_block(
    pipeline: Any, arrays: Sequence[dict[str, np.ndarray]], pileup: float, warmup: bool = True,
    workers: int = 1,
) -> BlockResult:
    """Run ``pipeline`` on every event of ``arrays`` (:func:`event_arrays` dicts) and measure.

    ``workers > 1`` runs that many events at once on threads of this process (torch, numpy
    and the k-d tree release the GIL), as the framework's event loop does; events/s is then
    events over the block's wall time, and the stage times are per event as before.
    """
    from concurrent.futures import ThreadPoolExecutor

    from sonic_exatrkx.exatrkx import apply_cut
    from sonic_exatrkx.exatrkx.metrics import (
        EdgeTruth,
        merge_events,
        sum_edge_metrics,
        track_metrics,
        trackml_score,
    )

    if warmup and arrays:
        a = arrays[0]
        pipeline.run(pipeline.features(a["x"], a["y"], a["z"]), module_ids=a.get("module_id"))
    times: dict[str, list[float]] = {s: [] for s in STAGES}
    stages = ("graph", "filter", "gnn", "tracks")
    edge_parts: dict[str, list[Any]] = {s: [] for s in stages}
    edge_parts_pt: dict[str, list[Any]] = {s: [] for s in stages}
    n_edges: dict[str, list[int]] = {s: [] for s in stages}
    labels, scores = [], []

    def one(a: dict[str, np.ndarray]) -> tuple[np.ndarray, Any, float, float]:
        t0 = time.perf_counter()
        feats = pipeline.features(a["x"], a["y"], a["z"])
        t1 = time.perf_counter()
        res = pipeline.run(feats, return_intermediates=True, module_ids=a.get("module_id"))
        return feats, res, t1 - t0, time.perf_counter() - t0

    parallel_wall: float | None = None
    if workers > 1:  # all events first, so the metrics below do not compete with them
        t_start = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            outputs: Any = list(pool.map(one, arrays))
        parallel_wall = time.perf_counter() - t_start
    else:  # one event at a time: peak memory is that of one event
        outputs = map(one, arrays)
    for a, (feats, res, t_feat, t_total) in zip(arrays, outputs, strict=True):
        times["features"].append(t_feat)
        for s in STAGES[1:-1]:
            times[s].append(res.timings[s])
        times["total"].append(t_total)
        r = feats[:, pipeline.config.features.index("r")]
        gnn_cut = res.filtered_edges[:, apply_cut(res.gnn_scores, pipeline.config.gnn.cut)]
        truth = EdgeTruth.of(a["particle_id"], r)  # once per event, for every stage
        truth_pt = EdgeTruth.of(a["particle_id"], r, pt=a["pt"], pt_min=1.0)
        for stage, e in (("graph", res.edges), ("filter", res.filtered_edges),
                         ("gnn", gnn_cut), ("tracks", res.track_edges)):
            edge_parts[stage].append(truth.stage(e).metrics())
            edge_parts_pt[stage].append(truth_pt.stage(e).metrics())
            n_edges[stage].append(int(e.shape[1]))
        labels.append(res.labels)
        scores.append(trackml_score(res.labels, a["particle_id"]))
    # one at a time, the wall time is the events' own (the metrics ran between them)
    wall = sum(times["total"]) if parallel_wall is None else parallel_wall
    lab, pid, pt = merge_events(arrays, labels)
    all_pt = track_metrics(lab, pid)
    hi_pt = track_metrics(lab, pid, pt=pt, pt_min=1.0)
    edges = {}
    for stage in edge_parts:
        m, mp = sum_edge_metrics(edge_parts[stage]), sum_edge_metrics(edge_parts_pt[stage])
        edges[stage] = {"efficiency": m.efficiency, "purity": m.purity,
                        "efficiency_pt1": mp.efficiency}
    n = max(len(arrays), 1)
    ks = [pipeline.config.graph.max_k_for(a["x"].size) for a in arrays] or [0]
    return BlockResult(
        pileup=pileup,
        events=len(arrays),
        mean_space_points=float(np.mean([a["x"].size for a in arrays])) if arrays else 0.0,
        timings={s: float(np.mean(v)) if v else float("nan") for s, v in times.items()},
        events_per_s=n / wall if wall > 0 else float("nan"),
        max_event_s=max(times["total"]) if times["total"] else float("nan"),
        peak_rss_mib=_maxrss_mib(),
        edges=edges,
        tracks={
            "efficiency_pt1": hi_pt.efficiency,
            "particles_pt1": hi_pt.n_particles,
            "efficiency_all": all_pt.efficiency,
            "particles_all": all_pt.n_particles,
            "fake_rate": all_pt.fake_rate,
            "fake_rate_pt1": hi_pt.fake_rate,  # over tracks whose leading particle has pT > 1
            "duplicate_rate": all_pt.duplicate_rate,
            "duplicate_rate_pt1": hi_pt.duplicate_rate,
            "tracks": all_pt.n_tracks,
            "trackml_score": float(np.nanmean(scores)) if scores else float("nan"),
        },
        mean_edges={k: float(np.mean(v)) if v else 0.0 for k, v in n_edges.items()},
        neighbours=(min(ks), max(ks)),
    )


def format_results(results: Sequence[BlockResult]) -> str:
    """Markdown tables: speed and memory, edge metrics, track metrics."""
    lines = ["| mu | events | space points | k | " + " | ".join(f"{s} ms" for s in STAGES)
             + " | events/s | slowest event s | peak RSS MiB |",
             "|" + "---|" * (len(STAGES) + 7)]
    for b in results:
        lo, hi = b.neighbours
        lines.append(
            f"| {b.pileup:g} | {b.events} | {b.mean_space_points:.0f} | "
            f"{lo if lo == hi else f'{lo}-{hi}'} | "
            + " | ".join(f"{1e3 * b.timings[s]:.1f}" for s in STAGES)
            + f" | {b.events_per_s:.1f} | {b.max_event_s:.2f} | {b.peak_rss_mib:.0f} |"
        )
    lines += ["", "| mu | stage | edges/event | edge efficiency | edge eff. pT>1 | edge purity |",
              "|---|---|---|---|---|---|"]
    for b in results:
        for stage, m in b.edges.items():
            lines.append(
                f"| {b.pileup:g} | {stage} | {b.mean_edges[stage]:.0f} | "
                f"{m['efficiency']:.4f} | {m['efficiency_pt1']:.4f} | {m['purity']:.4f} |"
            )
    lines += ["", "| mu | track eff. pT>1 (particles) | track eff. all pT (particles) | "
              "fake rate pT>1 | fake rate | duplicate rate | dup. rate pT>1 | TrackML score |",
              "|---|---|---|---|---|---|---|---|"]
    for b in results:
        t = b.tracks
        lines.append(
            f"| {b.pileup:g} | {t['efficiency_pt1']:.4f} ({t['particles_pt1']}) | "
            f"{t['efficiency_all']:.4f} ({t['particles_all']}) | {t['fake_rate_pt1']:.4f} | "
            f"{t['fake_rate']:.4f} | "
            f"{t['duplicate_rate']:.4f} | {t['duplicate_rate_pt1']:.4f} | "
            f"{t['trackml_score']:.4f} |"
        )
    return "\n".join(lines)


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class PipelineBenchConfig:
    """What `bench pipeline` measures; ``None`` overrides keep the models' config.json."""

    models: Path | None  # None: the shipped data/models
    events: int  # per pileup value
    pileups: tuple[float, ...]
    seed: int
    threads: int  # torch / FAISS threads of the pipeline
    workers: int  # events in flight on threads of this process
    max_k: int | None = None
    neighbour_budget: int | None = None
    max_degree: int | None = None  # filter.max_degree
    max_edges: int | None = None  # filter.max_edges
    triplets: bool | None = None  # filter.triplets: on (TripletRanking()) or off
    sample: str = "hnl"  # the simulation's physics sample (sonic_exatrkx.sim SAMPLES)


@dataclass(frozen=True)
class PipelineBenchResult:
    """The blocks measured, one per pileup value, in order."""

    blocks: tuple[BlockResult, ...]

    def table(self) -> str:
        return format_results(self.blocks)


def _budget(f: Any) -> str:
    """The GNN input budget of a FilterConfig in words: its size and its ranking."""
    if not f.max_edges:
        return "off"
    return f"{f.max_edges} by {'triplet support' if f.triplets else 'filter score'}"


def run_pipeline_bench(config: PipelineBenchConfig, say: Callable[[str], None] = print,
                       progress: Callable[[str], None] = _stderr) -> PipelineBenchResult:
    """Every pileup block of ``config``; ``say`` gets the settings line first, ``progress``
    one line per block as it is done."""
    from sonic_exatrkx.exatrkx import Pipeline
    from sonic_exatrkx.exatrkx.allocator import keep_freed_memory
    from sonic_exatrkx.jobs.training import simulate_arrays

    models = config.models
    if models is None:
        from sonic_exatrkx.paths import data_dir

        models = data_dir() / "models"
    pipe = Pipeline.from_directory(models)
    cfg = replace(pipe.config, num_threads=config.threads)
    if config.max_k is not None:
        cfg = replace(cfg, graph=replace(cfg.graph, max_k=config.max_k))
    if config.neighbour_budget is not None:
        cfg = replace(cfg, graph=replace(cfg.graph, neighbour_budget=config.neighbour_budget))
    if config.max_degree is not None:
        cfg = replace(cfg, filter=replace(cfg.filter, max_degree=config.max_degree))
    if config.max_edges is not None:
        cfg = replace(cfg, filter=replace(cfg.filter, max_edges=config.max_edges))
    if config.triplets is not None:
        from sonic_exatrkx.exatrkx.triplets import TripletRanking

        cfg = replace(cfg, filter=replace(
            cfg.filter, triplets=(cfg.filter.triplets or TripletRanking()) if config.triplets
            else None))
    pipe = pipe.with_config(cfg)
    # what the pipeline does on its first event anyway; said here because it moves timings
    malloc = "kept in the heap" if keep_freed_memory() else "left to the environment"
    say(f"models {models}, {config.threads} thread(s) x {config.workers} worker(s), "
        f"{config.events} {config.sample} events per pileup, seed {config.seed}, graph max_k "
        f"{cfg.graph.max_k}, neighbour budget {cfg.graph.neighbour_budget or 'off'}, filter "
        f"max_degree {cfg.filter.max_degree}, max_edges {_budget(cfg.filter)}; "
        f"freed memory {malloc}; "
        f"baseline RSS {_maxrss_mib():.0f} MiB")
    results = []
    for k, mu in enumerate(config.pileups):
        arrays = list(simulate_arrays(mu, config.seed + k, config.events,
                                      sample=config.sample))
        res = bench_block(pipe, arrays, mu, workers=config.workers)
        results.append(res)
        progress(f"mu={mu:g}: {res.events_per_s:.1f} events/s, "
                 f"track eff pT>1 {res.tracks['efficiency_pt1']:.4f}")
    return PipelineBenchResult(tuple(results))
