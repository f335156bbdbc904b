"""The reco chain with ExaTrkX wherever the job says (local, Triton, a service option)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from algorithms.csv_io import CsvTrackWriter
from algorithms.exatrkx_local import INTERMEDIATES, ExaTrkXTrackFinding
from algorithms.jobs import csv_has_truth, make_reader
from algorithms.performance import TrackFindingPerformance
from algorithms.root_io import RootTrackWriter
from sonic_exatrkx.framework import ConfigurationError, Sequencer


def add_sonic_reco_chain(
    seq: Sequencer,
    input_path: str | os.PathLike[str],
    output_dir: str | os.PathLike[str] | None,
    *,
    input_format: str = "csv",
    performance: bool | None = None,
    plots: bool = True,
    on_bad_event: str = "fail",
    **exatrkx: Any,
) -> tuple[ExaTrkXTrackFinding, TrackFindingPerformance | None]:
    """Reader -> :class:`ExaTrkXTrackFinding` (``exatrkx`` keywords: inference, server,
    service_option, mode, ...) -> tracks (CSV + ROOT, unless ``output_dir`` is None) ->
    performance (when the input has truth). ``on_bad_event`` ("fail" | "skip") is the
    reader's answer to a malformed event. Edge-level performance needs in-process
    inference (the served models return labels only)."""
    if performance is None:
        performance = output_dir is not None and input_format == "csv" \
            and csv_has_truth(input_path)
    if performance and (input_format != "csv" or output_dir is None):
        raise ConfigurationError("performance needs ACTS CSV input with truth and an output")
    local = exatrkx.get("inference", "local") == "local"
    seq.add_reader(make_reader(input_path, input_format=input_format, truth=performance,
                               on_bad_event=on_bad_event))
    finder = ExaTrkXTrackFinding(
        output_intermediates=INTERMEDIATES if performance and local else None, **exatrkx)
    seq.add_algorithm(finder)
    if output_dir is None:
        return finder, None
    out = Path(output_dir)
    seq.add_writer(CsvTrackWriter(out / "tracks"))
    seq.add_writer(RootTrackWriter(out / "tracks.root"))
    if not performance:
        return finder, None
    perf = TrackFindingPerformance(out, input_intermediates=INTERMEDIATES if local else None,
                                   plots=plots,
                                   gnn_cut=finder.pipeline.config.gnn.cut if local else None)
    seq.add_writer(perf)
    return finder, perf
