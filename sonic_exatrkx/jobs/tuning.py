"""Cut scans on validation events: which filter and GNN cuts (and track builder) a models
folder should use.

The filter cut sets how many edges the GNN sees, the GNN cut how many of its edges track
building joins (efficiency against fake tracks). Both are inference settings, chosen after
training on events of their own: the validation seeds (``VALIDATION_SEED`` by default),
never the held-out events the benchmark reports (``HELD_OUT_SEED``), which the scan
refuses. One set of cuts serves every occupancy, so the scan judges each setting on every
pileup given (pileup ``k`` of the list uses seed ``seed + k``, as `bench pipeline`), with
the filter's ``max_edges`` (the GNN input budget of dense events) applied after each cut.

Per event the graph and the filter scores are computed once; per filter cut the GNN runs
once on the edges that pass; per GNN cut and track builder only track building runs again.
The figures of a setting at one pileup are over its events (micro-averaged, as `bench
pipeline`): pT > 1 GeV track efficiency, fake and duplicate rates, the filter's and the
GNN-kept edges' efficiency, their purity, the mean GNN input edges and GNN seconds per
event.

Choice: the setting with the highest mean over the pileups of ``efficiency - fake rate``
(pT > 1 GeV) among those whose mean GNN input is within ``max_gnn_edges`` at every pileup
(the time budget); ties go to the smaller GNN input. None when every one is over budget.
"""

from __future__ import annotations

import csv
import json
import shutil
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["HELD_OUT_SEED", "VALIDATION_SEED", "Choice", "CutScanConfig", "CutScanResult",
           "ScanRow", "run_cut_scan"]

#: First validation seed: tuning events, apart from training (1000+) and the held-out
#: benchmark events.
VALIDATION_SEED = 777
#: The held-out events `bench pipeline` reports (its default seed): never tuned on.
HELD_OUT_SEED = 12345

Setting = tuple[float, float, str]  # filter cut, GNN cut, track builder


@dataclass(frozen=True)
class CutScanConfig:
    """What to scan: a models folder, validation events, the grids, the budget."""

    models: Path
    pileups: tuple[float, ...] = (200.0,)
    sample: str = "ttbar-like"
    events: int = 3  # per pileup
    seed: int = VALIDATION_SEED
    filter_cuts: tuple[float, ...] = (0.1, 0.2, 0.3, 0.5, 0.7, 0.9)
    gnn_cuts: tuple[float, ...] = (0.5, 0.7, 0.8, 0.9, 0.95)
    track_builders: tuple[str, ...] = ()  # (): the folder's own
    filter_max_edges: int | None = None  # the filter's max_edges; None: the folder's
    max_gnn_edges: int | None = 250_000  # mean GNN input edges per event; None: no budget
    threads: int = 2
    # scan (and write) the folder's module map on a grid of this many bits per bound
    # (ModuleMap.on_grid: a fourth of the file, slightly wider windows); 0: as it is
    module_map_range_bits: int = 0

    def __post_init__(self) -> None:
        from sonic_exatrkx.exatrkx.tracks import TRACK_BUILDERS
        from sonic_exatrkx.sim.config import SAMPLES

        if self.seed <= HELD_OUT_SEED < self.seed + len(self.pileups):
            raise ValueError(f"cut scan: seed {HELD_OUT_SEED} holds the held-out benchmark "
                             "events; tune on validation seeds (default "
                             f"{VALIDATION_SEED})")
        if self.sample not in SAMPLES:
            raise ValueError(f"cut scan: unknown sample {self.sample!r}; choose one of "
                             f"{', '.join(SAMPLES)}")
        if not self.pileups or any(mu < 0 for mu in self.pileups):
            raise ValueError(f"cut scan: pileups must be >= 0, got {list(self.pileups)}")
        if self.events < 1 or self.threads < 1:
            raise ValueError("cut scan: events and threads must be >= 1")
        for name in ("filter_cuts", "gnn_cuts"):
            cuts = getattr(self, name)
            if not cuts or any(not 0.0 <= c < 1.0 for c in cuts):
                raise ValueError(f"cut scan: {name} must be cuts in [0, 1), got {list(cuts)}")
        unknown = [b for b in self.track_builders if b not in TRACK_BUILDERS]
        if unknown:
            raise ValueError(f"cut scan: unknown track builders {unknown}; known: "
                             f"{list(TRACK_BUILDERS)}")
        if self.filter_max_edges is not None and self.filter_max_edges < 0:
            raise ValueError("cut scan: filter_max_edges must be >= 0 (0: all)")
        if self.max_gnn_edges is not None and self.max_gnn_edges < 1:
            raise ValueError("cut scan: max_gnn_edges must be >= 1 (or None: no budget)")
        if not 0 <= self.module_map_range_bits <= 8:
            raise ValueError("cut scan: module_map_range_bits must be 0 (the map as it is) "
                             f"to 8, got {self.module_map_range_bits}")


@dataclass(frozen=True)
class ScanRow:
    """The figures of one setting at one pileup, over that pileup's events."""

    pileup: float
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
    def setting(self) -> Setting:
        return (self.filter_cut, self.gnn_cut, self.track_builder)

    @property
    def objective(self) -> float:
        return self.efficiency - self.fake_rate


@dataclass(frozen=True)
class Choice:
    """A setting and its mean objective over the pileups."""

    filter_cut: float
    gnn_cut: float
    track_builder: str
    objective: float


@dataclass
class CutScanResult:
    config: CutScanConfig
    rows: list[ScanRow] = field(default_factory=list)
    current: dict[str, Any] = field(default_factory=dict)  # the folder's own settings
    seconds: float = 0.0

    def within_budget(self, row: ScanRow) -> bool:
        budget = self.config.max_gnn_edges
        return budget is None or row.gnn_input_edges <= budget

    @property
    def best(self) -> Choice | None:
        """The chosen setting (module docstring), or None when every one is over budget."""
        by: dict[Setting, list[ScanRow]] = defaultdict(list)
        for r in self.rows:
            by[r.setting].append(r)
        ok = [(np.mean([r.objective for r in rows]), -max(r.gnn_input_edges for r in rows), s)
              for s, rows in by.items()
              if all(self.within_budget(r) and np.isfinite(r.objective) for r in rows)]
        if not ok:
            return None
        objective, _, (fc, gc, builder) = max(ok, key=lambda t: (t[0], t[1]))
        return Choice(fc, gc, builder, float(objective))

    def lines(self) -> list[str]:
        c = self.config
        budget = "none" if c.max_gnn_edges is None else f"{c.max_gnn_edges:,}"
        mus = ", ".join(f"{mu:g}" for mu in c.pileups)
        out = [f"cut scan of {c.models}: {c.events} {c.sample} events at mu={mus}, seeds "
               f"from {c.seed} (validation), filter max_edges "
               f"{self.current.get('filter_max_edges') or 'off'}, GNN input budget "
               f"{budget} edges/event, {self.seconds:.0f} s",
               "| mu | filter cut | GNN cut | track builder | GNN input edges | its edge eff. "
               "pT>1 | GNN s/event | kept edge eff. pT>1 | kept purity | track eff. pT>1 "
               "| fake pT>1 | dup. pT>1 |",
               "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        best = self.best
        chosen = None if best is None else (best.filter_cut, best.gnn_cut, best.track_builder)
        for r in sorted(self.rows, key=lambda r: (r.setting, r.pileup)):
            mark = " **chosen**" if r.setting == chosen else (
                "" if self.within_budget(r) else " (over budget)")
            out.append(f"| {r.pileup:g} | {r.filter_cut:g} | {r.gnn_cut:g} | "
                       f"{r.track_builder}{mark} | {r.gnn_input_edges:,.0f} | "
                       f"{r.filter_efficiency:.3f} | {r.gnn_s:.2f} | {r.edge_efficiency:.3f} | "
                       f"{r.edge_purity:.3f} | {r.efficiency:.3f} | {r.fake_rate:.3f} | "
                       f"{r.duplicate_rate:.3f} |")
        if best is None:
            out.append("no setting within the GNN input budget at every pileup: raise "
                       "--max-gnn-edges, set --filter-max-edges or scan higher filter cuts")
        else:
            cur = self.current
            out.append(f"chosen: filter cut {best.filter_cut:g}, GNN cut {best.gnn_cut:g}, "
                       f"{best.track_builder}, mean efficiency - fake {best.objective:.3f} "
                       f"(the folder has {cur.get('filter_cut', 0):g}, "
                       f"{cur.get('gnn_cut', 0):g}, {cur.get('track_builder', '')})")
        return out

    def write(self, folder: Path) -> list[Path]:
        """``cut_scan.csv`` (one row per setting and pileup) and ``cut_scan.json``."""
        folder.mkdir(parents=True, exist_ok=True)
        table = folder / "cut_scan.csv"
        names = list(ScanRow.__dataclass_fields__)
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
            "settings": settings, "seconds": self.seconds, "current": self.current,
            "chosen": None if best is None else asdict(best),
            "rows": [asdict(r) for r in self.rows]}, indent=2) + "\n")
        return [table, report]


def run_cut_scan(config: CutScanConfig, output: Path | None = None,
                 say: Callable[[str], None] = print) -> CutScanResult:
    """Scan the settings on the validation events; with ``output``, write a copy of the
    models folder there whose ``config.json`` has the chosen ones, beside the scan."""
    from sonic_exatrkx.exatrkx import Pipeline
    from sonic_exatrkx.jobs.training import simulate_arrays

    t0 = time.perf_counter()
    pipe = Pipeline.from_directory(config.models, num_threads=config.threads)
    if config.filter_max_edges is not None:
        cfg = pipe.config
        pipe = pipe.with_config(replace(cfg, filter=replace(
            cfg.filter, max_edges=config.filter_max_edges)))
    if config.module_map_range_bits:
        if pipe.module_map is None:
            raise ValueError(f"cut scan: {config.models} has no module map to put on a grid")
        pipe = pipe.with_module_map(pipe.module_map.on_grid(config.module_map_range_bits))
    f = pipe.config.filter
    result = CutScanResult(config, current={
        "filter_cut": f.cut, "gnn_cut": pipe.config.gnn.cut,
        "track_builder": pipe.config.track_builder, "filter_max_edges": f.max_edges})
    for k, mu in enumerate(config.pileups):
        acc = _Accumulator()
        events = list(simulate_arrays(mu, config.seed + k, config.events, sample=config.sample))
        for i, a in enumerate(events):
            _scan_event(pipe, a, config, acc)
            say(f"mu={mu:g} event {i + 1}/{len(events)}: {a['x'].size} space points scanned")
        result.rows.extend(acc.rows(mu, events))
    result.seconds = time.perf_counter() - t0
    if output is not None:
        _write_models(config.models, output, result,
                      pipe.module_map if config.module_map_range_bits else None)
    return result


@dataclass
class _Accumulator:
    """One pileup's per-event results, keyed by filter cut or setting."""

    labels: dict[Setting, list[np.ndarray]] = field(default_factory=lambda: defaultdict(list))
    kept: dict[tuple[float, float], Any] = field(default_factory=dict)  # StageEdges
    filtered: dict[float, Any] = field(default_factory=dict)  # StageEdges of the GNN input
    gnn_edges: dict[float, list[int]] = field(default_factory=lambda: defaultdict(list))
    gnn_time: dict[float, list[float]] = field(default_factory=lambda: defaultdict(list))

    @staticmethod
    def add(store: dict[Any, Any], key: Any, counts: Any) -> None:
        store[key] = counts if key not in store else store[key] + counts

    def rows(self, pileup: float, events: list[dict[str, np.ndarray]]) -> list[ScanRow]:
        from sonic_exatrkx.exatrkx.metrics import merge_events, track_metrics

        out = []
        for (fc, gc, builder), labels in self.labels.items():
            lab, pid, pt = merge_events(events, labels)
            m = track_metrics(lab, pid, pt=pt, pt_min=1.0)
            kept = self.kept[(fc, gc)]
            out.append(ScanRow(pileup, fc, gc, builder, float(np.mean(self.gnn_edges[fc])),
                               self.filtered[fc].efficiency, float(np.mean(self.gnn_time[fc])),
                               kept.efficiency, kept.purity, m.efficiency, m.fake_rate,
                               m.duplicate_rate))
        return out


def _scan_event(pipe: Any, a: dict[str, np.ndarray], config: CutScanConfig,
                acc: _Accumulator) -> None:
    """One event: graph and filter scores once, the GNN once per filter cut, track
    building once per setting."""
    from sonic_exatrkx.exatrkx.graph import apply_cut
    from sonic_exatrkx.exatrkx.metrics import EdgeTruth
    from sonic_exatrkx.exatrkx.tracks import build_tracks, track_edge_mask

    cfg = pipe.config
    builders = config.track_builders or (cfg.track_builder,)
    feats = pipe.prepare(pipe.features(a["x"], a["y"], a["z"]))
    emb = None if cfg.module_map else pipe.embed(feats)
    edges = pipe.graph(emb, feats, a["module_id"])
    f_scores = pipe.score_filter(feats, edges)
    truth = EdgeTruth.of(a["particle_id"], feats[:, cfg.features.index("r")], pt=a["pt"],
                         pt_min=1.0)
    for fc in config.filter_cuts:  # the pipeline's own filter selection at each cut
        f_edges = edges[:, pipe.with_config(cfg.with_cuts(filter_cut=fc))
                        .filter_edge_mask(edges, f_scores, feats)]
        start = time.perf_counter()
        g_scores = pipe.score_gnn(feats, f_edges)
        acc.gnn_time[fc].append(time.perf_counter() - start)
        acc.gnn_edges[fc].append(int(f_edges.shape[1]))
        acc.add(acc.filtered, fc, truth.stage(f_edges))
        for gc in config.gnn_cuts:
            keep = apply_cut(g_scores, gc)
            acc.add(acc.kept, (fc, gc), truth.stage(f_edges[:, keep]))
            for builder in builders:
                mask = track_edge_mask(f_edges, g_scores, keep, builder)
                acc.labels[(fc, gc, builder)].append(
                    build_tracks(feats.shape[0], f_edges, mask, min_hits=cfg.min_hits))


def _write_models(models: Path, output: Path, result: CutScanResult,
                  module_map: Any = None) -> None:
    """A copy of ``models`` with the chosen settings in its config.json (and
    ``module_map`` in place of its map), and the scan."""
    from sonic_exatrkx.exatrkx.module_map import MODULE_MAP_FILE
    from sonic_exatrkx.exatrkx.pipeline import read_config, write_config

    best = result.best
    if best is None:
        raise ValueError("cut scan: no setting within the GNN input budget, no models written")
    if output.resolve() == Path(models).resolve():
        raise ValueError(f"cut scan: write the tuned models to a new folder, not {models}")
    output.mkdir(parents=True, exist_ok=True)
    for path in Path(models).iterdir():
        if path.is_file() and path.name != "config.json":
            shutil.copy2(path, output / path.name)
    if module_map is not None:
        module_map.save(output / MODULE_MAP_FILE)  # write_config records its checksum
    cfg = read_config(Path(models)).with_cuts(filter_cut=best.filter_cut, gnn_cut=best.gnn_cut)
    cfg = replace(cfg, track_builder=best.track_builder,
                  filter=replace(cfg.filter, max_edges=result.current["filter_max_edges"]))
    write_config(output, cfg)
    result.write(output)
