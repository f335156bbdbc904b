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
    root_layout: Annotated[str, typer.Option(help="flat (ACTS) or jagged.")] = "flat",
    csv_output: Annotated[bool, typer.Option(help="Also write the space points as CSV.")] = False,
    skip_bad_events: Annotated[
        bool, typer.Option(help="Warn and skip malformed events instead of failing.")
    ] = False,
    continue_on_error: Annotated[
        bool, typer.Option(help="Record failing events and go on with the others.")
    ] = False,
) -> None:
    """Read space points and write them out (ROOT, optionally CSV) with a timing summary.

    Track finding joins this chain with the ExaTrkX pipeline (issue #5).
    """
    from algorithms.jobs import add_conversion_chain  # algorithms import the library

    input_path = input if input is not None else sample_events_dir()
    seq = Sequencer(
        events=events, skip=skip, num_threads=threads, max_in_flight=in_flight,
        output_dir=output, continue_on_error=continue_on_error,
    )
    try:
        add_conversion_chain(
            seq, input_path, output, input_format=input_format, root_layout=root_layout,
            csv_output=csv_output, on_bad_event="skip" if skip_bad_events else "fail",
        )
        summary = seq.run()
    except (FrameworkError, InputFormatError, FileNotFoundError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(code=1) from err
    typer.echo(f"sonic-exatrkx run: {summary.line()}")
    typer.echo(f"outputs in {output.resolve()} (timing.csv, spacepoints.root)")
