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
) -> None:
    """Find tracks: read space points, run ExaTrkX in this process, write tracks (CSV and
    ROOT) and, with truth, the tracking performance; print timing and physics summaries."""
    from algorithms.jobs import add_conversion_chain, add_reco_chain

    input_path = input if input is not None else sample_events_dir()
    seq = Sequencer(
        events=events, skip=skip, num_threads=threads, max_in_flight=in_flight,
        output_dir=output, continue_on_error=continue_on_error,
    )
    on_bad_event = "skip" if skip_bad_events else "fail"
    perf = None
    try:
        if convert_only:
            add_conversion_chain(
                seq, input_path, output, input_format=input_format, root_layout=root_layout,
                csv_output=csv_output, on_bad_event=on_bad_event,
            )
        else:
            perf = add_reco_chain(
                seq, input_path, output, input_format=input_format, models=models,
                pipeline_threads=pipeline_threads, performance=performance,
                on_bad_event=on_bad_event,
            )
        summary = seq.run()
    except (FrameworkError, InputFormatError, FileNotFoundError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(code=1) from err
    typer.echo(f"sonic-exatrkx run: {summary.line()}")
    if perf is not None:
        typer.echo(perf.summary_text())
    produced = "spacepoints.root" if convert_only else "tracks/, tracks.root"
    if perf is not None:
        produced += ", performance.txt/.json, efficiency_vs_*.png, edge_scores.png"
    typer.echo(f"outputs in {output.resolve()}: timing.csv, {produced}")
