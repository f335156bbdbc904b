"""`sonic-exatrkx bench ...`: the studies (results, plots and summaries written to a
folder, `bench all`, `bench compare`), perf_analyzer input, and the older engines that print
figures and ratios."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sonic_exatrkx.cli.bench_batch import bench_batch_cmd
from sonic_exatrkx.cli.bench_job import bench_job_cmd
from sonic_exatrkx.cli.bench_pipeline import bench_pipeline_cmd
from sonic_exatrkx.cli.bench_serve import bench_serve_cmd
from sonic_exatrkx.cli.bench_sonic import bench_sonic_cmd
from sonic_exatrkx.cli.bench_studies import (
    STUDY_COMMANDS,
    bench_all_cmd,
    bench_compare_cmd,
    bench_perf_input_cmd,
)
from sonic_exatrkx.cli.simulate import bench_sim_cmd

bench_app = typer.Typer(help="Benchmarks (figures and ratios; not timed unit tests).",
                        no_args_is_help=True)
bench_app.command("sim")(bench_sim_cmd)
bench_app.command("pipeline")(bench_pipeline_cmd)
bench_app.command("serve")(bench_serve_cmd)
bench_app.command("sonic")(bench_sonic_cmd)
bench_app.command("batch")(bench_batch_cmd)
for _name, _command in STUDY_COMMANDS.items():
    bench_app.command(_name)(_command)
bench_app.command("all")(bench_all_cmd)
bench_app.command("compare")(bench_compare_cmd)
bench_app.command("perf-input")(bench_perf_input_cmd)
bench_app.command("job")(bench_job_cmd)


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
    from sonic_exatrkx.bench.io import IoBenchConfig, run_io_bench

    config = IoBenchConfig(input=input, events=events, threads=tuple(threads),
                           in_flight=in_flight, seed=seed)
    for line in run_io_bench(config).lines():
        typer.echo(line)
