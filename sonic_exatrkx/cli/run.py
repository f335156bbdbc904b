"""`sonic-exatrkx run`: the main reconstruction job.

Options only, grouped into the panels of ``run --help``; the job is
:func:`sonic_exatrkx.jobs.run_reco_job` (or the Dask executor's). Heavy modules (torch,
FAISS, tritonclient) are imported inside the command, so ``--help`` and a refused choice
cost no import work.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from sonic_exatrkx.cli.choices import (
    Compression,
    Executor,
    Inference,
    InputFormat,
    Mode,
    NonFinite,
    OnTimeout,
    Protocol,
    RootLayout,
    ServiceOptionName,
    SpacepointsFrom,
    parse_headers,
)
from sonic_exatrkx.framework import FrameworkError

#: Exit code of a job that finished with failed events (``--continue-on-error``).
PARTIAL_FAILURE = 3

#: The panels of ``run --help``.
IO = "Input/output"
LOOP = "Event loop"
EXATRKX = "ExaTrkX"
TRITON = "Triton service"
BATCH = "Batch and Dask"


def run(
    # ------------------------------------------------------------------ input/output
    input: Annotated[Path | None, typer.Option(
        "--input", "-i", rich_help_panel=IO, help="Event folder (CSV/TrackML), one event "
        "file of it (only that event), or a ROOT file; default: the shipped samples.")] = None,
    input_format: Annotated[InputFormat, typer.Option(
        rich_help_panel=IO, help="ACTS CSV, a ROOT spacePoints tree, or TrackML.")]
    = InputFormat.csv,
    output: Annotated[Path, typer.Option(
        "--output", "-o", rich_help_panel=IO, help="Output folder.")] = Path("output"),
    events: Annotated[int | None, typer.Option(
        "--events", "-n", rich_help_panel=IO, help="Events to process (default: all).")]
    = None,
    skip: Annotated[int, typer.Option(
        rich_help_panel=IO, help="Events to skip first (grid sharding).")] = 0,
    performance: Annotated[bool | None, typer.Option(
        rich_help_panel=IO, help="Measure the tracking performance (default: when the input "
        "has truth).")] = None,
    convert_only: Annotated[bool, typer.Option(
        rich_help_panel=IO, help="No track finding: only read the space points and write "
        "them as ROOT.")] = False,
    root_layout: Annotated[RootLayout, typer.Option(
        rich_help_panel=IO, help="ACTS's flat or our jagged layout, for --convert-only.")]
    = RootLayout.flat,
    csv_output: Annotated[bool, typer.Option(
        rich_help_panel=IO, help="With --convert-only, also write the space points as CSV.")]
    = False,
    skip_bad_events: Annotated[bool, typer.Option(
        rich_help_panel=IO, help="Warn and skip malformed events instead of failing.")]
    = False,
    drop_duplicates: Annotated[bool, typer.Option(
        rich_help_panel=IO, help="Drop space points that repeat another's x, y, z (default: "
        "warn with the count).")] = False,
    nonfinite: Annotated[NonFinite, typer.Option(
        rich_help_panel=IO, help="Hits with NaN/inf positions: an error naming the line, or "
        "drop them (counted in the summary).")] = NonFinite.error,
    spacepoints_from: Annotated[SpacepointsFrom | None, typer.Option(
        rich_help_panel=IO, help="ACTS CSV without spacepoint files: one space point per "
        "measurement (at its simulated hit) or per hit; true positions (docs/jobs.md).")]
    = None,
    # -------------------------------------------------------------------- event loop
    threads: Annotated[int | None, typer.Option(
        "--threads", "-j", rich_help_panel=LOOP, help="Event-loop worker threads (default: "
        "all cores).")] = None,
    in_flight: Annotated[int | None, typer.Option(
        rich_help_panel=LOOP, help="Events in flight at once (default: --threads).")] = None,
    io_process: Annotated[bool | None, typer.Option(
        rich_help_panel=LOOP, show_default="from 300 events",
        help="Readers and writers in a child process, off the track finding's interpreter "
        "lock (default: for jobs of 300 events or more, where its start-up pays).")] = None,
    continue_on_error: Annotated[bool, typer.Option(
        rich_help_panel=LOOP, help="Record failing events in failed_events.csv, go on with "
        "the others, and exit with code 3.")] = False,
    # ----------------------------------------------------------------------- ExaTrkX
    inference: Annotated[Inference, typer.Option(
        rich_help_panel=EXATRKX, help="Where ExaTrkX runs: this process, a Triton server, "
        "or auto (the server if it answers, else here).")] = Inference.local,
    models: Annotated[Path | None, typer.Option(
        rich_help_panel=EXATRKX, help="Model folder (default: the shipped data/models).")]
    = None,
    pipeline_threads: Annotated[int, typer.Option(
        min=1, rich_help_panel=EXATRKX, help="torch/FAISS threads per pipeline call (keep "
        "--threads x this <= cores).")] = 1,
    cores: Annotated[int | None, typer.Option(
        rich_help_panel=EXATRKX, help="Cores to split between the job and the server it "
        "starts (default: all); the split is printed.")] = None,
    # ---------------------------------------------------------------- Triton service
    server: Annotated[list[str] | None, typer.Option(
        rich_help_panel=TRITON, help="host:port of a Triton server (gRPC, or HTTP with "
        "--protocol http); repeat for failover order. Without it, --inference triton starts "
        "a local server from --models on 127.0.0.1 and stops it at the end.")] = None,
    service_option: Annotated[ServiceOptionName, typer.Option(
        rich_help_panel=TRITON, help="What is served: custom (whole pipeline, one request), "
        "S0..S4 (S4: the ensemble).")] = ServiceOptionName.custom,
    mode: Annotated[Mode | None, typer.Option(
        rich_help_panel=TRITON, help="Who waits for the inference (default: sync locally, "
        "async for a server).")] = None,
    protocol: Annotated[Protocol, typer.Option(
        rich_help_panel=TRITON, help="Transport to the server.")] = Protocol.grpc,
    allowed_tries: Annotated[int, typer.Option(
        min=1, rich_help_panel=TRITON, help="Tries per server on recoverable failures.")] = 3,
    timeout: Annotated[float | None, typer.Option(
        rich_help_panel=TRITON, help="Per-request timeout (s); default: scaled with the "
        "event's space points.")] = None,
    on_timeout: Annotated[OnTimeout, typer.Option(
        rich_help_panel=TRITON, help="A timed-out request is retried like other recoverable "
        "failures, or fails its event at once.")] = OnTimeout.retry,
    fallback_local: Annotated[bool, typer.Option(
        rich_help_panel=TRITON, help="Run events locally when every server fails.")] = False,
    compression: Annotated[Compression | None, typer.Option(
        rich_help_panel=TRITON, help="Compress requests (default: none).")] = None,
    shared_memory: Annotated[bool, typer.Option(
        rich_help_panel=TRITON, help="Tensors through system shared memory (server on this "
        "node).")] = False,
    tls_root_cert: Annotated[Path | None, typer.Option(
        rich_help_panel=TRITON, help="PEM root certificate: gRPC over TLS to --server.")]
    = None,
    header: Annotated[list[str] | None, typer.Option(
        rich_help_panel=TRITON, help="KEY=VALUE sent with every request (e.g. a token); "
        "repeat for more.")] = None,
    metrics_port: Annotated[int | None, typer.Option(
        rich_help_panel=TRITON, help="Serve client metrics (Prometheus) on 127.0.0.1:PORT "
        "during the job.")] = None,
    metrics_file: Annotated[Path | None, typer.Option(
        rich_help_panel=TRITON, help="Write client metrics as a Prometheus textfile at the "
        "end (batch jobs).")] = None,
    trace_file: Annotated[Path | None, typer.Option(
        rich_help_panel=TRITON, help="Write a per-event CSV of client preparation, round "
        "trip and produce times.")] = None,
    # ---------------------------------------------------------------- batch and Dask
    shard: Annotated[str | None, typer.Option(
        rich_help_panel=BATCH, help="I/N: run block I (from 0) of N of the events; join the "
        "shards with `sonic-exatrkx merge`.")] = None,
    start_over: Annotated[bool, typer.Option(
        rich_help_panel=BATCH, help="Replace the outputs of another job in --output instead "
        "of refusing (the same job resumes).")] = False,
    executor: Annotated[Executor, typer.Option(
        rich_help_panel=BATCH, help="This process, or dask (chunks of events as Dask tasks, "
        "then one merge).")] = Executor.local,
    scheduler: Annotated[str | None, typer.Option(
        rich_help_panel=BATCH, help="Dask scheduler address (default: a LocalCluster of "
        "--workers processes).")] = None,
    workers: Annotated[int, typer.Option(
        min=1, rich_help_panel=BATCH, help="Worker processes of the Dask LocalCluster.")] = 2,
    chunk_size: Annotated[int, typer.Option(
        min=1, rich_help_panel=BATCH, help="Events per Dask task.")] = 16,
) -> None:
    """Find tracks: read space points, run ExaTrkX (in this process or on Triton), write
    tracks (CSV and ROOT) and, with truth, the tracking performance; print timing and
    physics summaries."""
    from algorithms.exatrkx_track_finding import TrackFindingConfig
    from sonic_exatrkx.jobs import RecoJobConfig, run_reco_job
    from sonic_exatrkx.jobs.dask_executor import DaskConfig, run_dask_job
    from sonic_exatrkx.sonic import RetryPolicy, TritonOptions

    try:
        triton = TritonOptions(
            protocol=protocol.value, timeout_s=timeout, fallback_local=fallback_local,
            compression=compression.value if compression else None,
            tls_root_certificates=tls_root_cert, headers=parse_headers(header or []),
            shared_memory=shared_memory,
            retry=RetryPolicy(allowed_tries=allowed_tries, on_timeout=on_timeout.value))
        finder = TrackFindingConfig(
            models=models, pipeline_threads=pipeline_threads,
            inference="local" if convert_only else inference.value,
            servers=tuple(server or ()), service_option=service_option.value,
            mode=mode.value if mode else None, metrics_port=metrics_port,
            metrics_file=metrics_file, trace_file=trace_file, triton=triton)
        job = RecoJobConfig(
            input=input, input_format=input_format.value, output=output, events=events,
            skip=skip, threads=threads, in_flight=in_flight, cores=cores,
            performance=performance, on_bad_event="skip" if skip_bad_events else "fail",
            duplicates="drop" if drop_duplicates else "warn",
            nonfinite=nonfinite.value,
            spacepoints_from=spacepoints_from.value if spacepoints_from else None,
            continue_on_error=continue_on_error, convert_only=convert_only,
            root_layout=root_layout.value, csv_output=csv_output, finder=finder, shard=shard,
            start_over=start_over, io_process=io_process)
        result = run_dask_job(job, DaskConfig(scheduler, workers, chunk_size), say=typer.echo) \
            if executor is Executor.dask else run_reco_job(job, say=typer.echo)
    except (FrameworkError, ValueError, OSError) as err:  # located errors: one line
        if os.environ.get("SONIC_EXATRKX_DEBUG") == "1":
            raise
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(code=1) from err
    for line in result.lines():
        typer.echo(line)
    if result.failed:  # --continue-on-error: a batch system must see it
        typer.echo(f"error: {len(result.failed)} events failed (listed in "
                   f"{output / 'failed_events.csv'}); exit code {PARTIAL_FAILURE}", err=True)
        raise typer.Exit(code=PARTIAL_FAILURE)
