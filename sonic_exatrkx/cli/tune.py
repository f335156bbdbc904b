"""`sonic-exatrkx tune`: scan the filter and GNN cuts of a models folder on validation
events and write a copy with the chosen ones.

Options only; the engine is :func:`sonic_exatrkx.jobs.tuning.run_cut_scan` (what it
measures and how it chooses: that module; imported in the command: ``--help`` imports no
torch).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sonic_exatrkx.cli.choices import Sample, TrackBuilder

__all__ = ["tune"]

#: The scan's defaults, as :class:`sonic_exatrkx.jobs.tuning.CutScanConfig` has them
#: (that module is not imported here: it would bring numpy into --help).
FILTER_CUTS = [0.1, 0.2, 0.3, 0.5, 0.7, 0.9]
GNN_CUTS = [0.5, 0.7, 0.8, 0.9, 0.95]


def tune(
    models: Annotated[Path, typer.Option(
        help="Models folder to tune (config.json + models).")],
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Write a copy of the models with the chosen cuts here, with "
        "cut_scan.csv / cut_scan.json; without it, only the table is printed.")] = None,
    pileups: Annotated[list[float], typer.Option(
        "--pileup", help="Pileup of the validation events (repeat the option: one setting "
        "is chosen for all).")] = [200.0],  # noqa: B006 - typer needs a literal default
    sample: Annotated[Sample, typer.Option(help="Physics sample of the validation events.")]
    = Sample.ttbar_like,
    events: Annotated[int, typer.Option(min=1, help="Validation events per pileup.")] = 3,
    seed: Annotated[int, typer.Option(
        help="Simulation seed of the validation events (never the held-out 12345).")] = 777,
    filter_cuts: Annotated[list[float], typer.Option(
        "--filter-cut", help="Filter cuts to scan (repeat the option).")]
    = FILTER_CUTS,  # noqa: B006 - typer needs a literal default
    gnn_cuts: Annotated[list[float], typer.Option(
        "--gnn-cut", help="GNN cuts to scan (repeat the option).")]
    = GNN_CUTS,  # noqa: B006 - typer needs a literal default
    track_builders: Annotated[list[TrackBuilder] | None, typer.Option(
        "--track-builder", help="Track builders to compare on every pair (repeat the "
        "option); default: the folder's own.")] = None,
    filter_max_edges: Annotated[int | None, typer.Option(
        min=0, help="The filter's max_edges: at most this many GNN input edges per event, "
        "the highest scores (0: all); default: the folder's.")] = None,
    max_gnn_edges: Annotated[int, typer.Option(
        min=0, help="Mean GNN input edges per event allowed (the time budget; 0: none).")]
    = 250_000,
    pipeline_threads: Annotated[int, typer.Option(
        min=1, help="Torch / FAISS threads of the pipeline.")] = 2,
    module_map_range_bits: Annotated[int, typer.Option(
        min=0, max=8, help="Scan and write the module map with its ranges on a grid of "
        "this many bits per bound (8: a fourth of the file, windows a 255th of their "
        "layer pair wider; what a shipped folder needs); 0: the map as it is.")] = 0,
) -> None:
    """Choose the filter and GNN cuts (and track builder) on validation events: the
    setting with the best mean pT > 1 GeV efficiency minus fake rate over the pileups whose
    GNN input fits the budget at each."""
    from sonic_exatrkx.jobs.tuning import CutScanConfig, run_cut_scan

    try:
        config = CutScanConfig(
            models=models, pileups=tuple(pileups), sample=sample.value, events=events,
            seed=seed, filter_max_edges=filter_max_edges,
            filter_cuts=tuple(filter_cuts), gnn_cuts=tuple(gnn_cuts),
            track_builders=tuple(b.value for b in track_builders or ()),
            max_gnn_edges=max_gnn_edges or None, threads=pipeline_threads,
            module_map_range_bits=module_map_range_bits)
        result = run_cut_scan(config, output,
                              say=lambda line: typer.echo(line, err=True))
    except (ValueError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from None
    for line in result.lines():
        typer.echo(line)
    if output is not None:
        typer.echo(f"wrote {output} (config.json with the chosen cuts, cut_scan.csv, "
                   "cut_scan.json)")
