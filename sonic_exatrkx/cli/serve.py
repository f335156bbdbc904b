"""`sonic-exatrkx serve`: options of
:func:`sonic_exatrkx.server.foreground.serve_until_signal` (a real Triton server on loopback
until SIGTERM or Ctrl-C; ``sonic_exatrkx/cli/main.py`` registers :func:`serve`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["serve"]


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
    tls_cert: Annotated[Path | None, typer.Option(help="gRPC over TLS: the server's "
                        "certificate (PEM); with --tls-key.")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="The certificate's private key "
                       "(PEM).")] = None,
    dynamic_batching: Annotated[bool, typer.Option(
        "--dynamic-batching", help="Also serve 'exatrkx_dynamic': the custom backend with "
        "Triton's dynamic batching, computing concurrent requests' events in one pass "
        "(requests send FEATURES [1, N, F]); for the repository generated from "
        "--models.")] = False,
    max_queue_delay_us: Annotated[int, typer.Option(
        min=0, help="With --dynamic-batching: microseconds a request may wait for others "
                    "to batch with.")] = 1000,
    gpu: Annotated[list[int] | None, typer.Option(
        "--gpu", min=0, help="Run the model instances on this GPU (--instances on each); "
        "repeat for several GPUs. Default: CPU instances.")] = None,
) -> None:
    """Start a Triton server with the ExaTrkX models on 127.0.0.1."""
    if check:
        raise typer.Exit(code=0 if _print_check() else 1)
    from sonic_exatrkx.server.foreground import (
        RepositoryBuildError,
        ServeOptions,
        ServeOptionsError,
        default_models,
        serve_until_signal,
    )

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
    try:
        options = ServeOptions(
            model_repository=model_repository, models=models, instances=instances,
            threads_per_instance=threads_per_instance, max_spacepoints=max_spacepoints,
            host=host, http_port=http_port, grpc_port=grpc_port, metrics_port=metrics_port,
            ready_timeout=ready_timeout, tls_cert=tls_cert, tls_key=tls_key,
            dynamic_batching=dynamic_batching, max_queue_delay_us=max_queue_delay_us,
            gpus=tuple(gpu or ()))
    except ServeOptionsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from None
    try:
        code = serve_until_signal(options, say=typer.echo,
                                  warn=lambda line: typer.echo(line, err=True))
    except RepositoryBuildError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(code=2) from None
    raise typer.Exit(code=code)
