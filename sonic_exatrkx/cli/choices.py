"""The command line's fixed choices as enums: typer lists them in --help, the shell can
complete them, and a wrong one is refused with typer's own message before any import work.
The library takes the same words as strings and checks them too (tests/cli/test_choices.py
holds each enum equal to the library's tuple). Also KEY=VALUE parsing.

Light on purpose: only the standard library and typer, so ``--help`` stays fast (no torch).
"""

from __future__ import annotations

from enum import Enum

import typer


class Inference(str, Enum):
    """Where ExaTrkX runs (``algorithms.exatrkx_track_finding.INFERENCE``)."""

    local = "local"
    triton = "triton"
    auto = "auto"


class ServiceOptionName(str, Enum):
    """What is served (``sonic_exatrkx.sonic.service_option.SERVICE_OPTIONS``)."""

    custom = "custom"
    custom_batched = "custom-batched"
    S0 = "S0"
    S1 = "S1"
    S2 = "S2"
    S3 = "S3"
    S4 = "S4"


class Mode(str, Enum):
    """Who waits for the inference (``sonic_exatrkx.sonic.producer.MODES``)."""

    sync = "sync"
    pseudo_async = "pseudo-async"
    async_ = "async"


class Protocol(str, Enum):
    grpc = "grpc"
    http = "http"


class OnTimeout(str, Enum):
    """What a request timeout means (``sonic_exatrkx.sonic.retry.ON_TIMEOUT``)."""

    retry = "retry"
    fail = "fail"


class Compression(str, Enum):
    """Request compression (``sonic_exatrkx.sonic.options.COMPRESSION``, besides none)."""

    gzip = "gzip"
    deflate = "deflate"


class Balance(str, Enum):
    """How requests spread over servers (``sonic_exatrkx.sonic.options.BALANCE``)."""

    least_outstanding = "least-outstanding"
    failover = "failover"


class InputFormat(str, Enum):
    csv = "csv"
    root = "root"
    trackml = "trackml"


class NonFinite(str, Enum):
    """Hits / space points with NaN or inf positions: a located error, or left out."""

    error = "error"
    drop = "drop"


class SpacepointsFrom(str, Enum):
    """Space points for ACTS CSV output without spacepoint files."""

    measurements = "measurements"
    hits = "hits"


class RootLayout(str, Enum):
    flat = "flat"
    jagged = "jagged"


class Executor(str, Enum):
    local = "local"
    dask = "dask"


class Sample(str, Enum):
    """Toy-simulation physics samples (``sonic_exatrkx.sim.config.SAMPLES``)."""

    hnl = "hnl"
    ttbar_like = "ttbar-like"
    minbias = "minbias"


class TrackBuilder(str, Enum):
    """Track building from the GNN's edges (``sonic_exatrkx.exatrkx.tracks.TRACK_BUILDERS``)."""

    components = "components"
    best_edges = "best_edges"
    best_outgoing = "best_outgoing"
    junction_removal = "junction_removal"


def values(choice: type[Enum]) -> tuple[str, ...]:
    """The words of an enum, in order (for argparse ``choices=`` in examples/)."""
    return tuple(member.value for member in choice)


class GraphConstruction(str, Enum):
    """Graph construction (``sonic_exatrkx.exatrkx.module_map``): the trained embedding and
    a radius search, or a module map built from simulated truth."""

    metric_learning = "metric_learning"
    module_map = "module_map"


def parse_headers(items: list[str]) -> dict[str, str]:
    """``KEY=VALUE`` options as a dict (exit 2 naming a malformed one)."""
    pairs = [item.partition("=") for item in items]
    bad = [item for item, (k, eq, _) in zip(items, pairs, strict=True) if not (k and eq)]
    if bad:
        raise typer.BadParameter(f"expected KEY=VALUE, got {bad[0]!r}", param_hint="--header")
    return {k.strip(): v for k, _, v in pairs}
