"""``sonic-exatrkx bench STUDY``, ``bench all``, ``bench compare`` and ``bench
perf-input``: options, then one call of :mod:`sonic_exatrkx.bench.suite` (what each study
measures: :mod:`sonic_exatrkx.bench.studies`). Options left out keep the study's defaults
(``--quick``: its small ones)."""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from sonic_exatrkx.cli.bench_choices import Encoding, StudyName, ThreadsPath, ThroughputPath
from sonic_exatrkx.cli.choices import Mode, Protocol, ServiceOptionName

__all__ = ["STUDY_COMMANDS", "bench_all_cmd", "bench_compare_cmd", "bench_perf_input_cmd"]

Models = Annotated[Path | None, typer.Option(
    help="Trained pipeline folder (config.json + TorchScript); default: the shipped "
         "data/models.", file_okay=False)]
Events = Annotated[int | None, typer.Option(min=1, help="Simulated HNL events per setting "
                                             "and trial.")]
Pileup = Annotated[float | None, typer.Option(min=0, help="Pileup of the events.")]
Seed = Annotated[int | None, typer.Option(min=0, help="Simulation seed (held out).")]
Trials = Annotated[int | None, typer.Option(min=1, help="Repetitions of every setting (the "
                                             "figures are medians over them).")]
Server = Annotated[str | None, typer.Option(
    help="A running Triton server (host:port of --protocol) serving the ExaTrkX models; "
         "default: start one on 127.0.0.1 for the study.")]
Proto = Annotated[Protocol, typer.Option(help="Protocol of the requests.")]
ServerInstances = Annotated[int | None, typer.Option(
    min=1, help="Instances per model of a server started here (default: one per core, "
                "at most 8).")]
ServerThreads = Annotated[int | None, typer.Option(
    min=1, help="Torch/FAISS threads per instance of a server started here.")]
Output = Annotated[Path, typer.Option("--output", "-o", file_okay=False,
                                      help="Results folder (one sub-folder per study).")]
Quick = Annotated[bool, typer.Option(help="The study's small configuration (bench all "
                                          "--quick runs every study in minutes).")]
DEFAULT_OUTPUT = Path("bench-results")


def _settings(values: dict[str, Any]) -> dict[str, Any]:
    """The common options the user gave, as BenchSettings fields."""
    keys = ("models", "events", "pileup", "seed", "trials", "server", "server_instances",
            "server_threads")
    out = {k: values[k] for k in keys if values.get(k) is not None}
    out["protocol"] = values["protocol"].value
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_plain(v) for v in value)
    return value.value if isinstance(value, Enum) else value


def _fail(exc: BaseException) -> None:
    """One line, no traceback: exit 2 for a setting the study refuses, 1 for anything the
    run met (a file, a server)."""
    from sonic_exatrkx.bench.studies import BenchError

    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(code=2 if isinstance(exc, BenchError) else 1) from None


def _run(study: str, values: dict[str, Any], options: dict[str, str]) -> None:
    """Build the config (``options``: CLI name -> config field) and run the study."""
    from sonic_exatrkx.bench.results import ResultsError
    from sonic_exatrkx.bench.studies import BenchError
    from sonic_exatrkx.bench.suite import run_named
    from sonic_exatrkx.server import TritonEnvironmentError, TritonServerError

    given = {field: _plain(values[name]) for name, field in options.items()
             if values.get(name) not in (None, [])}
    try:
        result = run_named(study, values["output"], quick=values["quick"],
                           settings=_settings(values), options=given, say=typer.echo)
    except (BenchError, ResultsError, TritonServerError, TritonEnvironmentError,
            FileNotFoundError) as exc:
        _fail(exc)
    typer.echo("\n".join(result.summary_lines()))
    typer.echo(f"results in {result.folder}")


def bench_throughput_cmd(
    concurrency: Annotated[list[int] | None, typer.Option(
        min=1, help="Requests in flight (repeat; default 1 2 4 8 16).")] = None,
    path: Annotated[list[ThroughputPath] | None, typer.Option(
        help="Paths to measure (repeat; default all).")] = None,
    models: Models = None, events: Events = None, pileup: Pileup = None, seed: Seed = None,
    trials: Trials = None, server: Server = None, protocol: Proto = Protocol.grpc,
    server_instances: ServerInstances = None, server_threads: ServerThreads = None,
    output: Output = DEFAULT_OUTPUT, quick: Quick = False,
) -> None:
    """Events/s and latency p50/p90/p99 vs concurrency: direct, custom backend, ensemble
    (the seeds' Fig. 4a)."""
    _run("throughput", locals(), {"concurrency": "concurrency", "path": "paths"})


def bench_instances_cmd(
    instances: Annotated[list[int] | None, typer.Option(
        min=1, help="Model instances, one server each (repeat; default 1 2 3 4).")] = None,
    threads_per_instance: Annotated[list[int] | None, typer.Option(
        min=1, help="Torch/FAISS threads per instance (repeat; default 1).")] = None,
    concurrency: Annotated[int | None, typer.Option(
        min=1, help="Requests in flight (default: two per instance).")] = None,
    models: Models = None, events: Events = None, pileup: Pileup = None, seed: Seed = None,
    trials: Trials = None, server: Server = None, protocol: Proto = Protocol.grpc,
    output: Output = DEFAULT_OUTPUT, quick: Quick = False,
) -> None:
    """Custom backend events/s vs model instances and threads per instance (the seeds'
    Fig. 4b; with a GPU, its utilisation too)."""
    values = {**locals(), "server_instances": None, "server_threads": None}
    _run("instances", values, {"instances": "instances",
                               "threads_per_instance": "threads_per_instance",
                               "concurrency": "concurrency"})


def bench_service_options_cmd(
    service_option: Annotated[list[ServiceOptionName] | None, typer.Option(
        help="Options to measure (repeat; default S0-S4 and custom).")] = None,
    models: Models = None, events: Events = None, pileup: Pileup = None, seed: Seed = None,
    trials: Trials = None, server: Server = None, protocol: Proto = Protocol.grpc,
    server_instances: ServerInstances = None, server_threads: ServerThreads = None,
    output: Output = DEFAULT_OUTPUT, quick: Quick = False,
) -> None:
    """S0-S4 and custom: mean time per event and per stage, client side and Triton side
    (queue and compute, from its statistics API)."""
    _run("service-options", locals(), {"service_option": "options"})


def bench_threads_cmd(
    cpu_threads: Annotated[list[int] | None, typer.Option(
        min=1, help="CPU threads given to the work (repeat; default 1 2 4).")] = None,
    path: Annotated[list[ThreadsPath] | None, typer.Option(
        help="Paths to measure (repeat; default all).")] = None,
    models: Models = None, events: Events = None, pileup: Pileup = None, seed: Seed = None,
    trials: Trials = None, server: Server = None, protocol: Proto = Protocol.grpc,
    output: Output = DEFAULT_OUTPUT, quick: Quick = False,
) -> None:
    """Time for 100 events vs CPU threads: direct (own or shared torch/FAISS pools) vs
    served (the seeds' Fig. 3)."""
    values = {**locals(), "server_instances": None, "server_threads": None}
    _run("threads", values, {"cpu_threads": "threads", "path": "paths"})


def bench_latency_cmd(
    delay_ms: Annotated[list[float] | None, typer.Option(
        min=0, help="Added round trips in ms (repeat; default 0 10 20 50).")] = None,
    mode: Annotated[list[Mode] | None, typer.Option(
        help="Dispatch modes (repeat; default all).")] = None,
    in_flight: Annotated[int | None, typer.Option(min=1, help="Events in flight.")] = None,
    cores: Annotated[int | None, typer.Option(
        min=1, help="Cores split between the job and the server (default: all).")] = None,
    models: Models = None, events: Events = None, pileup: Pileup = None, seed: Seed = None,
    trials: Trials = None, server: Server = None, protocol: Proto = Protocol.grpc,
    server_instances: ServerInstances = None, server_threads: ServerThreads = None,
    output: Output = DEFAULT_OUTPUT, quick: Quick = False,
) -> None:
    """An added network round trip (a loopback delay proxy): events/s and the fraction
    hidden, sync vs pseudo-async vs async."""
    _run("latency", locals(), {"delay_ms": "delays_ms", "mode": "modes",
                               "in_flight": "in_flight", "cores": "cores"})


def bench_batching_cmd(
    events_per_request: Annotated[list[int] | None, typer.Option(
        min=1, help="Events per request (ROW_SPLITS; repeat; default 1 2 4 8).")] = None,
    concurrency: Annotated[list[int] | None, typer.Option(
        min=1, help="Requests in flight (repeat; default 1 2).")] = None,
    server_batching: Annotated[bool | None, typer.Option(
        show_default="on", help="Also measure server-side batching of concurrent one-event "
        "requests (exatrkx_dynamic: a --server must run `serve --dynamic-batching`).")] = None,
    models: Models = None, events: Events = None, pileup: Pileup = None, seed: Seed = None,
    trials: Trials = None, server: Server = None, protocol: Proto = Protocol.grpc,
    server_instances: ServerInstances = None, server_threads: ServerThreads = None,
    output: Output = DEFAULT_OUTPUT, quick: Quick = False,
) -> None:
    """Several events per request (client-side ROW_SPLITS) and server-side batching."""
    _run("batching", locals(), {"events_per_request": "events_per_request",
                              "concurrency": "concurrency",
                              "server_batching": "server_batching"})


def bench_scaling_cmd(
    pileup: Annotated[list[float] | None, typer.Option(
        min=0, help="Pileups (repeat; default 0 10 50 100 200).")] = None,
    pipeline_threads: Annotated[int | None, typer.Option(
        min=1, help="Torch/FAISS threads per pipeline call.")] = None,
    models: Models = None, events: Events = None, seed: Seed = None, trials: Trials = None,
    output: Output = DEFAULT_OUTPUT, quick: Quick = False,
) -> None:
    """Time and peak memory per stage vs event size (pileup), in this process."""
    values = {**locals(), "protocol": Protocol.grpc, "pileups": pileup, "pileup": None}
    _run("scaling", values, {"pileups": "pileups", "pipeline_threads": "pipeline_threads"})


STUDY_COMMANDS: dict[str, Callable[..., None]] = {
    "throughput": bench_throughput_cmd, "instances": bench_instances_cmd,
    "service-options": bench_service_options_cmd, "threads": bench_threads_cmd,
    "latency": bench_latency_cmd, "batching": bench_batching_cmd,
    "scaling": bench_scaling_cmd,
}


def bench_all_cmd(
    study: Annotated[list[StudyName] | None, typer.Option(
        help="Studies to run (repeat; default all).")] = None,
    models: Models = None, events: Events = None, seed: Seed = None, trials: Trials = None,
    server: Server = None, protocol: Proto = Protocol.grpc,
    server_instances: ServerInstances = None, server_threads: ServerThreads = None,
    output: Output = DEFAULT_OUTPUT, quick: Quick = False,
) -> None:
    """Every study, one after the other (one local server shared where it can be), and
    DIR/summary.md with their headline figures."""
    from sonic_exatrkx.bench.results import ResultsError
    from sonic_exatrkx.bench.studies import BenchError
    from sonic_exatrkx.bench.suite import run_all
    from sonic_exatrkx.server import TritonEnvironmentError, TritonServerError

    values = {**locals(), "pileup": None}
    try:
        run_all(output, quick=quick, settings=_settings(values),
                studies=[s.value for s in study] if study else None, say=typer.echo)
    except (BenchError, ResultsError, TritonServerError, TritonEnvironmentError,
            FileNotFoundError) as exc:
        _fail(exc)
    typer.echo(f"results in {output}; summary in {output / 'summary.md'}")


def bench_compare_cmd(
    folders: Annotated[list[Path], typer.Argument(
        help="Result folders of `bench all` or `bench STUDY` runs (two or more).",
        exists=True, file_okay=False)],
    output: Annotated[Path, typer.Option("--output", "-o", file_okay=False,
                                         help="Where the overlays and compare.md go.")]
    = Path("bench-compare"),
    label: Annotated[list[str] | None, typer.Option(
        help="A name per folder, in order (default: the folder names).")] = None,
) -> None:
    """Overlay runs (two machines, before/after a change): plots with one line style per
    run, headline figures side by side."""
    from sonic_exatrkx.bench.results import ResultsError
    from sonic_exatrkx.bench.studies import BenchError
    from sonic_exatrkx.bench.suite import compare_runs

    try:
        path = compare_runs(folders, output, labels=label or None)
    except (BenchError, ResultsError) as exc:
        _fail(exc)
    typer.echo(f"comparison in {path}")


def bench_perf_input_cmd(
    events: Annotated[list[Path], typer.Argument(
        help="ACTS event*-spacepoint.csv files, or folders of them.")],
    output: Annotated[Path, typer.Option("--output", "-o", dir_okay=False,
                                         help="The JSON file to write.")]
    = Path("perf-input.json"),
    models: Models = None,
    events_per_request: Annotated[int, typer.Option(
        min=1, help="Events per request (above 1: ROW_SPLITS, custom backend only).")] = 1,
    max_events: Annotated[int | None, typer.Option(min=1, help="At most this many events.")]
    = None,
    encoding: Annotated[Encoding, typer.Option(help="Tensor contents as a list of numbers "
                                                    "or base64 bytes (smaller).")]
    = Encoding.list,
    validation: Annotated[bool, typer.Option(help="Add the expected labels "
                                                  "(validation_data).")] = True,
) -> None:
    """Triton perf_analyzer's JSON input (--input-data) for the served ExaTrkX models."""
    from sonic_exatrkx.bench.perf_input import write_perf_input
    from sonic_exatrkx.io import InputFormatError

    try:
        written = write_perf_input(events, output, models=models,
                                   events_per_request=events_per_request,
                                   encoding=encoding.value, validation=validation,
                                   max_events=max_events)
    except (InputFormatError, FileNotFoundError, ValueError) as exc:
        _fail(exc)
    typer.echo(written.line())
