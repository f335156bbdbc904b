"""`sonic-exatrkx run`: the main reconstruction job."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from sonic_exatrkx.cli.choices import (
    Executor,
    Inference,
    InputFormat,
    Mode,
    NonFinite,
    Protocol,
    RootLayout,
    ServiceOptionName,
    SpacepointsFrom,
    parse_headers,
)
from sonic_exatrkx.framework import FrameworkError

#: Exit code of a job that finished with failed events (``--continue-on-error``).
PARTIAL_FAILURE = 3


def run(
    input: Annotated[
        Path | None,
        typer.Option("--input", "-i", help="Event folder (CSV/TrackML), one event file of "
                     "it (only that event), or a ROOT file; default: the shipped samples."),
    ] = None,
    input_format: Annotated[
        InputFormat, typer.Option(help="ACTS CSV, a ROOT spacePoints tree, or TrackML.")
    ] = InputFormat.csv,
    output: Annotated[Path, typer.Option("--output", "-o", help="Output folder.")] = Path(
        "output"
    ),
    events: Annotated[int | None, typer.Option("--events", "-n", help="Events to process "
                                               "(default: all).")] = None,
    skip: Annotated[int, typer.Option(help="Events to skip first (grid sharding).")] = 0,
    threads: Annotated[int | None, typer.Option("--threads", "-j", help="Worker threads "
                                                "(default: all cores).")] = None,
    in_flight: Annotated[int | None, typer.Option(help="Events in flight at once "
                                                  "(default: threads).")] = None,
    models: Annotated[Path | None, typer.Option(help="Model folder (default: the shipped "
                                                "data/models).")] = None,
    pipeline_threads: Annotated[int, typer.Option(help="torch/FAISS threads per event "
                                                  "(keep threads x this <= cores).")] = 1,
    performance: Annotated[bool | None, typer.Option(help="Measure the tracking performance "
                           "(default: when the input has truth).")] = None,
    convert_only: Annotated[bool, typer.Option(help="No track finding: only read the space "
                                               "points and write them as ROOT.")] = False,
    root_layout: Annotated[RootLayout, typer.Option(help="ACTS's flat or our jagged "
                                                    "layout, for --convert-only.")]
    = RootLayout.flat,
    csv_output: Annotated[bool, typer.Option(help="With --convert-only, also write the space "
                                             "points as CSV.")] = False,
    skip_bad_events: Annotated[
        bool, typer.Option(help="Warn and skip malformed events instead of failing.")
    ] = False,
    drop_duplicates: Annotated[bool, typer.Option(help="Drop space points that repeat "
                               "another's x, y, z (default: warn with the count).")] = False,
    nonfinite: Annotated[NonFinite, typer.Option(help="Hits with NaN/inf positions: an "
                         "error naming the line, or drop them (counted in the summary).")]
    = NonFinite.error,
    spacepoints_from: Annotated[SpacepointsFrom | None, typer.Option(help="ACTS CSV without "
                                "spacepoint files: one space point per measurement (at its "
                                "simulated hit) or per hit; true positions (docs/jobs.md).")]
    = None,
    continue_on_error: Annotated[
        bool, typer.Option(help="Record failing events in failed_events.csv, go on with the "
                           "others, and exit with code 3.")
    ] = False,
    inference: Annotated[Inference, typer.Option(help="Where ExaTrkX runs: this process, a "
                         "Triton server, or auto (the server if it answers, else here).")]
    = Inference.local,
    server: Annotated[list[str] | None, typer.Option(help="host:port of a Triton server "
                      "(gRPC, or HTTP with --protocol http); repeat for failover order. "
                      "Without it, --inference triton starts a local server from --models "
                      "on 127.0.0.1 and stops it at the end.")] = None,
    service_option: Annotated[ServiceOptionName, typer.Option(help="What is served: custom "
                              "(whole pipeline, one request), S0..S4 (S4: the ensemble).")]
    = ServiceOptionName.custom,
    mode: Annotated[Mode | None, typer.Option(help="Who waits for the inference (default: "
                    "sync locally, async for a server).")] = None,
    allowed_tries: Annotated[int, typer.Option(help="Tries per server on recoverable "
                             "failures.")] = 3,
    fallback_local: Annotated[bool, typer.Option(help="Run events locally when every "
                              "server fails.")] = False,
    timeout: Annotated[float | None, typer.Option(help="Per-request timeout (s).")] = None,
    protocol: Annotated[Protocol, typer.Option(help="Transport to the server.")]
    = Protocol.grpc,
    shared_memory: Annotated[bool, typer.Option(help="Tensors through system shared "
                             "memory (server on this node).")] = False,
    cores: Annotated[int | None, typer.Option(help="Cores to split between the job and the "
                     "server it starts (default: all); the split is printed.")] = None,
    tls_root_cert: Annotated[Path | None, typer.Option(help="PEM root certificate: gRPC "
                             "over TLS to --server.")] = None,
    header: Annotated[list[str] | None, typer.Option(help="KEY=VALUE sent with every "
                      "request (e.g. a token); repeat for more.")] = None,
    metrics_port: Annotated[int | None, typer.Option(help="Serve client metrics "
                            "(Prometheus) on 127.0.0.1:PORT during the job.")] = None,
    metrics_file: Annotated[Path | None, typer.Option(help="Write client metrics as a "
                            "Prometheus textfile at the end (batch jobs).")] = None,
    shard: Annotated[str | None, typer.Option(help="I/N: run block I (from 0) of N of the "
                     "events; join the shards with `sonic-exatrkx merge`.")] = None,
    start_over: Annotated[bool, typer.Option(help="Replace the outputs of another job in "
                          "--output instead of refusing (the same job resumes).")] = False,
    executor: Annotated[Executor, typer.Option(help="This process, or dask (chunks of "
                        "events as Dask tasks, then one merge).")] = Executor.local,
    scheduler: Annotated[str | None, typer.Option(help="Dask scheduler address (default: "
                         "a LocalCluster of --workers processes).")] = None,
    workers: Annotated[int, typer.Option(help="LocalCluster worker processes.")] = 2,
    chunk_size: Annotated[int, typer.Option(help="Events per Dask task.")] = 16,
) -> None:
    """Find tracks: read space points, run ExaTrkX (in this process or on Triton), write
    tracks (CSV and ROOT) and, with truth, the tracking performance; print timing and
    physics summaries."""
    from algorithms.exatrkx_track_finding import TrackFindingConfig
    from sonic_exatrkx.jobs import RecoJobConfig, run_reco_job
    from sonic_exatrkx.jobs.dask_executor import DaskConfig, run_dask_job
    from sonic_exatrkx.sonic import RetryPolicy, TritonOptions

    try:
        finder = TrackFindingConfig(
            models=models, pipeline_threads=pipeline_threads,
            inference="local" if convert_only else inference.value,
            servers=tuple(server or ()), service_option=service_option.value,
            mode=mode.value if mode else None, metrics_port=metrics_port,
            metrics_file=metrics_file, triton=TritonOptions(
                protocol=protocol.value, timeout_s=timeout, fallback_local=fallback_local,
                tls_root_certificates=tls_root_cert, headers=parse_headers(header or []),
                shared_memory=shared_memory, retry=RetryPolicy(allowed_tries=allowed_tries)))
        job = RecoJobConfig(
            input=input, input_format=input_format.value, output=output, events=events, skip=skip,
            threads=threads, in_flight=in_flight, cores=cores, performance=performance,
            on_bad_event="skip" if skip_bad_events else "fail",
            duplicates="drop" if drop_duplicates else "warn",
            nonfinite="drop" if nonfinite is NonFinite.drop else "raise",
            spacepoints_from=spacepoints_from.value if spacepoints_from else None,
            continue_on_error=continue_on_error, convert_only=convert_only,
            root_layout=root_layout.value, csv_output=csv_output, finder=finder, shard=shard,
            start_over=start_over)
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
