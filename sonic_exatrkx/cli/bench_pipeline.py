"""`sonic-exatrkx bench pipeline`: options of :func:`sonic_exatrkx.bench.pipeline.
run_pipeline_bench` (what it measures: that module)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sonic_exatrkx.bench.pipeline import DEFAULT_BENCH_SEED
from sonic_exatrkx.cli.choices import Sample

__all__ = ["bench_pipeline_cmd"]


def bench_pipeline_cmd(
    models: Annotated[Path | None, typer.Option(
        help="Model folder (config.json + TorchScript); default: the shipped data/models.")]
    = None,
    events: Annotated[int, typer.Option(min=1, help="Held-out events per pileup value.")] = 20,
    sample: Annotated[Sample, typer.Option(
        help="Physics sample of the events (the pileup is added to it).")] = Sample.hnl,
    pileups: Annotated[list[float], typer.Option(
        "--pileup", "--pileups", help="Pileup values (repeat the option).")]
    = [0.0, 50.0, 200.0],  # noqa: B006 - typer needs a literal default
    seed: Annotated[int, typer.Option(help="Simulation seed (keep it apart from training's).")]
    = DEFAULT_BENCH_SEED,
    pipeline_threads: Annotated[int, typer.Option(
        min=1, help="Torch / FAISS threads of the pipeline.")] = 1,
    in_flight: Annotated[int, typer.Option(
        min=1, help="Events in flight at once, on threads of this one process.")] = 1,
    max_k: Annotated[int | None, typer.Option(
        min=1, help="Replace the models' graph max_k (neighbours per space point): fewer "
                    "edges at pileup, faster, less efficient there; default: config.json.")]
    = None,
    neighbour_budget: Annotated[int | None, typer.Option(
        min=0, help="Replace the models' graph neighbour_budget (space points x k per event "
                    "before k is lowered for dense events; 0: off); default: config.json.")]
    = None,
    max_degree: Annotated[int | None, typer.Option(
        "--filter-max-degree", min=0,
        help="Replace the models' filter.max_degree (filtered edges kept per space point "
             "and direction; 0: all); default: config.json.")] = None,
    max_edges: Annotated[int | None, typer.Option(
        "--filter-max-edges", min=0,
        help="Replace the models' filter.max_edges (GNN input edges per event, the highest "
             "filter scores; 0: all); default: config.json.")] = None,
    triplets: Annotated[bool | None, typer.Option(
        "--filter-triplets/--no-filter-triplets", show_default="config.json",
        help="Rank the GNN input budget by filter score plus triplet support (on) or by "
             "filter score alone (off).")] = None,
) -> None:
    """Per-stage timing, events/s, peak memory and physics of the pipeline on held-out
    simulated events (HNL or ttbar-like) at each pileup."""
    from sonic_exatrkx.bench.pipeline import PipelineBenchConfig, run_pipeline_bench

    config = PipelineBenchConfig(models=models, events=events, pileups=tuple(pileups),
                                 sample=sample.value,
                                 seed=seed, threads=pipeline_threads, workers=in_flight,
                                 max_k=max_k, neighbour_budget=neighbour_budget,
                                 max_degree=max_degree, max_edges=max_edges,
                                 triplets=triplets)
    result = run_pipeline_bench(config, say=typer.echo,
                                progress=lambda line: typer.echo(line, err=True))
    typer.echo(result.table())
