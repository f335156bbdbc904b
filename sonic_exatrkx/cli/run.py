"""`sonic-exatrkx run`: the main reconstruction job."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sonic_exatrkx.framework import FrameworkError, Sequencer
from sonic_exatrkx.io.errors import InputFormatError
from sonic_exatrkx.paths import sample_events_dir


def run(
    input: Annotated[
        Path | None,
        typer.Option("--input", "-i", help="Event directory (CSV/TrackML) or ROOT file; "
                     "default: the shipped sample events."),
    ] = None,
    input_format: Annotated[
        str, typer.Option(help="csv (ACTS CSV), root (spacePoints tree) or trackml.")
    ] = "csv",
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
    root_layout: Annotated[str, typer.Option(help="flat (ACTS) or jagged, for "
                                             "--convert-only.")] = "flat",
    csv_output: Annotated[bool, typer.Option(help="With --convert-only, also write the space "
                                             "points as CSV.")] = False,
    skip_bad_events: Annotated[
        bool, typer.Option(help="Warn and skip malformed events instead of failing.")
    ] = False,
    continue_on_error: Annotated[
        bool, typer.Option(help="Record failing events and go on with the others.")
    ] = False,
    inference: Annotated[str, typer.Option(help="Where ExaTrkX runs: local (this "
                         "process), triton (a Triton server) or auto (the server if it "
                         "answers, else local).")] = "local",
    server: Annotated[list[str] | None, typer.Option(help="host:port of a Triton server "
                      "(gRPC, or HTTP with --protocol http); repeat for failover order. "
                      "Without it, --inference triton starts a local server from --models "
                      "on 127.0.0.1 and stops it at the end.")] = None,
    service_option: Annotated[str, typer.Option(help="What is served: custom (whole "
                              "pipeline, one request), S0..S4 (S4: the ensemble).")] = "custom",
    mode: Annotated[str | None, typer.Option(help="sync, pseudo-async or async (default: "
                    "sync locally, async for a server).")] = None,
    allowed_tries: Annotated[int, typer.Option(help="Tries per server on recoverable "
                             "failures.")] = 3,
    fallback_local: Annotated[bool, typer.Option(help="Run events locally when every "
                              "server fails.")] = False,
    timeout: Annotated[float | None, typer.Option(help="Per-request timeout (s).")] = None,
    protocol: Annotated[str, typer.Option(help="grpc or http.")] = "grpc",
    shared_memory: Annotated[bool, typer.Option(help="Tensors through system shared "
                             "memory (server on this node).")] = False,
    cores: Annotated[int | None, typer.Option(help="Cores to split between the job and the "
                     "server it starts (default: all); the split is printed.")] = None,
) -> None:
    """Find tracks: read space points, run ExaTrkX (in this process or on Triton), write
    tracks (CSV and ROOT) and, with truth, the tracking performance; print timing and
    physics summaries."""
    from algorithms.exatrkx_local import INFERENCE, default_model_dir
    from algorithms.exatrkx_sonic import add_sonic_reco_chain
    from algorithms.jobs import add_conversion_chain
    from sonic_exatrkx.jobs import exatrkx_keywords, placement, sequencer_threads

    if inference not in INFERENCE:
        typer.echo(f"error: --inference must be one of {', '.join(INFERENCE)}, got "
                   f"{inference!r}", err=True)
        raise typer.Exit(code=2)
    input_path = input if input is not None else sample_events_dir()
    on_bad_event = "skip" if skip_bad_events else "fail"
    perf = finder = None
    try:
        with placement("local" if convert_only else inference, server,
                       service_option=service_option, models=models or default_model_dir(),
                       cores=cores, threads=threads, protocol=protocol,
                       say=typer.echo) as where:
            loop_threads, open_events = sequencer_threads(where, threads, in_flight)
            seq = Sequencer(
                events=events, skip=skip, num_threads=loop_threads,
                max_in_flight=open_events, output_dir=output,
                continue_on_error=continue_on_error,
            )
            if convert_only:
                add_conversion_chain(
                    seq, input_path, output, input_format=input_format,
                    root_layout=root_layout, csv_output=csv_output, on_bad_event=on_bad_event,
                )
            else:
                remote = {} if where.inference == "local" else {
                    "service_option": service_option, "allowed_tries": allowed_tries,
                    "fallback_local": fallback_local, "timeout_s": timeout,
                    "protocol": protocol, "shared_memory": shared_memory}
                finder, perf = add_sonic_reco_chain(
                    seq, input_path, output, input_format=input_format, models=models,
                    num_threads=pipeline_threads, performance=performance,
                    on_bad_event=on_bad_event,
                    **exatrkx_keywords(where, mode=mode, **remote),
                )
            summary = seq.run()
    except (FrameworkError, InputFormatError, FileNotFoundError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(code=1) from err
    typer.echo(f"sonic-exatrkx run: {summary.line()}")
    if finder is not None and where.inference != "local":
        typer.echo(finder.stats_summary())
    if perf is not None:
        typer.echo(perf.summary_text())
    produced = "spacepoints.root" if convert_only else "tracks/, tracks.root"
    if perf is not None:
        produced += ", performance.txt/.json, efficiency_vs_*.png, edge_scores.png"
    typer.echo(f"outputs in {output.resolve()}: timing.csv, {produced}")
