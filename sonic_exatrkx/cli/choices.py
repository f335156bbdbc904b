"""The command line's fixed choices as enums (typer lists them in --help, the shell can
complete them, and a wrong one is refused with typer's own message before any work; the
library takes the same words as strings and checks them too), and KEY=VALUE parsing."""

from __future__ import annotations

from enum import Enum

import typer


class Inference(str, Enum):
    local = "local"
    triton = "triton"
    auto = "auto"


class ServiceOptionName(str, Enum):
    custom = "custom"
    S0 = "S0"
    S1 = "S1"
    S2 = "S2"
    S3 = "S3"
    S4 = "S4"


class Mode(str, Enum):
    sync = "sync"
    pseudo_async = "pseudo-async"
    async_ = "async"


class Protocol(str, Enum):
    grpc = "grpc"
    http = "http"


class InputFormat(str, Enum):
    csv = "csv"
    root = "root"
    trackml = "trackml"


class RootLayout(str, Enum):
    flat = "flat"
    jagged = "jagged"


class Executor(str, Enum):
    local = "local"
    dask = "dask"


class GraphConstruction(str, Enum):
    metric_learning = "metric_learning"
    module_map = "module_map"


def parse_headers(items: list[str]) -> dict[str, str]:
    """``KEY=VALUE`` options as a dict (exit 2 naming a malformed one)."""
    pairs = [item.partition("=") for item in items]
    bad = [item for item, (k, eq, _) in zip(items, pairs, strict=True) if not (k and eq)]
    if bad:
        raise typer.BadParameter(f"expected KEY=VALUE, got {bad[0]!r}", param_hint="--header")
    return {k.strip(): v for k, _, v in pairs}
