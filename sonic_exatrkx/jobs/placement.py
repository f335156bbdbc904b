"""Shared by `sonic-exatrkx run`, `bench sonic` and the job configs: where the ExaTrkX
inference of a job runs, and the local Triton server a job starts when it has none.

Lives in the jobs layer because it starts servers (``sonic_exatrkx.server``), which the
SONIC layer and the algorithms may not import.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from sonic_exatrkx.sonic import ThreadBudget, split_cores


@contextlib.contextmanager
def local_exatrkx_server(models: str | os.PathLike[str], budget: ThreadBudget, *,
                         ensemble: bool = True, say: Callable[[str], None] = print
                         ) -> Iterator[str]:
    """A tritonserver on 127.0.0.1 serving every ExaTrkX model of ``models`` with the
    budget's instances x threads; yields its gRPC URL, stops it (and its stubs) on exit."""
    from sonic_exatrkx.framework import ConfigurationError
    from sonic_exatrkx.server import (
        ExaTrkXRepositoryOptions,
        TritonEnvironmentError,
        TritonServer,
        TritonServerError,
        write_exatrkx_repository,
    )

    with tempfile.TemporaryDirectory(prefix="sonic-exatrkx-repo-") as repo:
        write_exatrkx_repository(repo, models, ExaTrkXRepositoryOptions(
            instances=max(budget.server_instances, 1), num_threads=budget.server_threads,
            ensemble=ensemble))
        say(f"starting a local Triton server for {models} ...")
        server = TritonServer(repo, env_threads=budget.server_threads, ready_timeout=300)
        try:
            server.start()
        except (TritonServerError, TritonEnvironmentError) as exc:
            raise ConfigurationError(f"could not start a local Triton server: {exc}") from exc
        try:
            say(f"Triton server ready at {server.grpc_url} ({server.start_seconds:.1f} s)")
            yield server.grpc_url
        finally:
            server.stop()
            say(f"Triton server stopped ({server.stop_seconds or 0:.1f} s)")


@dataclass(frozen=True)
class Placement:
    """Where a job's inference runs: the inference switch, servers (None: local) and,
    when the job started its own server, the thread budget it used."""

    inference: str
    servers: list[str] | None
    budget: ThreadBudget | None


@contextlib.contextmanager
def placement(inference: str, servers: Sequence[str] | None, *, service_option: str,
              models: str | os.PathLike[str], cores: int | None = None,
              threads: int | None = None, protocol: str = "grpc",
              say: Callable[[str], None] = print) -> Iterator[Placement]:
    """The servers a job uses. ``triton`` without servers starts a local one (gRPC) with
    ``cores`` (default: all) split by :func:`split_cores` and prints the split; ``auto``
    without servers runs locally; given servers are used as they are."""
    if inference == "local" or servers or service_option == "S0":
        yield Placement(inference, list(servers) if servers else None, None)
        return
    if inference == "auto":
        say("inference 'auto' without --server: running ExaTrkX in this process")
        yield Placement("local", None, None)
        return
    if protocol != "grpc":
        from sonic_exatrkx.framework import ConfigurationError

        raise ConfigurationError("protocol: the server this job starts is used over gRPC; "
                                 "give --server for HTTP")
    budget = split_cores(cores or os.cpu_count() or 1, service_option, job_threads=threads)
    say(budget.line())
    with local_exatrkx_server(Path(models), budget, ensemble=service_option != "custom",
                              say=say) as url:
        yield Placement(inference, [url], budget)


def exatrkx_keywords(where: Placement, *, mode: str | None, **options: object
                     ) -> dict[str, object]:
    """Keywords for :class:`ExaTrkXTrackFinding` / ``add_sonic_reco_chain`` from a
    placement: the inference switch, servers, and (own server) the local pool size.
    ``mode`` None keeps the algorithm's default (sync locally, async for a server)."""
    kw: dict[str, object] = {"inference": where.inference, "server": where.servers,
                             "mode": mode, **options}
    if where.budget is not None:
        kw["local_threads"] = where.budget.local_threads
    return kw


def sequencer_threads(where: Placement, threads: int | None, in_flight: int | None
                      ) -> tuple[int | None, int | None]:
    """Event-loop threads and events in flight: the user's, else the budget's."""
    if where.budget is None:
        return threads, in_flight
    return threads or where.budget.job_threads, in_flight or where.budget.in_flight
