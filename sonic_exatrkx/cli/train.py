"""`sonic-exatrkx train`: train the ExaTrkX models on toy-simulation events.

The lead registers :func:`train` on the app (``app.command("train")(train)``). The helpers
here turn simulated ACTS tables into arrays (positions, truth particle id and pT per space
point); ``sonic-exatrkx bench pipeline`` uses them too, so training and evaluation read the
simulation the same way.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

__all__ = [
    "DEFAULT_NEIGHBOUR_BUDGET",
    "DEFAULT_TRAIN_SEED",
    "KERNEL_ENV",
    "default_pipeline_config",
    "kernel_provenance",
    "event_arrays",
    "simulate_arrays",
    "train",
    "training_events",
]

#: Seed of the shipped training sample; held-out evaluation uses other seeds.
DEFAULT_TRAIN_SEED = 1000
#: Graph neighbour budget of the shipped operating point: k = 32 up to 50k space points,
#: 16 at 100k (mu=200); see ``data/models/README.md``.
DEFAULT_NEIGHBOUR_BUDGET = 1_600_000

#: Environment variables that pick torch's and MKL's CPU kernels.
KERNEL_ENV = ("ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS")


def kernel_provenance() -> dict[str, str]:
    """The CPU kernels a training ran with, for ``training.json``: the weights come out bit
    for bit the same only with the same kernels (AVX2 and AVX-512 ones round differently;
    ``data/models/README.md``)."""
    import torch

    return {"torch": torch.__version__,
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            **{key: os.environ[key] for key in KERNEL_ENV if key in os.environ}}


def event_arrays(tables: dict[str, Any]) -> dict[str, np.ndarray]:
    """``x, y, z`` (mm), ``particle_id`` (uint64, 0 = noise) and the particle's ``pt`` (GeV,
    0 for noise) per space point of one simulated event (``simulate_event`` output)."""
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
    }


def simulate_arrays(
    pileup: float, seed: int, events: int, *, sample: str = "hnl", skip: int = 0
) -> Iterator[dict[str, np.ndarray]]:
    """Simulate ``events`` events (numbers ``skip..skip+events-1``) as :func:`event_arrays`."""
    from sonic_exatrkx.sim import SimulationConfig, simulate_event

    cfg = SimulationConfig(sample=sample, pileup=pileup, seed=seed)
    for i in range(skip, skip + events):
        yield event_arrays(simulate_event(cfg, i))


def default_pipeline_config() -> Any:
    """The pipeline configuration the shipped models are trained with (tuned for the toy
    detector: see ``data/models/README.md``); ``train`` writes the inference graph radius
    (``--graph-radius``) into the saved copy."""
    from sonic_exatrkx.exatrkx import (
        EmbeddingConfig,
        FilterConfig,
        GNNConfig,
        GraphConfig,
        PipelineConfig,
    )
    from sonic_exatrkx.exatrkx.features import FeatureConfig

    features = FeatureConfig()
    geo = features.scales[:3]  # (r, phi, z): the models compute geometric inputs in torch
    return PipelineConfig(
        features=features,
        embedding=EmbeddingConfig(hidden=64, n_layers=3, out_features=8, geometry=geo),
        # k-d tree: exact, and 3-4x faster than this machine's FAISS build (no AVX2) at
        # mu=0, no slower at mu=200; the neighbour budget leaves events of up to 50k space
        # points at k = 32 and gives mu=200 (~100k) k = 16 (data/models/README.md)
        graph=GraphConfig(radius=0.7, max_k=32, orientation="inner_outer", search="knn",
                          index="kdtree", neighbour_budget=DEFAULT_NEIGHBOUR_BUDGET),
        filter=FilterConfig(hidden=32, n_layers=3, cut=0.1, geometry=geo),
        gnn=GNNConfig(hidden=48, n_layers=2, n_iterations=6, cut=0.5, geometry=geo),
        track_builder="best_outgoing",
        min_hits=1,
        num_threads=1,
    )


def training_events(
    pileups: Sequence[float],
    events: int,
    seed: int,
    features: Any,
    *,
    pileup_events: int | None = None,
    sectors: int = 1,
    progress: bool = True,
) -> list[Any]:
    """:class:`TrainingEvent` s of the HNL sample: ``events`` at pileup 0 and
    ``pileup_events`` (default ``events``) at every other pileup value, features computed
    with ``features`` (a :class:`FeatureConfig`). Pileup ``k`` uses seed ``seed + k``.
    Events with pileup are cut into ``sectors`` phi wedges (:func:`phi_sectors`)."""
    from tqdm.auto import tqdm

    from sonic_exatrkx.exatrkx import compute_features
    from sonic_exatrkx.exatrkx.training import TrainingEvent, phi_sectors

    out: list[Any] = []
    n_pu = events if pileup_events is None else pileup_events
    counts = [events if mu == 0 else n_pu for mu in pileups]
    bar = tqdm(total=sum(counts), desc="simulate", disable=not progress)
    for k, (mu, count) in enumerate(zip(pileups, counts, strict=True)):
        for a in simulate_arrays(mu, seed + k, count):
            feats = compute_features(a["x"], a["y"], a["z"], features)
            ev = TrainingEvent(feats, a["particle_id"], a["pt"])
            n = 1 if mu == 0 else sectors
            out.extend(phi_sectors(ev, n, np.arctan2(a["y"], a["x"])))
            bar.update(1)
    bar.close()
    return out


def train(
    output: Annotated[Path, typer.Option(help="Folder for the trained models.")] = Path("models"),
    events: Annotated[int, typer.Option(min=1, help="Training events at pileup 0.")] = 40,
    pileup_events: Annotated[int, typer.Option(
        help="Training events at each non-zero --pileup value.")] = 3,
    pileup: Annotated[
        list[float],
        typer.Option(help="Pileup (mu) of a training sample (repeat the option for several)."),
    ] = [0.0, 20.0],  # noqa: B006 - typer needs a literal default
    sectors: Annotated[int, typer.Option(
        min=1, help="Cut every pileup event into this many phi wedges: the wedges keep its hit "
             "density at a fraction of the cost per training step.")] = 1,
    seed: Annotated[int, typer.Option(help="Simulation seed of the first sample.")]
    = DEFAULT_TRAIN_SEED,
    embedding_epochs: Annotated[int, typer.Option(help="Embedding epochs.")] = 30,
    filter_epochs: Annotated[int, typer.Option(help="Filter epochs.")] = 40,
    gnn_epochs: Annotated[int, typer.Option(help="GNN epochs.")] = 40,
    pt_min: Annotated[float, typer.Option(
        min=0.0, help="Signal threshold in GeV: true pairs of particles at or below it are "
                      "left out of every loss (0: all particles are signal).")] = 0.0,
    lr: Annotated[float, typer.Option(help="Peak learning rate of all three stages "
                                      "(cosine-annealed to 0 over each stage).")] = 1e-2,
    radius: Annotated[float, typer.Option(
        help="Graph radius in the embedded space while training (hard negatives, the "
             "filter's training graphs).")] = 0.7,
    graph_radius: Annotated[float | None, typer.Option(
        help="Graph radius written to config.json for inference (default: --radius). "
             "Slightly above --radius, it recovers low-pT pairs the embedding leaves just "
             "outside (fewer split tracks; see data/models/README.md).")] = 0.8,
    margin: Annotated[float, typer.Option(help="Embedding hinge margin (> radius leaves a "
                                          "gap between true and false pairs).")] = 1.0,
    max_k: Annotated[int, typer.Option(help="Neighbours per space point in graph building.")]
    = 32,
    neighbour_budget: Annotated[int, typer.Option(
        min=0, help="Neighbour-list entries per event in all (space points x k): a denser "
                    "event searches budget / N neighbours per space point instead of "
                    "--max-k (0: off). The default leaves events up to 50k space points "
                    "alone and bounds mu=200 latency (data/models/README.md).")]
    = DEFAULT_NEIGHBOUR_BUDGET,
    embedding_dim: Annotated[int, typer.Option(help="Embedding output width.")] = 8,
    embedding_hidden: Annotated[int, typer.Option(help="Embedding hidden width.")] = 64,
    filter_hidden: Annotated[int, typer.Option(help="Filter hidden width.")] = 32,
    gnn_hidden: Annotated[int, typer.Option(help="GNN hidden width.")] = 48,
    gnn_iterations: Annotated[int, typer.Option(help="GNN message-passing iterations.")] = 6,
    filter_cut: Annotated[float, typer.Option(help="Filter cut on sigmoid(score).")] = 0.1,
    gnn_cut: Annotated[float, typer.Option(help="GNN cut on sigmoid(score).")] = 0.5,
    filter_max_degree: Annotated[int, typer.Option(
        min=0, help="Filtered edges kept per space point and direction, best first (0: all; "
                    "7 helps at pileup, see data/models/README.md); written to config.json for "
                    "inference only: the GNN trains on every edge past the cut (better).")] = 0,
    track_builder: Annotated[str, typer.Option(
        help="Track building: components, best_edges or best_outgoing (see "
             "PipelineConfig).")] = "best_outgoing",
    geometry: Annotated[bool, typer.Option(
        help="Geometric node/edge inputs (cos/sin phi, dphi/dr, z0, ...) computed inside "
             "the models.")] = True,
    threads: Annotated[int, typer.Option(
        min=1, help="Torch / FAISS threads. 1 by default: on a shared 2-core machine two threads "
             "made every small op wait for a descheduled worker (measured 60x slower).")] = 1,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Train the embedding, filter and GNN models on simulated HNL events (mu=0 plus some
    pileup) and write TorchScript models, config.json and loss_curves.png to --output."""
    from sonic_exatrkx.exatrkx.pipeline import apply_process_settings
    from sonic_exatrkx.exatrkx.training import TrainingConfig, train_pipeline

    if not pileup:
        raise typer.BadParameter("give at least one value", param_hint="--pileup")
    base = default_pipeline_config()
    geo = base.features.scales[:3] if geometry else None
    try:
        cfg = replace(
            base,
            embedding=replace(base.embedding, hidden=embedding_hidden,
                              out_features=embedding_dim, geometry=geo),
            graph=replace(base.graph, radius=radius, max_k=max_k,
                          neighbour_budget=neighbour_budget),
            filter=replace(base.filter, hidden=filter_hidden, cut=filter_cut, geometry=geo,
                           max_degree=filter_max_degree),
            gnn=replace(base.gnn, hidden=gnn_hidden, n_iterations=gnn_iterations, cut=gnn_cut,
                        geometry=geo),
            track_builder=track_builder,
        )
        tcfg = TrainingConfig(
            seed=seed, embedding_epochs=embedding_epochs, filter_epochs=filter_epochs,
            gnn_epochs=gnn_epochs, embedding_lr=lr, filter_lr=lr, gnn_lr=lr, margin=margin,
            cosine_lr=True, progress=progress, pt_min=pt_min if pt_min > 0 else None,
        )
        saved = replace(cfg, graph=replace(
            cfg.graph, radius=radius if graph_radius is None else graph_radius))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    apply_process_settings(threads)  # threads and malloc, as the pipeline sets them
    t0 = time.perf_counter()
    evs = training_events(pileup, events, seed, cfg.features, pileup_events=pileup_events,
                          sectors=sectors, progress=progress)
    t_sim = time.perf_counter() - t0
    _, hist = train_pipeline(evs, cfg, tcfg, output_dir=output, saved_config=saved)
    elapsed = time.perf_counter() - t0
    summary = {
        "command": "sonic-exatrkx train",
        "sample": "hnl",
        "pileup": list(pileup),
        "events_mu0": events,
        "events_per_nonzero_pileup": pileup_events,
        "sectors_per_pileup_event": sectors,
        "pt_min": pt_min,
        "seed": seed,
        "threads": threads,
        "kernels": kernel_provenance(),
        "epochs": [embedding_epochs, filter_epochs, gnn_epochs],
        "lr": lr,
        "margin": margin,
        "training_radius": radius,
        "config": saved.to_dict(),
        "seconds": {"simulation": round(t_sim, 1), **{k: round(v, 1) for k, v in
                                                      hist.seconds.items()},
                    "total": round(elapsed, 1)},
        "training_edge_metrics": {
            k: {"efficiency": round(m.efficiency, 4), "purity": round(m.purity, 4),
                "edges": m.n_pred}
            for k, m in hist.edge_metrics.items()
        },
    }
    (output / "training.json").write_text(json.dumps(summary, indent=2) + "\n")
    for stage, m in hist.edge_metrics.items():
        typer.echo(f"{stage:>6}: edge efficiency {m.efficiency:.4f} purity {m.purity:.4f} "
                   f"({m.n_pred} edges, all-pairs truth, training events)")
    typer.echo(f"wrote {output} in {elapsed:.0f} s ({len(evs)} events)")
