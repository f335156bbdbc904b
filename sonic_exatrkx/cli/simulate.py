"""`sonic-exatrkx simulate` and `sonic-exatrkx bench sim`: thin wrappers over
`sonic_exatrkx.sim` (imported inside the commands: ``--help`` imports no numpy work)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sonic_exatrkx.cli.choices import Sample

__all__ = ["bench_sim_cmd", "simulate"]


def _option_name(option: str) -> str:
    return "--" + option.replace("_", "-")


def simulate(
    sample: Annotated[Sample, typer.Option(help="Physics sample.")] = Sample.hnl,
    events: Annotated[int, typer.Option("--events", "-n", help="Number of events to simulate.")]
    = 10,
    skip: Annotated[int, typer.Option(help="First event number (for grid shards).")] = 0,
    pileup: Annotated[float, typer.Option(help="Mean number of pileup vertices (mu).")] = 0.0,
    seed: Annotated[int, typer.Option(help="Random seed; event i depends on (seed, i) only.")]
    = 42,
    output: Annotated[Path, typer.Option(
        "--output", "-o", help="Output folder for the ACTS CSV files.")] = Path("output/sim"),
    root: Annotated[bool, typer.Option(help="Also write spacepoints.root (tree spacePoints).")]
    = False,
    plot: Annotated[bool, typer.Option(help="Write a PNG of the first event (r-z and x-y).")]
    = False,
    noise_fraction: Annotated[float, typer.Option(help="Noise share of all space points.")]
    = 0.15,
    efficiency: Annotated[float, typer.Option(help="Hit detection efficiency.")] = 0.98,
    material_scale: Annotated[float, typer.Option(
        help="Scale of every layer's x/X0 (0 = no multiple scattering).")] = 1.0,
    bfield: Annotated[float, typer.Option(help="Solenoid field in tesla.")] = 2.0,
    progress: Annotated[bool | None, typer.Option(
        show_default="on a terminal", help="Progress bar (default: only when stderr is a "
        "terminal, so redirected logs get no bar frames).")] = None,
) -> None:
    """Simulate toy-detector events and write ACTS CSV (and optionally ROOT) files."""
    from sonic_exatrkx.sim import ConfigError, SimulationConfig, plot_event, simulate_event
    from sonic_exatrkx.sim.event import write_events

    if events < 0:
        raise typer.BadParameter(f"must be >= 0, got {events}", param_hint="--events")
    if skip < 0:
        raise typer.BadParameter(f"must be >= 0, got {skip}", param_hint="--skip")
    try:
        cfg = SimulationConfig(sample=sample.value, pileup=pileup, seed=seed,
                               noise_fraction=noise_fraction, efficiency=efficiency,
                               material_scale=material_scale, bfield=bfield)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc).split(": ", 1)[-1],
                                 param_hint=_option_name(exc.option)) from None
    if output.exists() and not output.is_dir():
        raise typer.BadParameter(f"{output} exists and is not a folder", param_hint="--output")
    written = write_events(cfg, output, events, skip=skip, root=root, progress=progress)
    cfg.geometry.to_csv(output / "detector.csv", modules=True)
    typer.echo(f"wrote {len(written)} {sample.value} events (pileup {pileup:g}, seed {seed}) "
               f"to {output}")
    if plot and written:
        png = plot_event(simulate_event(cfg, written[0]),
                         output / f"event{written[0]:09d}-display.png", geometry=cfg.geometry,
                         title=f"{sample.value}, pileup {pileup:g}, event {written[0]}")
        typer.echo(f"event display: {png}")


def bench_sim_cmd(
    samples: Annotated[list[Sample], typer.Option(
        "--sample", "--samples", help="Physics sample (repeat the option for several).")]
    = [Sample.hnl],  # noqa: B006 - typer needs a literal default
    events: Annotated[int, typer.Option(help="Events per row (at most).")] = 50,
    pileups: Annotated[list[float], typer.Option(
        "--pileup", "--pileups", help="Pileup value (repeat the option for several).")]
    = [0.0, 50.0, 200.0],  # noqa: B006 - typer needs a literal default
    time_budget: Annotated[float, typer.Option(help="Seconds per row (at most, roughly).")]
    = 20.0,
    write: Annotated[bool, typer.Option(help="Include writing the CSV files.")] = False,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 42,
) -> None:
    """Benchmark the simulation: events/s, s/event and hits/event (single process)."""
    from sonic_exatrkx.sim import ConfigError
    from sonic_exatrkx.sim.bench import bench_sim, format_table

    if events < 1:
        raise typer.BadParameter(f"must be >= 1, got {events}", param_hint="--events")
    try:
        rows = bench_sim(samples=[s.value for s in samples], events=events,
                         pileups=list(pileups), seed=seed,
                         time_budget=time_budget, write=write)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc).split(": ", 1)[-1],
                                 param_hint=_option_name(exc.option)) from None
    typer.echo(format_table(rows))
