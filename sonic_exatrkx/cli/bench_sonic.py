"""`sonic-exatrkx bench sonic`: options of :func:`sonic_exatrkx.bench.sonic.run_sonic_bench`
(what it measures: that module)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from sonic_exatrkx.bench.sonic import DEFAULT_SEED, OPTIONS

__all__ = ["bench_sonic_cmd"]


def bench_sonic_cmd(
    events: Annotated[int, typer.Option(help="Simulated events per pileup.")] = 8,
    pileup: Annotated[list[float], typer.Option(help="Pileups (HNL signal + mu).")] = [0.0, 50.0],  # noqa: B006
    in_flight: Annotated[list[int], typer.Option(help="Events in flight to try.")] = [1, 2, 4, 8],  # noqa: B006
    service_option: Annotated[list[str], typer.Option(help="local, custom, S4, S1, S2, S3 "
                                                      "(repeat).")]
    = list(OPTIONS),  # noqa: B006, B008
    models: Annotated[Path | None, typer.Option(help="Model folder (default: the shipped "
                      "data/models).")] = None,
    cores: Annotated[int | None, typer.Option(help="Cores to split between the job and the "
                     "server (default: all).")] = None,
    delay_ms: Annotated[float, typer.Option(help="Added round trip of the latency test "
                        "(0: skip it).")] = 20.0,
    delay_events: Annotated[int, typer.Option(help="Events of the latency test.")] = 16,
    seed: Annotated[int, typer.Option(help="Simulation seed (held out from training).")]
    = DEFAULT_SEED,
) -> None:
    """Events/s of the framework job, ExaTrkX local vs served (custom, ensemble, S1-S3),
    at several events in flight, and how much added latency async dispatch hides."""
    from algorithms.exatrkx_track_finding import default_model_dir
    from sonic_exatrkx.bench.sonic import SonicBenchConfig, run_sonic_bench

    unknown = sorted(set(service_option) - set(OPTIONS))
    if unknown or events < 1 or any(k < 1 for k in in_flight) or not in_flight:
        typer.echo(f"error: options are {', '.join(OPTIONS)} (got unknown {unknown}); "
                   "events and in-flight must be >= 1", err=True)
        raise typer.Exit(code=2)
    config = SonicBenchConfig(models=models or default_model_dir(), events=events,
                              pileups=tuple(pileup), in_flight=tuple(in_flight),
                              options=tuple(o for o in OPTIONS if o in service_option),
                              cores=cores or os.cpu_count() or 1, delay_ms=delay_ms,
                              delay_events=delay_events, seed=seed)
    if run_sonic_bench(config, say=lambda m: typer.echo(m)).mismatches:
        raise typer.Exit(code=1)
