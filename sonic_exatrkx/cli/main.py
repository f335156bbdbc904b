"""`sonic-exatrkx` command line: thin wrappers that parse options and call the library."""

from __future__ import annotations

import logging
import os
from typing import Annotated

import typer

from sonic_exatrkx.cli.bench import bench_app
from sonic_exatrkx.cli.merge import merge
from sonic_exatrkx.cli.run import run
from sonic_exatrkx.cli.serve import serve
from sonic_exatrkx.cli.simulate import simulate
from sonic_exatrkx.cli.train import train

#: Set by --debug: commands re-raise errors (with their traceback) instead of one line.
DEBUG_ENV = "SONIC_EXATRKX_DEBUG"

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


def _version(value: bool) -> None:
    if value:
        from sonic_exatrkx import __version__

        typer.echo(f"sonic-exatrkx {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
    debug: Annotated[bool, typer.Option(help="Show the traceback of an error (for "
                     "developers) instead of its one-line message.")] = False,
    version: Annotated[bool, typer.Option("--version", is_eager=True, callback=_version,
                                          help="Print the version and exit.")] = False,
) -> None:
    if debug:
        os.environ[DEBUG_ENV] = "1"
    # Our loggers at INFO (DEBUG with -v); third-party ones (FAISS's loader, uproot,
    # distributed) at WARNING, so their start-up chatter does not look like a crash.
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(name)-28s %(levelname)-7s %(message)s",
    )
    logging.getLogger("sonic_exatrkx").setLevel(logging.DEBUG if verbose else logging.INFO)
