"""`sonic-exatrkx bench serve`: options of :func:`sonic_exatrkx.bench.serve.run_serve_bench`
(what it measures: that module)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["bench_serve_cmd"]


def bench_serve_cmd(
    models: Annotated[Path | None, typer.Option(
        help="Trained pipeline folder (config.json + TorchScript); default: the shipped "
             "data/models.", file_okay=False)] = None,
    events: Annotated[int, typer.Option(help="Simulated HNL events per pileup value.")] = 20,
    pileups: Annotated[list[float], typer.Option(
        "--pileups", "--pileup", help="Pileup values (repeat the option).")]
    = [0.0, 50.0],  # noqa: B006 - typer needs a literal default
    concurrency: Annotated[list[int], typer.Option(
        help="Requests in flight (client threads; direct: pipeline threads); repeat.")]
    = [1, 2, 4],  # noqa: B006
    instances: Annotated[list[int], typer.Option(
        help="Instances per model (one server each); repeat.")] = [1, 2],  # noqa: B006
    batch_sizes: Annotated[list[int], typer.Option(
        "--batch-sizes", "--batch-size",
        help="Events per request for the custom model (ROW_SPLITS); repeat.")]
    = [1, 4],  # noqa: B006
    threads_per_instance: Annotated[int, typer.Option(
        help="Torch + FAISS threads per model instance (and of the direct pipeline).")] = 1,
    seed: Annotated[int, typer.Option(help="Simulation seed.")] = 777,
    protocol: Annotated[str, typer.Option(help="grpc or http.")] = "grpc",
) -> None:
    """Events/s and latency of the served ExaTrkX models (custom backend, ensemble, events
    per request) vs the pipeline in-process, on simulated HNL events, from one process on
    loopback."""
    from sonic_exatrkx.bench.serve import ServeBenchConfig, run_serve_bench

    checks = [("--events", [events]), ("--concurrency", concurrency),
              ("--instances", instances), ("--batch-sizes", batch_sizes),
              ("--threads-per-instance", [threads_per_instance])]
    for name, values in checks:
        if not values or min(values) < 1:
            raise typer.BadParameter(f"must be >= 1, got {values}", param_hint=name)
    if any(mu < 0 for mu in pileups) or not pileups:
        raise typer.BadParameter(f"must be >= 0, got {pileups}", param_hint="--pileups")
    if protocol not in ("grpc", "http"):
        raise typer.BadParameter(f"grpc or http, not {protocol!r}", param_hint="--protocol")
    if models is None:
        from sonic_exatrkx.paths import data_dir

        try:
            models = data_dir() / "models"
        except FileNotFoundError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(code=2) from None
    if not (models / "config.json").is_file():
        typer.echo(f"error: no trained pipeline in {models} (config.json missing); pass "
                   "--models DIR", err=True)
        raise typer.Exit(code=2)
    config = ServeBenchConfig(
        models=models, events=events, pileups=tuple(pileups), concurrency=tuple(concurrency),
        instances=tuple(instances), batch_sizes=tuple(batch_sizes),
        threads_per_instance=threads_per_instance, seed=seed, protocol=protocol)
    result = run_serve_bench(config, say=typer.echo)
    for line in result.lines():
        typer.echo(line)
    if result.labels_differ:
        typer.echo("error: some served labels differ from the in-process labels", err=True)
        raise typer.Exit(code=1)
