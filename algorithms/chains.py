"""Ready-made job chains, shared by the jobs layer, the CLI and the example job configs:
readers by input format, the conversion chain and the reconstruction chain."""

from __future__ import annotations

import os
from dataclasses import asdict, replace
from pathlib import Path

from algorithms.csv_io import CsvEventReader, CsvEventWriter, CsvTrackWriter
from algorithms.exatrkx_track_finding import (
    INTERMEDIATES,
    ExaTrkXTrackFinding,
    TrackFindingConfig,
)
from algorithms.input_options import InputOptions
from algorithms.keys import SPACEPOINT_WEIGHTS
from algorithms.performance import TrackFindingPerformance, sample_label, served_edge_note
from algorithms.root_io import RootSpacePointReader, RootSpacePointWriter, RootTrackWriter
from algorithms.trackml_io import TrackMLReader
from sonic_exatrkx.framework import ConfigurationError, Reader, Sequencer
from sonic_exatrkx.io import acts_csv
from sonic_exatrkx.io.acts_paths import event_source

INPUT_FORMATS = ("csv", "root", "trackml")


def make_reader(
    input_path: str | os.PathLike[str],
    *,
    input_format: str = "csv",
    truth: bool = True,
    options: InputOptions | None = None,
) -> Reader:
    """The space point reader for a CSV folder, a ROOT file or a TrackML folder (a folder
    or one event file of it: only that event); ``options``: what it does with malformed
    events, duplicates, NaN hits and missing spacepoint files (:class:`InputOptions`).
    With ``truth``, the particle ids, the particles and (TrackML truth with a ``weight``
    column) the TrackML score weights too."""
    path = Path(input_path)
    opts = options if options is not None else InputOptions()
    if opts.spacepoints_from is not None and input_format != "csv":
        raise ConfigurationError(f"spacepoints_from ({opts.spacepoints_from}) builds space "
                                 f"points from ACTS CSV files, not {input_format} input")
    if input_format == "csv":
        kinds = ("spacepoint", "particles") if truth else ("spacepoint",)
        return CsvEventReader(path, kinds=kinds, truth=truth, **asdict(opts))
    if input_format == "root":
        if opts.on_bad_event != "fail":
            raise ConfigurationError("on_bad_event='skip' is for CSV and TrackML events; a "
                                     "ROOT file is read whole")
        return RootSpacePointReader(path, duplicates=opts.duplicates, nonfinite=opts.nonfinite)
    if input_format == "trackml":
        weights = truth and trackml_has_weights(path)
        return TrackMLReader(path, truth=truth, particles=truth, weights=weights,
                             on_bad_event=opts.on_bad_event, duplicates=opts.duplicates,
                             nonfinite=opts.nonfinite)
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
    options: InputOptions | None = None,
) -> Sequencer:
    """Read space points and write them to `<output_dir>/spacepoints.root` (and CSV)."""
    out = Path(output_dir)
    seq.add_reader(
        make_reader(input_path, input_format=input_format, truth=False, options=options)
    )
    seq.add_writer(RootSpacePointWriter(out / "spacepoints.root", layout=root_layout))
    if csv_output:
        seq.add_writer(CsvEventWriter(out / "csv"))
    return seq


def csv_has_truth(input_dir: str | os.PathLike[str], spacepoints_from: str | None = None
                  ) -> bool:
    """Whether an ACTS CSV folder (or the folder of an event file) has the files that
    truth matching needs (space points built from hits need no measurement map)."""
    stems = ("hits", "particles") if spacepoints_from == "hits" else \
        ("hits", "particles", "measurement-simhit-map")
    try:
        directory, _ = event_source(input_dir)
        return all(acts_csv.list_events(directory, stem) for stem in stems)
    except (FileNotFoundError, ValueError):
        return False


def trackml_has_truth(input_dir: str | os.PathLike[str]) -> bool:
    """Whether a TrackML folder (or the folder of an event file) has truth and particle
    files (``-particles.csv`` or ACTS-Fatras's ``-fatras-particles.csv``)."""
    try:
        directory, _ = event_source(input_dir)
        stems = acts_csv.event_files(directory, "event*-truth.csv")
    except (FileNotFoundError, ValueError):
        return False
    return "truth" in stems and bool({"particles", "fatras-particles"} & set(stems))


def trackml_has_weights(input_dir: str | os.PathLike[str]) -> bool:
    """Whether the TrackML truth of the first event has the ``weight`` column."""
    try:
        return TrackMLReader(input_dir, truth=False).has_weights()
    except (FileNotFoundError, ValueError):
        return False  # the job's reader reports the problem


def has_truth(input_path: str | os.PathLike[str], input_format: str = "csv",
              spacepoints_from: str | None = None) -> bool:
    """Whether the input has what the tracking performance needs."""
    if input_format == "csv":
        return csv_has_truth(input_path, spacepoints_from)
    if input_format == "trackml":
        return trackml_has_truth(input_path)
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
    options: InputOptions | None = None,
) -> tuple[ExaTrkXTrackFinding, TrackFindingPerformance | None]:
    """Reader -> :class:`ExaTrkXTrackFinding` (configured by ``finder``: where the
    inference runs and how) -> tracks (CSV + ROOT, unless ``output_dir`` is None) ->
    performance. ``performance=None`` measures it when the input has truth (ACTS CSV with
    hits, particles and the measurement-simhit map; TrackML with truth and particles; the
    TrackML score uses the truth's ``weight`` column when it has one). ``options``: the
    reader's (:class:`InputOptions`). Edge-level performance needs in-process inference
    (the served models return labels only)."""
    cfg = finder if finder is not None else TrackFindingConfig()
    opts = options if options is not None else InputOptions()
    if performance is None:
        performance = output_dir is not None and has_truth(input_path, input_format,
                                                           opts.spacepoints_from)
    if performance and (input_format == "root" or output_dir is None):
        raise ConfigurationError("performance needs input with truth (ACTS CSV or TrackML) "
                                 "and an output folder")
    edges = performance and not cfg.remote
    if edges:
        cfg = replace(cfg, output_intermediates=INTERMEDIATES)
    reader = make_reader(input_path, input_format=input_format, truth=performance,
                         options=opts)
    seq.add_reader(reader)
    algorithm = ExaTrkXTrackFinding(cfg)
    seq.add_algorithm(algorithm)
    if output_dir is None:
        return algorithm, None
    out = Path(output_dir)
    seq.add_writer(CsvTrackWriter(out / "tracks"))
    seq.add_writer(RootTrackWriter(out / "tracks.root"))
    if not performance:
        return algorithm, None
    weights = isinstance(reader, TrackMLReader) and reader.weights is not None
    pipeline = algorithm.pipeline.config
    perf = TrackFindingPerformance(out, input_intermediates=INTERMEDIATES if edges else None,
                                   plots=plots,
                                   gnn_cut=pipeline.gnn.cut if edges else None,
                                   filter_cut=pipeline.filter.cut if edges else None,
                                   sample=sample_label(input_path),
                                   edge_note=None if edges else
                                   served_edge_note(str(cfg.service_option)),
                                   input_weights=SPACEPOINT_WEIGHTS if weights else None)
    seq.add_writer(perf)
    return algorithm, perf
