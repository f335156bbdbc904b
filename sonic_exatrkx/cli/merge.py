"""`sonic-exatrkx merge`: join the output folders of a job's shards."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sonic_exatrkx.framework import FrameworkError


def merge(
    folders: Annotated[list[Path], typer.Argument(help="The shards' output folders.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="New folder for the "
                      "merged outputs.")],
) -> None:
    """Merge shards (`run --shard I/N`) into the outputs of one unsharded run; fails naming
    every missing or doubled event and every conflicting setting."""
    from sonic_exatrkx.jobs import merge_outputs

    try:
        result = merge_outputs(folders, output, say=typer.echo)
    except FrameworkError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(code=1) from err
    for line in result.lines()[1:]:
        typer.echo(line)
