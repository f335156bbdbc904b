"""A Triton server in the foreground until SIGTERM or Ctrl-C (`sonic-exatrkx serve`).

The first SIGTERM/SIGINT stops the server cleanly (its Python stubs and shared memory
included); a second one during the shutdown is ignored so that it cannot abort the cleanup.
The ExaTrkX repository, when generated from a trained pipeline, lives in a temporary folder
that is removed afterwards.
"""

from __future__ import annotations

import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sonic_exatrkx.server.exatrkx_repository import ExaTrkXRepositoryOptions

__all__ = ["RepositoryBuildError", "ServeOptions", "default_models", "generate_repository",
           "serve_until_signal"]

LOOPBACK = ("127.0.0.1", "localhost", "::1")


class RepositoryBuildError(Exception):
    """The ExaTrkX repository cannot be generated from the given pipeline folder."""


class _StopRequested(BaseException):
    """Raised from the signal handler to leave the serving loop (or an ongoing start)."""


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class ServeOptionsError(ValueError):
    """Serve options that cannot work together (the CLI exits 2 with the message)."""


@dataclass(frozen=True)
class ServeOptions:
    """What to serve and where; exactly one of ``model_repository`` (served as is) and
    ``models`` (a trained pipeline: the ExaTrkX repository is generated from it with
    ``instances``, ``threads_per_instance``, ``max_spacepoints``, with
    ``dynamic_batching`` the ``exatrkx_dynamic`` model batching concurrent requests,
    holding each up to ``max_queue_delay_us``, and with ``gpus`` the instances on those
    GPUs, ``instances`` on each) is set: :meth:`repository_options`."""

    model_repository: Path | None
    models: Path | None
    instances: int
    threads_per_instance: int
    max_spacepoints: int  # 0: no limit
    host: str
    http_port: int | None  # None: a free port
    grpc_port: int | None
    metrics_port: int | None
    ready_timeout: float  # seconds
    tls_cert: Path | None = None  # gRPC over TLS: the server's certificate and key (PEM)
    tls_key: Path | None = None
    dynamic_batching: bool = False
    max_queue_delay_us: int = 1000
    gpus: tuple[int, ...] = ()  # empty: CPU instances

    def __post_init__(self) -> None:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ServeOptionsError("TLS needs both the certificate and its key "
                                     "(--tls-cert and --tls-key)")
        for path in (self.tls_cert, self.tls_key):
            if path is not None and not Path(path).is_file():
                raise ServeOptionsError(f"TLS file {path} not found")

    def repository_options(self) -> ExaTrkXRepositoryOptions:
        """How the repository generated from ``models`` is written."""
        from sonic_exatrkx.server.exatrkx_repository import (
            DynamicBatching,
            ExaTrkXRepositoryOptions,
        )

        dynamic = DynamicBatching(max_queue_delay_us=self.max_queue_delay_us) \
            if self.dynamic_batching else None
        return ExaTrkXRepositoryOptions(
            instances=self.instances, num_threads=self.threads_per_instance,
            max_spacepoints=self.max_spacepoints, dynamic_batching=dynamic,
            device="gpu" if self.gpus else "cpu", gpus=tuple(self.gpus))

    def tls_args(self) -> list[str]:
        """Triton's gRPC SSL options for the certificate and key."""
        if self.tls_cert is None:
            return []
        return ["--grpc-use-ssl=true", f"--grpc-server-cert={self.tls_cert}",
                f"--grpc-server-key={self.tls_key}"]


def default_models() -> Path | None:
    """The shipped trained pipeline (``data/models`` with its config.json), if present."""
    from sonic_exatrkx.paths import data_dir

    try:
        models = data_dir() / "models"
    except FileNotFoundError:
        return None
    return models if (models / "config.json").is_file() else None


def generate_repository(models: Path, repo: Path,
                        options: ExaTrkXRepositoryOptions | None = None) -> list[str]:
    """Write the ExaTrkX repository for the pipeline in ``models`` under ``repo``; returns
    the model names. Raises :class:`RepositoryBuildError` naming ``models``."""
    from sonic_exatrkx.server.exatrkx_repository import write_exatrkx_repository

    try:
        return write_exatrkx_repository(repo, models, options)
    except (OSError, ValueError, RuntimeError) as exc:  # RuntimeError: bad TorchScript
        raise RepositoryBuildError(
            f"cannot build the ExaTrkX repository from {models}: {exc}") from None


def serve_until_signal(options: ServeOptions, say: Callable[[str], None] = print,
                       warn: Callable[[str], None] = _stderr) -> int:
    """Serve until a stop signal; returns the exit status: 0 after a signal, 1 when the
    server failed to start or exited by itself. ``say`` gets the addresses, ``warn`` the
    warnings and errors. Raises :class:`RepositoryBuildError` before starting anything."""
    with tempfile.TemporaryDirectory(prefix="sonic-exatrkx-repo-") as tmp:
        repo, env_threads = options.model_repository, None
        if options.models is not None:
            repo, env_threads = Path(tmp), options.threads_per_instance
            try:
                repo_options = options.repository_options()
            except ValueError as exc:
                raise RepositoryBuildError(f"cannot build the ExaTrkX repository from "
                                           f"{options.models}: {exc}") from None
            names = generate_repository(options.models, repo, repo_options)
            say(f"generated ExaTrkX repository in {repo}: {', '.join(names)}")
        if repo is None:
            raise ValueError("ServeOptions needs model_repository or models")
        return _serve(repo, options, env_threads, say, warn)


def _serve(model_repository: Path, options: ServeOptions, env_threads: int | None,
           say: Callable[[str], None], warn: Callable[[str], None]) -> int:
    from sonic_exatrkx.server import (
        TritonEnvironmentError,
        TritonServer,
        TritonServerError,
        cleanup_orphans,
    )

    if options.host not in LOOPBACK:
        warn(f"warning: binding {options.host}, not loopback: Triton has no authentication; "
             "anyone who can reach this address can run inference.")
    leftovers = cleanup_orphans()
    if leftovers:
        warn(f"cleaned up after an earlier crashed server: killed stubs "
             f"{leftovers.killed}, removed {len(leftovers.removed)} shared-memory files")

    server = TritonServer(model_repository, host=options.host, http_port=options.http_port,
                          grpc_port=options.grpc_port, metrics_port=options.metrics_port,
                          ready_timeout=options.ready_timeout, env_threads=env_threads,
                          extra_args=options.tls_args())
    stopping = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        if stopping:
            return  # already shutting down; a second Ctrl-C must not abort the cleanup
        stopping = True
        raise _StopRequested(signum)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    code = 0
    try:
        try:
            server.start()
            say(f"Triton server ready (pid {server.pid}, {server.start_seconds:.1f} s)\n"
                f"  model repository  {server.model_repository}\n"
                f"  HTTP              http://{server.http_url}\n"
                f"  gRPC              {server.grpc_url}\n"
                f"  metrics           {server.metrics_url}\n"
                f"  log               {server.log_path}\n"
                "Stop with Ctrl-C or SIGTERM.")
            while server.is_running():
                time.sleep(0.5)
            code = 1
            warn("tritonserver exited unexpectedly; last log lines:\n" + server.log_tail())
        except _StopRequested:
            stopping = True
            warn("stopping Triton server...")
        except (TritonServerError, TritonEnvironmentError, FileNotFoundError) as exc:
            stopping = True
            warn(f"error: {exc}")
            code = 1
        finally:
            stopping = True
            server.stop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if code == 0:
        say(f"Triton server stopped ({server.stop_seconds or 0.0:.1f} s).")
    return code
