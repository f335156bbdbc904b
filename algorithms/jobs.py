"""Ready-made job chains, shared by the CLI and the example job configs."""

from __future__ import annotations

import os
from pathlib import Path

from algorithms.csv_io import CsvEventReader, CsvEventWriter
from algorithms.performance import TrackFindingPerformance
from algorithms.root_io import RootSpacePointReader, RootSpacePointWriter
from algorithms.trackml_io import TrackMLReader
from sonic_exatrkx.framework import ConfigurationError, Reader, Sequencer
from sonic_exatrkx.io import acts_csv

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
        kinds = ("spacepoint", "particles") if truth else ("spacepoint",)
        return CsvEventReader(path, kinds=kinds, truth=truth, on_bad_event=on_bad_event)
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


def csv_has_truth(input_dir: str | os.PathLike[str]) -> bool:
    """Whether an ACTS CSV folder has the files that truth matching needs."""
    try:
        return all(acts_csv.list_events(input_dir, stem) for stem in
                   ("hits", "particles", "measurement-simhit-map"))
    except (FileNotFoundError, ValueError):
        return False


def add_reco_chain(
    seq: Sequencer,
    input_path: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    *,
    input_format: str = "csv",
    models: str | os.PathLike[str] | None = None,
    pipeline_threads: int = 1,
    performance: bool | None = None,
    on_bad_event: str = "fail",
) -> TrackFindingPerformance | None:
    """Read space points -> ExaTrkX (in-process) -> tracks (CSV + ROOT) -> performance.

    `performance=None` measures it when the input has truth (ACTS CSV with hits,
    particles and the measurement-simhit map). Returns the performance writer, if any.
    """
    from algorithms.exatrkx_sonic import add_sonic_reco_chain  # it builds on this module

    _, perf = add_sonic_reco_chain(
        seq, input_path, output_dir, input_format=input_format, performance=performance,
        on_bad_event=on_bad_event, models=models, num_threads=pipeline_threads)
    return perf
