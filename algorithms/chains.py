"""Ready-made job chains, shared by the jobs layer, the CLI and the example job configs:
readers by input format, the conversion chain and the reconstruction chain."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from algorithms.csv_io import CsvEventReader, CsvEventWriter, CsvTrackWriter
from algorithms.exatrkx_track_finding import (
    INTERMEDIATES,
    ExaTrkXTrackFinding,
    TrackFindingConfig,
)
from algorithms.performance import TrackFindingPerformance
from algorithms.root_io import RootSpacePointReader, RootSpacePointWriter, RootTrackWriter
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
    duplicates: str = "warn",
) -> Reader:
    """The space point reader for a CSV directory, a ROOT file or a TrackML directory;
    ``duplicates`` ("warn" | "drop"): exact duplicate space points (CSV input)."""
    path = Path(input_path)
    if input_format == "csv":
        kinds = ("spacepoint", "particles") if truth else ("spacepoint",)
        return CsvEventReader(path, kinds=kinds, truth=truth, on_bad_event=on_bad_event,
                              duplicates=duplicates)
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
    output_dir: str | os.PathLike[str] | None,
    finder: TrackFindingConfig | None = None,
    *,
    input_format: str = "csv",
    performance: bool | None = None,
    plots: bool = True,
    on_bad_event: str = "fail",
    duplicates: str = "warn",
) -> tuple[ExaTrkXTrackFinding, TrackFindingPerformance | None]:
    """Reader -> :class:`ExaTrkXTrackFinding` (configured by ``finder``: where the
    inference runs and how) -> tracks (CSV + ROOT, unless ``output_dir`` is None) ->
    performance. ``performance=None`` measures it when the input has truth (ACTS CSV with
    hits, particles and the measurement-simhit map). ``on_bad_event`` ("fail" | "skip")
    is the reader's answer to a malformed event. Edge-level performance needs in-process
    inference (the served models return labels only)."""
    cfg = finder if finder is not None else TrackFindingConfig()
    if performance is None:
        performance = output_dir is not None and input_format == "csv" \
            and csv_has_truth(input_path)
    if performance and (input_format != "csv" or output_dir is None):
        raise ConfigurationError("performance needs ACTS CSV input with truth and an output")
    edges = performance and not cfg.remote
    if edges:
        cfg = replace(cfg, output_intermediates=INTERMEDIATES)
    seq.add_reader(make_reader(input_path, input_format=input_format, truth=performance,
                               on_bad_event=on_bad_event, duplicates=duplicates))
    algorithm = ExaTrkXTrackFinding(cfg)
    seq.add_algorithm(algorithm)
    if output_dir is None:
        return algorithm, None
    out = Path(output_dir)
    seq.add_writer(CsvTrackWriter(out / "tracks"))
    seq.add_writer(RootTrackWriter(out / "tracks.root"))
    if not performance:
        return algorithm, None
    perf = TrackFindingPerformance(out, input_intermediates=INTERMEDIATES if edges else None,
                                   plots=plots,
                                   gnn_cut=algorithm.pipeline.config.gnn.cut if edges else None)
    seq.add_writer(perf)
    return algorithm, perf
