"""`sonic-exatrkx bench batch`: options of :func:`sonic_exatrkx.bench.batch.run_batch_bench`
(what it measures: that module)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sonic_exatrkx.bench.batch import DEFAULT_SEED


def bench_batch_cmd(
    events: Annotated[int, typer.Option(help="Simulated HNL mu=0 events.")] = 48,
    chunk_size: Annotated[int, typer.Option(help="Events per Dask task.")] = 12,
    delay_ms: Annotated[float, typer.Option(help="Added round trip of the slowed server.")]
    = 100.0,
    models: Annotated[Path | None, typer.Option(help="Model folder (default: the shipped "
                      "data/models).")] = None,
    seed: Annotated[int, typer.Option(help="Simulation seed (held out).")] = DEFAULT_SEED,
) -> None:
    """Commit (resume) overhead, Dask 1 vs 2 workers, 1 vs 2 Triton servers, and the
    request split between a fast and a slowed server."""
    from algorithms.exatrkx_track_finding import default_model_dir
    from sonic_exatrkx.bench.batch import BatchBenchConfig, run_batch_bench

    if events < 2 or chunk_size < 1:
        typer.echo("error: --events must be >= 2 and --chunk-size >= 1", err=True)
        raise typer.Exit(code=2)
    run_batch_bench(BatchBenchConfig(models=models or default_model_dir(), events=events,
                                     seed=seed, chunk_size=chunk_size, delay_ms=delay_ms),
                    say=typer.echo)
