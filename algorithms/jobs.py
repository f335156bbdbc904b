"""Ready-made job chains, shared by the CLI and the example job configs."""

from __future__ import annotations

import os
from pathlib import Path

from algorithms.csv_io import CsvEventReader, CsvEventWriter
from algorithms.root_io import RootSpacePointReader, RootSpacePointWriter
from algorithms.trackml_io import TrackMLReader
from sonic_exatrkx.framework import ConfigurationError, Reader, Sequencer

INPUT_FORMATS = ("csv", "root", "trackml")


def make_reader(
    input_path: str | os.PathLike[str],
    *,
    input_format: str = "csv",
    truth: bool = True,
    on_bad_event: str = "fail",
) -> Reader:
    """The space point reader for a CSV directory, a ROOT file or a TrackML directory."""
    path = Path(input_path)
    if input_format == "csv":
        return CsvEventReader(path, truth=truth, on_bad_event=on_bad_event)
    if input_format == "root":
        return RootSpacePointReader(path)
    if input_format == "trackml":
        return TrackMLReader(path, on_bad_event=on_bad_event)
    raise ConfigurationError(
        f"input_format must be one of {INPUT_FORMATS}, got {input_format!r}"
    )


def add_conversion_chain(
    seq: Sequencer,
    input_path: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    *,
    input_format: str = "csv",
    root_layout: str = "flat",
    csv_output: bool = False,
    on_bad_event: str = "fail",
) -> Sequencer:
    """Read space points and write them to `<output_dir>/spacepoints.root` (and CSV)."""
    out = Path(output_dir)
    seq.add_reader(
        make_reader(input_path, input_format=input_format, truth=False,
                    on_bad_event=on_bad_event)
    )
    seq.add_writer(RootSpacePointWriter(out / "spacepoints.root", layout=root_layout))
    if csv_output:
        seq.add_writer(CsvEventWriter(out / "csv"))
    return seq
