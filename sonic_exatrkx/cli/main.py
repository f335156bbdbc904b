"""`sonic-exatrkx` command line: thin wrappers that parse options and call the library.

Every subcommand module imports only typer, the choices and light library modules at the
top; torch, FAISS and tritonclient are imported inside the command bodies, so ``--help``
(and a refused option) starts in a fraction of a second.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Annotated

import typer

from sonic_exatrkx.cli.bench import bench_app
from sonic_exatrkx.cli.merge import merge
from sonic_exatrkx.cli.run import run
from sonic_exatrkx.cli.serve import serve
from sonic_exatrkx.cli.simulate import simulate
from sonic_exatrkx.cli.train import train
from sonic_exatrkx.cli.tune import tune

#: Set by --debug: commands re-raise errors (with their traceback) instead of one line.
DEBUG_ENV = "SONIC_EXATRKX_DEBUG"
#: Our loggers; every other library's records are shown from WARNING up (DEBUG with -v).
OURS = "sonic_exatrkx"
#: Loggers of ours whose INFO lines a command already says in its own words (a line once,
#: not as a log line and again on stdout); -v shows them.
SAID_BY_COMMANDS = ("sonic_exatrkx.server.launcher",)
LOG_FORMAT = "%(asctime)s %(name)-28s %(levelname)-7s %(message)s"

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
app.command("tune")(tune)
app.add_typer(bench_app, name="bench")


class _QuietThirdParty(logging.Filter):
    """Pass our records at their logger's level, others' only from ``level`` up: libraries
    such as distributed set their own loggers to INFO, so the root level alone does not
    keep their start-up chatter (which reads like a crash) off the terminal."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        ours = record.name == OURS or record.name.startswith(OURS + ".")
        return ours or record.levelno >= self.level


class _StderrHandler(logging.StreamHandler):
    """Writes to ``sys.stderr`` as it is at each record (test runners swap it)."""

    @property  # type: ignore[override]
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def configure_logging(verbose: bool = False, quiet: bool = False) -> None:
    """Our loggers at INFO (DEBUG with ``verbose``, WARNING with ``quiet``), everyone
    else's at WARNING (DEBUG with ``verbose``), one handler on stderr."""
    ours = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    others = logging.DEBUG if verbose else logging.WARNING
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(_QuietThirdParty(others))
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(others)
    logging.getLogger(OURS).setLevel(ours)
    for name in SAID_BY_COMMANDS:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.WARNING)
    if not verbose:  # Dask's worker processes configure their own logging from this
        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")


def _version(value: bool) -> None:
    if value:
        from sonic_exatrkx import __version__

        typer.echo(f"sonic-exatrkx {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    verbose: Annotated[bool, typer.Option(
        "--verbose", "-v", help="Debug logging, ours and every library's.")] = False,
    quiet: Annotated[bool, typer.Option(
        "--quiet", "-q", help="Only warnings and errors in the log (the results are still "
        "printed).")] = False,
    debug: Annotated[bool, typer.Option(
        help="Show the traceback of an error (for developers) instead of its one-line "
        "message.")] = False,
    version: Annotated[bool, typer.Option(
        "--version", is_eager=True, callback=_version, help="Print the version and exit.")]
    = False,
) -> None:
    if verbose and quiet:
        raise typer.BadParameter("give --verbose or --quiet, not both", param_hint="--quiet")
    if debug:
        os.environ[DEBUG_ENV] = "1"
    configure_logging(verbose=verbose, quiet=quiet)
