"""`sonic-exatrkx serve`: run a real Triton server on loopback until SIGTERM or Ctrl-C.

A plain command function; ``sonic_exatrkx/cli/main.py`` registers it. Signal handling lives
here, not in the library: the first SIGTERM/SIGINT stops the server cleanly (its Python
stubs and shared memory included) and exits 0.
"""

from __future__ import annotations

import signal
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer


class _StopRequested(BaseException):
    """Raised from the signal handler to leave the serving loop (or an ongoing start)."""


def _print_check() -> bool:
    from sonic_exatrkx.server import check_environment

    results = check_environment()
    width = max(len(r.item) for r in results)
    for r in results:
        typer.echo(f"{'OK  ' if r.ok else 'FAIL'}  {r.item:<{width}}  {r.detail}")
    ok = all(r.ok for r in results)
    typer.echo("Triton serving is usable here." if ok else
               "Triton serving is NOT usable here; fix the FAIL lines above.")
    return ok


def serve(
    model_repository: Annotated[Path | None, typer.Option(
        help="Triton model repository to serve (every model is loaded at start).",
        file_okay=False)] = None,
    instances: Annotated[int, typer.Option(
        min=1, help="Model instances (CPU stub processes) per model, for the repository "
                    "generated from --models.")] = 1,
    host: Annotated[str, typer.Option(
        help="Address to bind; loopback by default.")] = "127.0.0.1",
    http_port: Annotated[int | None, typer.Option(help="HTTP port (default: a free one).")] = None,
    grpc_port: Annotated[int | None, typer.Option(help="gRPC port (default: a free one).")] = None,
    metrics_port: Annotated[int | None, typer.Option(
        help="Prometheus metrics port (default: a free one).")] = None,
    check: Annotated[bool, typer.Option(
        "--check", help="Only report whether the server binary, the Python-backend stub and "
                        "the libraries are usable (exit 0 if so, 1 if not).")] = False,
    ready_timeout: Annotated[float, typer.Option(
        help="Seconds to wait for the server to become ready.")] = 120.0,
    models: Annotated[Path | None, typer.Option(
        help="Trained pipeline directory (as Pipeline.save writes it): serve the ExaTrkX "
             "repository generated from it (models 'exatrkx' and 'exatrkx_ensemble'). "
             "Default, when --model-repository is not given either: the shipped "
             "data/models, if present.",
        file_okay=False)] = None,
    threads_per_instance: Annotated[int, typer.Option(
        min=1, help="Torch + FAISS threads in each model instance, for the repository "
                    "generated from --models (on few cores keep 1 and add --instances).")] = 1,
    max_spacepoints: Annotated[int, typer.Option(
        min=0, help="Refuse events with more space points than this (0 = no limit), for "
                    "the repository generated from --models.")] = 500_000,
) -> None:
    """Start a Triton server with the ExaTrkX models on 127.0.0.1."""
    if check:
        raise typer.Exit(code=0 if _print_check() else 1)
    if model_repository is None and models is None:
        models = default_models()
        if models is None:
            typer.echo("sonic-exatrkx serve needs a model repository: pass --model-repository "
                       "DIR (a folder of <model>/config.pbtxt + <model>/<version>/), or "
                       "--models DIR (a trained pipeline) to generate the ExaTrkX repository "
                       "(the shipped data/models is not there).", err=True)
            raise typer.Exit(code=2)
        typer.echo(f"no --model-repository or --models given: serving the shipped models in "
                   f"{models}", err=True)
    if model_repository is not None and models is not None:
        typer.echo("give either --model-repository or --models, not both", err=True)
        raise typer.Exit(code=2)
    if model_repository is not None and not model_repository.is_dir():
        typer.echo(f"model repository {model_repository} is not a directory", err=True)
        raise typer.Exit(code=2)
    if model_repository is not None and (instances != 1 or threads_per_instance != 1
                                         or max_spacepoints != 500_000):
        typer.echo("note: --instances, --threads-per-instance and --max-spacepoints apply to "
                   "the repository generated from --models; each config.pbtxt decides here.",
                   err=True)
    with tempfile.TemporaryDirectory(prefix="sonic-exatrkx-repo-") as tmp:
        env_threads = None
        if models is not None:
            model_repository = _generate(models, Path(tmp), instances, threads_per_instance,
                                         max_spacepoints)
            env_threads = threads_per_instance
        assert model_repository is not None
        _serve(model_repository, host, http_port, grpc_port, metrics_port, ready_timeout,
               env_threads)


def default_models() -> Path | None:
    """The shipped trained pipeline (``data/models`` with its config.json), if present."""
    from sonic_exatrkx.paths import data_dir

    try:
        models = data_dir() / "models"
    except FileNotFoundError:
        return None
    return models if (models / "config.json").is_file() else None


def _generate(models: Path, repo: Path, instances: int, threads: int = 1,
              max_spacepoints: int = 500_000) -> Path:
    """The ExaTrkX repository for the pipeline in ``models``, written under ``repo``."""
    from sonic_exatrkx.server.exatrkx_repository import (
        ExaTrkXRepositoryOptions,
        write_exatrkx_repository,
    )

    try:
        options = ExaTrkXRepositoryOptions(instances=instances, num_threads=threads,
                                           max_spacepoints=max_spacepoints)
        names = write_exatrkx_repository(repo, models, options)
    except (OSError, ValueError, RuntimeError) as exc:  # RuntimeError: bad TorchScript
        typer.echo(f"cannot build the ExaTrkX repository from {models}: {exc}", err=True)
        raise typer.Exit(code=2) from None
    typer.echo(f"generated ExaTrkX repository in {repo}: {', '.join(names)}")
    return repo


def _serve(model_repository: Path, host: str, http_port: int | None, grpc_port: int | None,
           metrics_port: int | None, ready_timeout: float, env_threads: int | None = None
           ) -> None:
    """Run the server until a signal; raises typer.Exit with the exit code."""
    from sonic_exatrkx.server import (
        TritonEnvironmentError,
        TritonServer,
        TritonServerError,
        cleanup_orphans,
    )

    if host not in ("127.0.0.1", "localhost", "::1"):
        typer.echo(f"warning: binding {host}, not loopback: Triton has no authentication; "
                   "anyone who can reach this address can run inference.", err=True)
    leftovers = cleanup_orphans()
    if leftovers:
        typer.echo(f"cleaned up after an earlier crashed server: killed stubs "
                   f"{leftovers.killed}, removed {len(leftovers.removed)} shared-memory files",
                   err=True)

    server = TritonServer(model_repository, host=host, http_port=http_port,
                          grpc_port=grpc_port, metrics_port=metrics_port,
                          ready_timeout=ready_timeout, env_threads=env_threads)
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
            typer.echo(f"Triton server ready (pid {server.pid}, {server.start_seconds:.1f} s)\n"
                       f"  model repository  {server.model_repository}\n"
                       f"  HTTP              http://{server.http_url}\n"
                       f"  gRPC              {server.grpc_url}\n"
                       f"  metrics           {server.metrics_url}\n"
                       f"  log               {server.log_path}\n"
                       "Stop with Ctrl-C or SIGTERM.")
            while server.is_running():
                time.sleep(0.5)
            code = 1
            typer.echo("tritonserver exited unexpectedly; last log lines:\n"
                       + server.log_tail(), err=True)
        except _StopRequested:
            stopping = True
            typer.echo("stopping Triton server...", err=True)
        except (TritonServerError, TritonEnvironmentError, FileNotFoundError) as exc:
            stopping = True
            typer.echo(f"error: {exc}", err=True)
            code = 1
        finally:
            stopping = True
            server.stop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if code == 0:
        typer.echo(f"Triton server stopped ({server.stop_seconds or 0.0:.1f} s).")
    raise typer.Exit(code=code)
