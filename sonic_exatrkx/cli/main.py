"""`sonic-exatrkx` command line: thin wrappers that parse options and call the library."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from sonic_exatrkx.cli.bench import bench_app
from sonic_exatrkx.cli.merge import merge
from sonic_exatrkx.cli.run import run
from sonic_exatrkx.cli.serve import serve
from sonic_exatrkx.cli.simulate import simulate
from sonic_exatrkx.cli.train import train

app = typer.Typer(
    name="sonic-exatrkx",
    help="ExaTrkX GNN track finding in an event loop, run locally or on a Triton server.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command("run")(run)
app.command("merge")(merge)
app.command("simulate")(simulate)
app.command("serve")(serve)
app.command("train")(train)
app.add_typer(bench_app, name="bench")


@app.callback()
def main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(name)-28s %(levelname)-7s %(message)s",
    )
