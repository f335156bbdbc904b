"""`sonic-exatrkx train`: train the ExaTrkX models on toy-simulation events.

Options only; the job is :func:`sonic_exatrkx.jobs.training.run_training` (imported in the
command: ``--help`` imports no torch).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sonic_exatrkx.cli.choices import GraphConstruction, Sample, TrackBuilder

__all__ = ["DEFAULT_TRAIN_SEED", "train"]

#: Seed of the shipped training sample; held-out evaluation uses other seeds.
DEFAULT_TRAIN_SEED = 1000


def train(
    output: Annotated[Path, typer.Option(
        "--output", "-o", help="Folder for the trained models.")] = Path("models"),
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
    sample: Annotated[Sample, typer.Option(
        help="Simulated signal of every training event (pileup events add minimum bias to "
             "it): ttbar-like gives dense events their high-pT tracks.")] = Sample.hnl,
    embedding_epochs: Annotated[int, typer.Option(help="Embedding epochs.")] = 30,
    filter_epochs: Annotated[int, typer.Option(help="Filter epochs.")] = 40,
    gnn_epochs: Annotated[int, typer.Option(help="GNN epochs.")] = 40,
    pt_min: Annotated[float, typer.Option(
        min=0.0, help="Signal threshold in GeV: true pairs of particles at or below it are "
                      "left out of every loss (0: all particles are signal).")] = 0.0,
    pt_weight_max: Annotated[float, typer.Option(
        min=1.0, help="True edges weigh their particle's pT in GeV, clipped to [1, this], in "
                      "the filter and GNN losses (1: all weigh 1).")] = 1.0,
    filter_budget_weight: Annotated[float, typer.Option(
        min=1.0, help="With --filter-max-edges: the filter loss weighs the edges a dense "
                      "training event's budget ranks wrongly (false ones among its best "
                      "scores, true ones below them) this much more (1: plain BCE).")] = 1.0,
    lr: Annotated[float, typer.Option(help="Peak learning rate of all three stages "
                                      "(cosine-annealed to 0 over each stage).")] = 1e-2,
    radius: Annotated[float, typer.Option(
        help="Graph radius in the embedded space while training (hard negatives, the "
             "filter's training graphs).")] = 0.7,
    graph_radius: Annotated[float | None, typer.Option(
        help="Graph radius written to config.json for inference (default: --radius). "
             "Slightly above --radius, it recovers low-pT pairs the embedding leaves just "
             "outside (fewer split tracks; see docs/models.md).")] = 0.8,
    margin: Annotated[float, typer.Option(help="Embedding hinge margin (> radius leaves a "
                                          "gap between true and false pairs).")] = 1.0,
    max_k: Annotated[int, typer.Option(help="Neighbours per space point in graph building.")]
    = 32,
    neighbour_budget: Annotated[int | None, typer.Option(
        min=0, show_default="the shipped models' budget",
        help="Neighbour-list entries per event in all (space points x k): a denser "
             "event searches budget / N neighbours per space point instead of "
             "--max-k (0: off). The default leaves events up to 50k space points "
             "alone and bounds mu=200 latency (docs/models.md).")] = None,
    embedding_dim: Annotated[int, typer.Option(help="Embedding output width.")] = 8,
    embedding_hidden: Annotated[int, typer.Option(help="Embedding hidden width.")] = 64,
    filter_hidden: Annotated[int, typer.Option(help="Filter hidden width.")] = 32,
    gnn_hidden: Annotated[int, typer.Option(help="GNN hidden width.")] = 48,
    gnn_iterations: Annotated[int, typer.Option(help="GNN message-passing iterations.")] = 6,
    filter_cut: Annotated[float, typer.Option(help="Filter cut on sigmoid(score).")] = 0.1,
    gnn_cut: Annotated[float, typer.Option(help="GNN cut on sigmoid(score).")] = 0.5,
    filter_max_degree: Annotated[int, typer.Option(
        min=0, help="Filtered edges kept per space point and direction, best first (0: all; "
                    "7 helps at pileup, see docs/models.md); written to config.json for "
                    "inference only: the GNN trains on every edge past the cut (better).")] = 0,
    filter_max_edges: Annotated[int, typer.Option(
        min=0, help="GNN input edges per event, the best filter scores (0: all): written to "
                    "config.json, and the GNN trains on graphs cut the same way (each pileup "
                    "sector gets its share of the budget).")] = 0,
    filter_triplets: Annotated[bool, typer.Option(
        help="With --filter-max-edges: the budget keeps the edges of best filter score plus "
             "triplet support (a compatible neighbour on the same helix), at inference and "
             "in the GNN's training graphs (docs/models.md).")] = False,
    track_builder: Annotated[TrackBuilder, typer.Option(
        help="Track building from the GNN's edges (see PipelineConfig).")]
    = TrackBuilder.best_outgoing,
    geometry: Annotated[bool, typer.Option(
        help="Geometric node/edge inputs (cos/sin phi, dphi/dr, z0, ...) computed inside "
             "the models.")] = True,
    pipeline_threads: Annotated[int, typer.Option(
        min=1, help="Torch / FAISS threads. 1 by default: on a shared 2-core machine two threads "
             "made every small op wait for a descheduled worker (measured 60x slower).")] = 1,
    threads: Annotated[int | None, typer.Option(
        min=1, hidden=True, help="Deprecated name of --pipeline-threads.")] = None,
    progress: Annotated[bool | None, typer.Option(
        show_default="on a terminal", help="Progress bars (default: only when stderr is a "
        "terminal, so redirected logs get no bar frames).")] = None,
    graph_construction: Annotated[GraphConstruction, typer.Option(
        help="Graph construction: the trained embedding and a radius search, or a module "
             "map built from simulated truth first (no embedding; the filter and GNN "
             "train on its graphs; docs/models.md).")] = GraphConstruction.metric_learning,
    module_map_events: Annotated[int, typer.Option(
        min=1, help="Simulated ttbar-like events the module map is built from.")] = 200,
    module_map_pileup: Annotated[float, typer.Option(
        min=0.0, help="Pileup of the module map's events.")] = 200.0,
    module_map_pt_min: Annotated[float, typer.Option(
        min=0.0, help="The module map learns the doublets of particles above this pT "
                      "(GeV).")] = 0.8,
    module_map_margin: Annotated[float, typer.Option(
        min=0.0, help="Widen every module pair's ranges by this share of its layer pair's "
                      "range on each side.")] = 0.05,
) -> None:
    """Train the embedding, filter and GNN models on simulated events (mu=0 plus some
    pileup) and write TorchScript models, config.json and loss_curves.png to --output."""
    from sonic_exatrkx.jobs.training import TrainingJob, run_training

    if not pileup:
        raise typer.BadParameter("give at least one value", param_hint="--pileup")
    if threads is not None:  # the old name; --threads means event-loop workers in `run`
        typer.echo("warning: train --threads is deprecated; use --pipeline-threads", err=True)
        pipeline_threads = threads
    job = TrainingJob(
        output=output, pileups=tuple(pileup), events=events, pileup_events=pileup_events,
        sectors=sectors, seed=seed, epochs=(embedding_epochs, filter_epochs, gnn_epochs),
        pt_min=pt_min, lr=lr, radius=radius, graph_radius=graph_radius, margin=margin,
        max_k=max_k, neighbour_budget=neighbour_budget, embedding_dim=embedding_dim,
        embedding_hidden=embedding_hidden, filter_hidden=filter_hidden, gnn_hidden=gnn_hidden,
        gnn_iterations=gnn_iterations, filter_cut=filter_cut, gnn_cut=gnn_cut,
        filter_max_degree=filter_max_degree, filter_max_edges=filter_max_edges,
        filter_triplets=filter_triplets,
        track_builder=track_builder.value,
        geometry=geometry, threads=pipeline_threads, progress=progress,
        graph_construction=graph_construction.value, module_map_events=module_map_events,
        module_map_pileup=module_map_pileup, module_map_pt_min=module_map_pt_min,
        module_map_margin=module_map_margin, sample=sample.value,
        pt_weight_max=pt_weight_max, filter_budget_weight=filter_budget_weight)
    try:
        job.configs()
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    for line in run_training(job).lines():
        typer.echo(line)
