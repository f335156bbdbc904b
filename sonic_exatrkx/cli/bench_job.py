"""`sonic-exatrkx bench job`: options of :func:`sonic_exatrkx.bench.job.run_job_bench`
(what it measures: that module)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sonic_exatrkx.bench.job import DEFAULT_SEED

__all__ = ["bench_job_cmd"]


def bench_job_cmd(
    events: Annotated[int, typer.Option(min=1, help="Held-out HNL events.")] = 40,
    pileup: Annotated[float, typer.Option(help="Pileup (mu) of the events.")] = 0.0,
    seed: Annotated[int, typer.Option(help="Simulation seed (bench pipeline's by default).")]
    = DEFAULT_SEED,
    pipeline_threads: Annotated[int, typer.Option(
        min=1, help="Torch / FAISS threads per event.")] = 1,
    in_flight: Annotated[int, typer.Option(
        min=1, help="Events in flight: pipeline threads, and the job's --threads.")] = 1,
    repeats: Annotated[int, typer.Option(min=1, help="Trials per mode (median).")] = 3,
    models: Annotated[Path | None, typer.Option(
        help="Model folder; default: the shipped data/models.")] = None,
    input: Annotated[Path | None, typer.Option(
        "--input", "-i", help="ACTS CSV events with truth instead of simulated ones.")] = None,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Folder for job.csv and job.json.")] = None,
    performance: Annotated[bool, typer.Option(
        help="The job reads the truth and computes the performance (as `run` on simulated "
             "events); --no-performance: only space points in, tracks out (a job on "
             "data).")] = True,
) -> None:
    """The whole `run` job (read, track finding, write, performance) against the pipeline
    alone on the same events and settings: events/s of each and their ratio."""
    from sonic_exatrkx.bench.job import JobBenchConfig, run_job_bench

    config = JobBenchConfig(events=events, pileup=pileup, seed=seed, threads=pipeline_threads,
                            workers=in_flight, repeats=repeats, models=models, input=input,
                            performance=performance)
    result = run_job_bench(config, say=lambda line: typer.echo(line, err=True))
    for line in result.lines():
        typer.echo(line)
    if output is not None:
        for path in result.write(output):
            typer.echo(f"wrote {path}")
