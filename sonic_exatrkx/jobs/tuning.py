"""Cut scans on validation events: which filter and GNN cuts a models folder should use.

The filter cut sets how many edges the GNN sees (its time and memory at high pileup), the
GNN cut how many of its edges track building joins (efficiency against fake tracks). Both
are inference settings, chosen after training on events of their own: the validation
seeds (``VALIDATION_SEED`` by default), never the held-out events the benchmark reports
(``DEFAULT_BENCH_SEED``), which the scan refuses.

Per event the graph and the filter scores are computed once; per filter cut the GNN runs
once on the edges that pass; per GNN cut only track building runs again. The figures of a
(filter cut, GNN cut) pair are over all scanned events (micro-averaged, as `bench pipeline`):
pT > 1 GeV track efficiency, fake and duplicate rates, the GNN-kept edges' efficiency and
purity, the mean GNN input edges and GNN seconds per event.

With several ``track_builders`` every (filter cut, GNN cut) pair is built with each, and
the choice is among all of them (the folder's own builder by default).

Choice: the pair with the highest ``efficiency - fake rate`` (pT > 1 GeV) among those
whose mean GNN input is within ``max_gnn_edges`` (the time budget); ties go to the
smaller GNN input. A scan whose every filter cut is over the budget chooses nothing.
"""

from __future__ import annotations

import csv
import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["VALIDATION_SEED", "CutScanConfig", "CutScanResult", "ScanRow", "run_cut_scan"]

#: First validation seed: tuning events, apart from training (1000+) and the held-out
#: benchmark events (12345).
VALIDATION_SEED = 777
#: The held-out events `bench pipeline` reports: never tuned on.
HELD_OUT_SEED = 12345


@dataclass(frozen=True)
class CutScanConfig:
    """What to scan: a models folder, validation events, the cut grids, the budget."""

    models: Path
    pileup: float = 200.0
    sample: str = "ttbar-like"
    events: int = 3
    seed: int = VALIDATION_SEED
    filter_cuts: tuple[float, ...] = (0.1, 0.2, 0.3, 0.5, 0.7, 0.9)
    gnn_cuts: tuple[float, ...] = (0.5, 0.7, 0.8, 0.9, 0.95)
    track_builders: tuple[str, ...] = ()  # () : the folder's own
    max_gnn_edges: int | None = 250_000  # mean GNN input edges per event; None: no budget
    threads: int = 2

    def __post_init__(self) -> None:
        from sonic_exatrkx.sim.config import SAMPLES

        if self.seed == HELD_OUT_SEED:
            raise ValueError(f"cut scan: seed {HELD_OUT_SEED} holds the held-out benchmark "
                             "events; tune on validation seeds (default "
                             f"{VALIDATION_SEED})")
        if self.sample not in SAMPLES:
            raise ValueError(f"cut scan: unknown sample {self.sample!r}; choose one of "
                             f"{', '.join(SAMPLES)}")
        if self.events < 1 or self.threads < 1:
            raise ValueError("cut scan: events and threads must be >= 1")
        for name in ("filter_cuts", "gnn_cuts"):
            cuts = getattr(self, name)
            if not cuts or any(not 0.0 <= c < 1.0 for c in cuts):
                raise ValueError(f"cut scan: {name} must be cuts in [0, 1), got {list(cuts)}")
        from sonic_exatrkx.exatrkx.tracks import TRACK_BUILDERS

        unknown = [b for b in self.track_builders if b not in TRACK_BUILDERS]
        if unknown:
            raise ValueError(f"cut scan: unknown track builders {unknown}; known: "
                             f"{list(TRACK_BUILDERS)}")
        if self.max_gnn_edges is not None and self.max_gnn_edges < 1:
            raise ValueError("cut scan: max_gnn_edges must be >= 1 (or None: no budget)")


@dataclass(frozen=True)
class ScanRow:
    """The figures of one (filter cut, GNN cut) pair over the scanned events."""

    filter_cut: float
    gnn_cut: float
    track_builder: str
    gnn_input_edges: float  # mean per event
    filter_efficiency: float  # of the GNN input: pT > 1 GeV consecutive truth kept
    gnn_s: float  # mean GNN seconds per event
    edge_efficiency: float  # GNN-kept edges, pT > 1 GeV consecutive truth
    edge_purity: float
    efficiency: float  # tracks, pT > 1 GeV
    fake_rate: float
    duplicate_rate: float

    @property
    def objective(self) -> float:
        return self.efficiency - self.fake_rate


@dataclass
class CutScanResult:
    config: CutScanConfig
    rows: list[ScanRow] = field(default_factory=list)
    current: tuple[float, float, str] = (0.0, 0.0, "")  # the folder's cuts and builder
    seconds: float = 0.0

    def within_budget(self, row: ScanRow) -> bool:
        budget = self.config.max_gnn_edges
        return budget is None or row.gnn_input_edges <= budget

    @property
    def best(self) -> ScanRow | None:
        """The chosen pair (module docstring), or None when every one is over budget."""
        rows = [r for r in self.rows if self.within_budget(r) and np.isfinite(r.objective)]
        if not rows:
            return None
        return max(rows, key=lambda r: (r.objective, -r.gnn_input_edges))

    def lines(self) -> list[str]:
        c = self.config
        budget = "none" if c.max_gnn_edges is None else f"{c.max_gnn_edges:,}"
        out = [f"cut scan of {c.models}: {c.events} {c.sample} events at mu={c.pileup:g}, "
               f"seed {c.seed} (validation), GNN input budget {budget} edges/event, "
               f"{self.seconds:.0f} s",
               "| filter cut | GNN cut | track builder | GNN input edges | its edge eff. pT>1 "
               "| GNN s/event | kept edge eff. pT>1 | kept purity | track eff. pT>1 "
               "| fake pT>1 | dup. pT>1 |",
               "|---|---|---|---|---|---|---|---|---|---|---|"]
        best = self.best
        for r in self.rows:
            mark = " **chosen**" if r is best else ("" if self.within_budget(r)
                                                      else " (over budget)")
            out.append(f"| {r.filter_cut:g} | {r.gnn_cut:g} | {r.track_builder}{mark} | "
                       f"{r.gnn_input_edges:,.0f} | "
                       f"{r.filter_efficiency:.3f} | {r.gnn_s:.2f} | {r.edge_efficiency:.3f} | "
                       f"{r.edge_purity:.3f} | "
                       f"{r.efficiency:.3f} | {r.fake_rate:.3f} | {r.duplicate_rate:.3f} |")
        if best is None:
            out.append("no pair within the GNN input budget: raise --max-gnn-edges or scan "
                       "higher filter cuts")
        else:
            out.append(f"chosen: filter cut {best.filter_cut:g}, GNN cut {best.gnn_cut:g}, "
                       f"{best.track_builder} (the folder has {self.current[0]:g}, "
                       f"{self.current[1]:g}, {self.current[2]})")
        return out

    def write(self, folder: Path) -> list[Path]:
        """``cut_scan.csv`` (one row per pair) and ``cut_scan.json`` (settings, choice)."""
        folder.mkdir(parents=True, exist_ok=True)
        table = folder / "cut_scan.csv"
        names = [f.name for f in ScanRow.__dataclass_fields__.values()]
        with table.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(names)
            for r in self.rows:
                w.writerow([getattr(r, n) for n in names])
        report = folder / "cut_scan.json"
        best = self.best
        settings = {k: (str(v) if isinstance(v, Path) else v)
                    for k, v in asdict(self.config).items()}
        report.write_text(json.dumps({
            "settings": settings, "seconds": self.seconds,
            "current": {"filter_cut": self.current[0], "gnn_cut": self.current[1],
                        "track_builder": self.current[2]},
            "chosen": None if best is None else asdict(best),
            "rows": [asdict(r) for r in self.rows]}, indent=2) + "\n")
        return [table, report]


def run_cut_scan(config: CutScanConfig, output: Path | None = None,
                 say: Callable[[str], None] = print) -> CutScanResult:
    """Scan the cuts on the validation events; with ``output``, write a copy of the models
    folder there whose ``config.json`` has the chosen cuts, beside the scan's table."""
    from sonic_exatrkx.exatrkx import Pipeline
    from sonic_exatrkx.jobs.training import simulate_arrays

    t0 = time.perf_counter()
    pipe = Pipeline.from_directory(config.models, num_threads=config.threads)
    result = CutScanResult(config, current=(pipe.config.filter.cut, pipe.config.gnn.cut,
                                            pipe.config.track_builder))
    events = list(simulate_arrays(config.pileup, config.seed, config.events,
                                  sample=config.sample))
    per_pair: dict[tuple[float, float, str], list[np.ndarray]] = {}
    stage_edges: dict[tuple[float, float], Any] = {}
    gnn_edges: dict[float, list[int]] = {c: [] for c in config.filter_cuts}
    filtered: dict[float, Any] = {}  # filter cut -> StageEdges of the GNN input
    gnn_time: dict[float, list[float]] = {c: [] for c in config.filter_cuts}
    for i, a in enumerate(events):
        _scan_event(pipe, a, config, per_pair, stage_edges, filtered, gnn_edges, gnn_time)
        say(f"event {i + 1}/{len(events)}: {a['x'].size} space points scanned")
    result.rows = _rows(events, per_pair, stage_edges, filtered, gnn_edges, gnn_time)
    result.seconds = time.perf_counter() - t0
    if output is not None:
        _write_models(config.models, output, result)
    return result


def _scan_event(pipe: Any, a: dict[str, np.ndarray], config: CutScanConfig,
                per_pair: dict[tuple[float, float, str], list[np.ndarray]],
                stage_edges: dict[tuple[float, float], Any], filtered: dict[float, Any],
                gnn_edges: dict[float, list[int]], gnn_time: dict[float, list[float]]) -> None:
    """One event: graph and filter scores once, the GNN once per filter cut, track
    building once per pair."""
    from sonic_exatrkx.exatrkx.graph import apply_cut, cut_and_cap
    from sonic_exatrkx.exatrkx.metrics import EdgeTruth
    from sonic_exatrkx.exatrkx.tracks import build_tracks, track_edge_mask

    cfg = pipe.config
    builders = config.track_builders or (cfg.track_builder,)
    feats = pipe.prepare(pipe.features(a["x"], a["y"], a["z"]))
    emb = None if cfg.module_map else pipe.embed(feats)
    edges = pipe.graph(emb, feats, a["module_id"])
    f_scores = pipe.score_filter(feats, edges)
    r = feats[:, cfg.features.index("r")]
    truth = EdgeTruth.of(a["particle_id"], r, pt=a["pt"], pt_min=1.0)
    for fc in config.filter_cuts:
        f_edges = edges[:, cut_and_cap(edges, f_scores, fc, cfg.filter.max_degree)]
        start = time.perf_counter()
        g_scores = pipe.score_gnn(feats, f_edges)
        gnn_time[fc].append(time.perf_counter() - start)
        gnn_edges[fc].append(int(f_edges.shape[1]))
        counts = truth.stage(f_edges)
        filtered[fc] = counts if fc not in filtered else filtered[fc] + counts
        for gc in config.gnn_cuts:
            keep = apply_cut(g_scores, gc)
            for builder in builders:
                mask = track_edge_mask(f_edges, g_scores, keep, builder)
                labels = build_tracks(feats.shape[0], f_edges, mask, min_hits=cfg.min_hits)
                per_pair.setdefault((fc, gc, builder), []).append(labels)
            counts = truth.stage(f_edges[:, keep])
            stage_edges[(fc, gc)] = counts if (fc, gc) not in stage_edges \
                else stage_edges[(fc, gc)] + counts


def _rows(events: Sequence[dict[str, np.ndarray]],
          per_pair: dict[tuple[float, float, str], list[np.ndarray]],
          stage_edges: dict[tuple[float, float], Any], filtered: dict[float, Any],
          gnn_edges: dict[float, list[int]],
          gnn_time: dict[float, list[float]]) -> list[ScanRow]:
    from sonic_exatrkx.exatrkx.metrics import merge_events, track_metrics

    rows = []
    for (fc, gc, builder), labels in per_pair.items():
        lab, pid, pt = merge_events(events, labels)
        m = track_metrics(lab, pid, pt=pt, pt_min=1.0)
        edges = stage_edges[(fc, gc)]
        rows.append(ScanRow(fc, gc, builder, float(np.mean(gnn_edges[fc])),
                            filtered[fc].efficiency,
                            float(np.mean(gnn_time[fc])),
                            edges.efficiency, edges.purity, m.efficiency, m.fake_rate,
                            m.duplicate_rate))
    return rows


def _write_models(models: Path, output: Path, result: CutScanResult) -> None:
    """A copy of ``models`` with the chosen cuts in its config.json, and the scan."""
    from sonic_exatrkx.exatrkx.pipeline import read_config, write_config

    best = result.best
    if best is None:
        raise ValueError("cut scan: no pair within the GNN input budget, no models written")
    if output.resolve() == Path(models).resolve():
        raise ValueError(f"cut scan: write the tuned models to a new folder, not {models}")
    output.mkdir(parents=True, exist_ok=True)
    for path in Path(models).iterdir():
        if path.is_file() and path.name != "config.json":
            shutil.copy2(path, output / path.name)
    tuned = read_config(Path(models)).with_cuts(filter_cut=best.filter_cut,
                                                gnn_cut=best.gnn_cut)
    write_config(output, replace(tuned, track_builder=best.track_builder))
    result.write(output)
