"""`sonic-exatrkx bench ...`: benchmarks that print figures and ratios."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer

from sonic_exatrkx.cli.bench_pipeline import bench_pipeline_cmd
from sonic_exatrkx.cli.bench_serve import bench_serve_cmd
from sonic_exatrkx.cli.bench_sonic import bench_sonic_cmd
from sonic_exatrkx.cli.simulate import bench_sim_cmd

bench_app = typer.Typer(help="Benchmarks (figures and ratios; not timed unit tests).",
                        no_args_is_help=True)
bench_app.command("sim")(bench_sim_cmd)
bench_app.command("pipeline")(bench_pipeline_cmd)
bench_app.command("serve")(bench_serve_cmd)
bench_app.command("sonic")(bench_sonic_cmd)


@bench_app.command("io")
def bench_io_cmd(
    input: Annotated[Path | None, typer.Option("--input", "-i", help="ACTS CSV event folder "
                     "with truth; default: simulate --events HNL mu=0 events first.")] = None,
    events: Annotated[int, typer.Option(help="Events to simulate when no input is given.")] = 100,
    threads: Annotated[list[int], typer.Option(help="Thread counts to try.")] = [1, 2],  # noqa: B006
    in_flight: Annotated[int, typer.Option(help="Events in flight per thread.")] = 2,
    seed: Annotated[int, typer.Option(help="Simulation seed.")] = 1,
) -> None:
    """Events/s of reading ACTS CSV (with truth) and writing CSV + ROOT."""
    from algorithms.bench_io import bench_io

    with tempfile.TemporaryDirectory(prefix="bench-io-input-") as tmp:
        if input is None:
            from sonic_exatrkx.sim import SimulationConfig, write_events

            input = Path(tmp)
            write_events(SimulationConfig(sample="hnl", pileup=0, seed=seed), input, events)
        results = [bench_io(input, threads=t, in_flight=t * in_flight) for t in threads]
    for r in results:
        typer.echo(r.line())
    if len(results) > 1:
        typer.echo(f"ratio {results[-1].threads} threads / {results[0].threads} thread(s): "
                   f"{results[-1].events_per_s / results[0].events_per_s:.2f}")
