"""The training job behind `sonic-exatrkx train`: simulated ACTS tables as arrays
(positions, truth particle id and pT per space point), the training sample, and one run
from options to TorchScript models plus ``training.json``.

``sonic-exatrkx bench pipeline`` and ``bench sonic`` read the simulation through
:func:`simulate_arrays` too, so training and evaluation see the same events. Lives in the
jobs layer because it joins the simulation, the I/O readers and the ExaTrkX training.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "KERNEL_ENV",
    "MAP_SAMPLE",
    "MAP_SEED_OFFSET",
    "add_module_map",
    "build_module_map",
    "TrainingJob",
    "TrainingReport",
    "event_arrays",
    "kernel_provenance",
    "run_training",
    "simulate_arrays",
    "training_events",
]

#: The sample a module map is built from: ttbar-like events with pileup (the dense events
#: the map is for), generated above the map's pT threshold and without noise, so that
#: every simulated particle is signal (see :func:`build_module_map`).
MAP_SAMPLE = "ttbar-like"
#: The map's events use seed ``--seed`` + this (the training samples use ``--seed`` + k).
MAP_SEED_OFFSET = 100

#: Environment variables that pick torch's and MKL's CPU kernels.
KERNEL_ENV = ("ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS")


def kernel_provenance() -> dict[str, str]:
    """The CPU kernels a training ran with, for ``training.json``: the weights come out bit
    for bit the same only with the same kernels (AVX2 and AVX-512 ones round differently;
    ``docs/models.md``)."""
    import torch

    return {"torch": torch.__version__,
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            **{key: os.environ[key] for key in KERNEL_ENV if key in os.environ}}


def event_arrays(tables: dict[str, Any]) -> dict[str, np.ndarray]:
    """``x, y, z`` (mm), ``particle_id`` (uint64, 0 = noise), the particle's ``pt`` (GeV,
    0 for noise) and ``module_id`` (the space point's ``geometry_id_1``, uint64) per space
    point of one simulated event (``simulate_event`` output)."""
    from sonic_exatrkx.io.acts_csv import attach_truth

    sp = tables["spacepoint"]
    pid = attach_truth(sp, tables["measurement-simhit-map"], tables["hits"])
    parts = tables["particles"]
    ppid = parts["particle_id"].to_numpy(dtype=np.uint64)
    ppt = np.hypot(parts["px"].to_numpy(np.float64), parts["py"].to_numpy(np.float64))
    order = np.argsort(ppid, kind="stable")
    ppid, ppt = ppid[order], ppt[order]
    pos = np.clip(np.searchsorted(ppid, pid), 0, max(ppid.size - 1, 0))
    found = (pid != 0) & (ppid.size > 0)
    if ppid.size:
        found &= ppid[pos] == pid
    pt = np.where(found, ppt[pos] if ppid.size else 0.0, 0.0)
    return {
        "x": sp["x"].to_numpy(np.float64),
        "y": sp["y"].to_numpy(np.float64),
        "z": sp["z"].to_numpy(np.float64),
        "particle_id": pid.astype(np.uint64, copy=False),
        "pt": pt.astype(np.float32),
        "module_id": sp["geometry_id_1"].to_numpy(np.uint64),
    }


def simulate_arrays(
    pileup: float, seed: int, events: int, *, sample: str = "hnl", skip: int = 0
) -> Iterator[dict[str, np.ndarray]]:
    """Simulate ``events`` events (numbers ``skip..skip+events-1``) as :func:`event_arrays`."""
    from sonic_exatrkx.sim import SimulationConfig, simulate_event

    cfg = SimulationConfig(sample=sample, pileup=pileup, seed=seed)
    for i in range(skip, skip + events):
        yield event_arrays(simulate_event(cfg, i))


def training_events(
    pileups: Sequence[float],
    events: int,
    seed: int,
    features: Any,
    *,
    pileup_events: int | None = None,
    sectors: int = 1,
    sample: str = "hnl",
    progress: bool | None = None,
) -> list[Any]:
    """:class:`TrainingEvent` s of ``sample`` (a simulation sample): ``events`` at pileup 0 and
    ``pileup_events`` (default ``events``) at every other pileup value, features computed
    with ``features`` (a :class:`FeatureConfig`). Pileup ``k`` uses seed ``seed + k``.
    Events with pileup are cut into ``sectors`` phi wedges (:func:`phi_sectors`)."""
    from tqdm.auto import tqdm

    from sonic_exatrkx.exatrkx import compute_features
    from sonic_exatrkx.exatrkx.training import TrainingEvent, phi_sectors

    out: list[Any] = []
    n_pu = events if pileup_events is None else pileup_events
    counts = [events if mu == 0 else n_pu for mu in pileups]
    bar = tqdm(total=sum(counts), desc="simulate",
               disable=None if progress is None else not progress)  # None: on a TTY
    for k, (mu, count) in enumerate(zip(pileups, counts, strict=True)):
        for a in simulate_arrays(mu, seed + k, count, sample=sample):
            feats = compute_features(a["x"], a["y"], a["z"], features)
            ev = TrainingEvent(feats, a["particle_id"], a["pt"], a["module_id"])
            n = 1 if mu == 0 else sectors
            out.extend(phi_sectors(ev, n, np.arctan2(a["y"], a["x"])))
            bar.update(1)
    bar.close()
    return out


def build_module_map(events: int, pileup: float, seed: int, features: Any,
                     config: Any = None, *, sample: str = MAP_SAMPLE,
                     progress: bool = True) -> Any:
    """A :class:`~sonic_exatrkx.exatrkx.module_map.ModuleMap` from ``events`` simulated
    ``sample`` events at ``pileup`` (seed ``seed``), features computed with ``features``.

    The events are generated with the simulation's particle threshold at the map's
    ``pt_min`` and no noise: only signal particles are simulated, so each event gives the
    map ~7x the doublets of a full event at the same cost (the spectrum above the threshold
    is the full sample's). Why so many: a module pair the sample never shows is a hole in
    every graph, and ranges from few doublets are narrow (``docs/models.md``: 100 mu=200
    events cover 99.6 % of the held-out pT > 1 GeV doublets)."""
    from tqdm.auto import tqdm

    from sonic_exatrkx.exatrkx import compute_features
    from sonic_exatrkx.exatrkx.module_map import MapEvent, ModuleMap, ModuleMapConfig
    from sonic_exatrkx.sim import SimulationConfig, simulate_events

    cfg = config or ModuleMapConfig()
    sim = SimulationConfig(sample=sample, pileup=pileup, seed=seed,
                           pt_min=max(cfg.pt_min, 0.1), noise_fraction=0.0)

    def map_events() -> Iterator[Any]:
        bar = tqdm(total=events, desc="module map", unit="event", disable=not progress)
        for _, tables in simulate_events(sim, range(events)):
            a = event_arrays(tables)
            feats = compute_features(a["x"], a["y"], a["z"], features)
            yield MapEvent(a["module_id"], feats, a["particle_id"], a["pt"])
            bar.update()
        bar.close()

    described = {"sample": sample, "pileup": pileup, "seed": seed, "events": events,
                 "generator_pt_min": sim.pt_min, "noise_fraction": 0.0}
    return ModuleMap.from_events(map_events(), features, cfg, sample=described)


def add_module_map(models: str | Path, output: str | Path, events: int = 200,
                   pileup: float = 200.0, seed: int = 1000 + MAP_SEED_OFFSET,
                   config: Any = None, *, progress: bool = True) -> Path:
    """A module-map copy of the models folder ``models`` in ``output``: its filter and GNN
    as they are, a map of ``events`` simulated events (:func:`build_module_map`) in place of
    the embedding, ``graph_construction="module_map"`` in config.json.

    Why: to measure the map's graph (and what edge models trained on metric-learning graphs
    make of it) without training; a module-map pipeline meant for physics trains its
    filter and GNN on the map's graphs (``train --graph-construction module_map``)."""
    from sonic_exatrkx.exatrkx import Pipeline

    source = Pipeline.from_directory(models)
    module_map = build_module_map(events, pileup, seed, source.config.features, config,
                                  progress=progress)
    cfg = replace(source.config, graph_construction="module_map")
    Pipeline(None, source.filter, source.gnn, cfg, module_map).save(output)
    return Path(output)


@dataclass(frozen=True)
class TrainingJob:
    """One training run: the sample, the architecture changes to
    :func:`~sonic_exatrkx.exatrkx.defaults.default_pipeline_config`, and the optimisation
    (the meaning of every field: ``sonic-exatrkx train --help``)."""

    output: Path
    pileups: tuple[float, ...]
    events: int  # at pileup 0
    pileup_events: int  # at every other pileup
    sectors: int
    seed: int
    epochs: tuple[int, int, int]  # embedding, filter, GNN
    pt_min: float  # 0: every particle is signal
    lr: float
    radius: float  # graph radius while training
    graph_radius: float | None  # written to config.json (None: radius)
    margin: float
    max_k: int
    neighbour_budget: int | None  # None: the default config's
    embedding_dim: int
    embedding_hidden: int
    filter_hidden: int
    gnn_hidden: int
    gnn_iterations: int
    filter_cut: float
    gnn_cut: float
    filter_max_degree: int
    track_builder: str
    geometry: bool
    threads: int
    progress: bool | None  # None: bars only when stderr is a terminal
    graph_construction: str = "metric_learning"
    module_map_events: int = 200  # simulated events the map is built from
    module_map_pileup: float = 200.0
    module_map_pt_min: float = 0.8
    module_map_margin: float = 0.05
    filter_max_edges: int = 0  # GNN input budget per event (0: off); see configs()
    sample: str = "hnl"  # the simulated signal of every training event
    pt_weight_max: float = 1.0  # TrainingConfig.pt_weight_max
    filter_budget_weight: float = 1.0  # TrainingConfig.filter_budget_weight
    filter_triplets: bool = False  # the budget ranks by triplet support (TripletRanking())

    def module_map_config(self) -> Any:
        """The :class:`ModuleMapConfig` of a module-map job."""
        from sonic_exatrkx.exatrkx.module_map import ModuleMapConfig

        return ModuleMapConfig(pt_min=self.module_map_pt_min, margin=self.module_map_margin)

    def configs(self) -> tuple[Any, Any, Any]:
        """(pipeline config trained, :class:`TrainingConfig`, pipeline config saved); raises
        ``ValueError`` on an option the configurations refuse."""
        from sonic_exatrkx.exatrkx.defaults import default_pipeline_config
        from sonic_exatrkx.exatrkx.training import TrainingConfig
        from sonic_exatrkx.exatrkx.triplets import TripletRanking

        base = default_pipeline_config()
        geo = base.features.scales[:3] if self.geometry else None
        budget = (base.graph.neighbour_budget if self.neighbour_budget is None
                  else self.neighbour_budget)
        cfg = replace(
            base,
            embedding=replace(base.embedding, hidden=self.embedding_hidden,
                              out_features=self.embedding_dim, geometry=geo),
            graph=replace(base.graph, radius=self.radius, max_k=self.max_k,
                          neighbour_budget=budget),
            filter=replace(base.filter, hidden=self.filter_hidden, cut=self.filter_cut,
                           geometry=geo, max_degree=self.filter_max_degree,
                           max_edges=self.filter_max_edges,
                           triplets=TripletRanking() if self.filter_triplets else None),
            gnn=replace(base.gnn, hidden=self.gnn_hidden, n_iterations=self.gnn_iterations,
                        cut=self.gnn_cut, geometry=geo),
            track_builder=self.track_builder,
            graph_construction=self.graph_construction,
        )
        if cfg.module_map:
            self.module_map_config()  # refuses bad map options now
        emb_epochs, filter_epochs, gnn_epochs = self.epochs
        tcfg = TrainingConfig(
            seed=self.seed, embedding_epochs=emb_epochs, filter_epochs=filter_epochs,
            gnn_epochs=gnn_epochs, embedding_lr=self.lr, filter_lr=self.lr, gnn_lr=self.lr,
            margin=self.margin, cosine_lr=True, progress=self.progress,
            pt_min=self.pt_min if self.pt_min > 0 else None,
            pt_weight_max=self.pt_weight_max,
            filter_budget_weight=self.filter_budget_weight,
            # the GNN trains on the graphs it will see: a sector of a pileup event holds
            # about 1/sectors of the event's edges, so its share of the budget
            gnn_input_max_edges=-(-self.filter_max_edges // self.sectors),
        )
        saved = replace(cfg, graph=replace(
            cfg.graph, radius=self.radius if self.graph_radius is None else self.graph_radius))
        return cfg, tcfg, saved


@dataclass(frozen=True)
class TrainingReport:
    """What a training run did: the folder written, its time and the training edge
    metrics per stage."""

    output: Path
    events: int  # training events after cutting pileup events into sectors
    seconds: float
    edge_metrics: dict[str, Any]

    def lines(self) -> list[str]:
        out = [f"{stage:>6}: edge efficiency {m.efficiency:.4f} purity {m.purity:.4f} "
               f"({m.n_pred} edges, all-pairs truth, training events)"
               for stage, m in self.edge_metrics.items()]
        return [*out, f"wrote {self.output} in {self.seconds:.0f} s ({self.events} events)"]


def run_training(job: TrainingJob) -> TrainingReport:
    """Simulate the sample, train the three models, and write them with ``config.json``,
    ``loss_curves.png`` and ``training.json`` (the options, kernels and times) to
    ``job.output``."""
    from sonic_exatrkx.exatrkx.pipeline import apply_process_settings
    from sonic_exatrkx.exatrkx.training import train_pipeline

    cfg, tcfg, saved = job.configs()
    apply_process_settings(job.threads)  # threads and malloc, as the pipeline sets them
    t0 = time.perf_counter()
    module_map = None
    if cfg.module_map:
        module_map = build_module_map(job.module_map_events, job.module_map_pileup,
                                      job.seed + MAP_SEED_OFFSET, cfg.features,
                                      job.module_map_config(), progress=job.progress)
    t_map = time.perf_counter() - t0
    evs = training_events(job.pileups, job.events, job.seed, cfg.features,
                          pileup_events=job.pileup_events, sectors=job.sectors,
                          sample=job.sample, progress=job.progress)
    t_sim = time.perf_counter() - t0 - t_map
    _, hist = train_pipeline(evs, cfg, tcfg, output_dir=job.output, saved_config=saved,
                             module_map=module_map)
    elapsed = time.perf_counter() - t0
    summary = {
        "command": "sonic-exatrkx train",
        "sample": job.sample,
        "pt_weight_max": job.pt_weight_max,
        "filter_budget_weight": job.filter_budget_weight,
        "pileup": list(job.pileups),
        "events_mu0": job.events,
        "events_per_nonzero_pileup": job.pileup_events,
        "sectors_per_pileup_event": job.sectors,
        "pt_min": job.pt_min,
        "seed": job.seed,
        "threads": job.threads,
        "kernels": kernel_provenance(),
        "epochs": list(job.epochs),
        "lr": job.lr,
        "margin": job.margin,
        "training_radius": job.radius,
        "config": saved.to_dict(),
        **({"module_map": {**dict(module_map.build), "modules": module_map.n_modules,
                           "pairs": module_map.n_pairs}} if module_map is not None else {}),
        "seconds": {**({"module_map": round(t_map, 1)} if module_map is not None else {}),
                    "simulation": round(t_sim, 1), **{k: round(v, 1) for k, v in
                                                      hist.seconds.items()},
                    "total": round(elapsed, 1)},
        "training_edge_metrics": {
            k: {"efficiency": round(m.efficiency, 4), "purity": round(m.purity, 4),
                "edges": m.n_pred}
            for k, m in hist.edge_metrics.items()
        },
    }
    (job.output / "training.json").write_text(json.dumps(summary, indent=2) + "\n")
    return TrainingReport(job.output, len(evs), elapsed, dict(hist.edge_metrics))
