"""What every study shares: its common settings, the events it measures on, the server
it talks to (started here on 127.0.0.1 or given by URL), and Triton's statistics.

Events are simulated HNL events at a held-out seed (no training or test uses it), turned
into the pipeline's node features once, before anything is timed.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from sonic_exatrkx.checks import check_count

__all__ = ["BATCH_QUEUE_DELAY_US", "DEFAULT_SEED", "PROTOCOLS", "SERVER_BATCHING_OPTION",
           "BenchError", "BenchSettings", "Say", "Served", "check_among", "check_counts",
           "event_features", "load_pipeline", "model_stats", "quiet", "server_batching",
           "served", "server_timing", "usable_cores"]

#: Held out: no training, tuning or test event uses this seed.
DEFAULT_SEED = 97531
PROTOCOLS = ("grpc", "http")
#: The ExaTrkXRepositoryOptions field that turns on server-side batching of concurrent
#: requests (Triton dynamic batching of the custom backend: the ``exatrkx_dynamic`` model).
SERVER_BATCHING_OPTION = "dynamic_batching"
#: A request waits at most this long for others to join its batch (a few % of an event).
BATCH_QUEUE_DELAY_US = 2000


def server_batching() -> Any:
    """The dynamic batching a study's own server gets: up to 8 concurrent requests per
    pass, each waiting at most :data:`BATCH_QUEUE_DELAY_US` for others."""
    from sonic_exatrkx.server.exatrkx_repository import DynamicBatching

    return DynamicBatching(max_batch_size=8, max_queue_delay_us=BATCH_QUEUE_DELAY_US)

Say = Callable[[str], None]


def quiet(_line: str) -> None:
    """A ``say`` that says nothing."""


class BenchError(ValueError):
    """A study that cannot run as configured (one line, naming the setting)."""


def check_counts(values: Sequence[int], what: str) -> None:
    """A study's list of counts (threads, requests in flight, ...): at least one, each >= 1."""
    if not values:
        raise BenchError(f"{what}: give at least one value")
    for v in values:
        check_count(v, what, error=BenchError)


def check_among(values: Sequence[str], allowed: Sequence[str], what: str) -> None:
    """A study's choices (paths, modes, service options): at least one, each known."""
    unknown = sorted(set(values) - set(allowed))
    if unknown or not values:
        raise BenchError(f"{what} must be among {', '.join(allowed)}, got {list(values)}")


@dataclass(frozen=True)
class BenchSettings:
    """Settings every study takes (the command's common options).

    ``models``: trained pipeline folder (None: the shipped ``data/models``). ``events``:
    simulated HNL events measured per setting and trial, at ``pileup``, ``seed``.
    ``trials``: repetitions of every setting (the figures are medians over them).
    ``server``: a running Triton server's URL (``host:port`` of ``protocol``); None: each
    study starts its own on 127.0.0.1 with ``server_instances`` (None: one per usable core,
    at most 8) x ``server_threads`` per model and stops it at the end.
    """

    models: Path | None = None
    events: int = 20
    pileup: float = 0.0
    seed: int = DEFAULT_SEED
    trials: int = 3
    server: str | None = None
    protocol: str = "grpc"
    server_instances: int | None = None
    server_threads: int = 1

    def __post_init__(self) -> None:
        for name in ("events", "trials", "server_threads"):
            check_count(getattr(self, name), name, error=BenchError)
        if self.server_instances is not None:
            check_count(self.server_instances, "server_instances", error=BenchError)
        check_count(self.seed, "seed", minimum=0, error=BenchError)
        if not self.pileup >= 0:
            raise BenchError(f"pileup must be >= 0, got {self.pileup!r}")
        if self.protocol not in PROTOCOLS:
            raise BenchError(f"protocol must be grpc or http, got {self.protocol!r}")
        if self.server is not None and ":" not in self.server:
            raise BenchError(f"server must be host:port, got {self.server!r}")

    def model_dir(self) -> Path:
        """The models folder, checked to hold a trained pipeline."""
        models = self.models
        if models is None:
            from sonic_exatrkx.paths import data_dir

            try:
                models = data_dir() / "models"
            except FileNotFoundError as exc:
                raise BenchError(str(exc)) from None
        if not (Path(models) / "config.json").is_file():
            raise BenchError(f"{models}: no trained pipeline here (config.json missing); "
                             "give --models DIR")
        return Path(models)

    def instances(self) -> int:
        """Instances per model of a server started here."""
        if self.server_instances is not None:
            return self.server_instances
        from sonic_exatrkx.sonic.budget import MAX_INSTANCES

        return max(1, min(usable_cores(), MAX_INSTANCES))

    def described(self) -> dict[str, Any]:
        """Every setting, the models folder resolved (saved with the results)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["models"] = str(self.model_dir())
        out["server_instances"] = self.instances()
        return out


def usable_cores() -> int:
    """Cores this process may run on."""
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def load_pipeline(settings: BenchSettings, threads: int = 1) -> Any:
    """The pipeline of ``settings.models`` with ``threads`` torch/FAISS threads per call."""
    from sonic_exatrkx.exatrkx import Pipeline

    return Pipeline.from_directory(settings.model_dir(), num_threads=threads)


def event_features(pipeline: Any, settings: BenchSettings, *, events: int | None = None,
                   pileup: float | None = None, skip: int = 0) -> list[np.ndarray]:
    """Node features of simulated HNL events (``settings``' count, pileup and seed unless
    given; event numbers from ``skip``)."""
    from sonic_exatrkx.sim import SimulationConfig, simulate_event

    cfg = SimulationConfig(sample="hnl", pileup=settings.pileup if pileup is None else pileup,
                           seed=settings.seed)
    out = []
    for i in range(skip, skip + (settings.events if events is None else events)):
        sp = simulate_event(cfg, i)["spacepoint"]
        out.append(pipeline.features(*(sp[c].to_numpy(np.float64) for c in ("x", "y", "z"))))
    return out


@dataclass(frozen=True)
class Served:
    """The server a study talks to: its URL (of ``protocol``), whether this study started
    it, its instances of the custom backend and its version."""

    url: str
    protocol: str
    started: bool
    instances: int | None = None
    threads: int | None = None
    version: str = ""
    start_s: float | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {"url": self.url if not self.started else "local (started by the study)",
                "protocol": self.protocol, "instances": self.instances,
                "threads_per_instance": self.threads, "triton_version": self.version,
                "start_s": self.start_s, "repository_options": dict(self.options)}


def _admin(url: str, protocol: str) -> Any:
    if protocol == "grpc":
        import tritonclient.grpc as tg

        return tg.InferenceServerClient(url)
    import tritonclient.http as th

    return th.InferenceServerClient(url, connection_timeout=30.0, network_timeout=60.0)


def _server_facts(url: str, protocol: str, model: str) -> tuple[str, int | None, int | None]:
    """(Triton version, instances of ``model``, its NUM_THREADS) of a running server."""
    client = _admin(url, protocol)
    try:
        try:
            ready = client.is_server_ready()
        except Exception as exc:  # noqa: BLE001 - any transport error: one clear line
            raise BenchError(f"server {url} ({protocol}) does not answer: {exc}") from None
        if not ready:
            raise BenchError(f"server {url} ({protocol}) is not ready")
        if protocol == "grpc":
            meta = client.get_server_metadata(as_json=True)
            config = client.get_model_config(model, as_json=True).get("config", {})
        else:
            meta = client.get_server_metadata()
            config = client.get_model_config(model)
        groups = config.get("instance_group") or config.get("instanceGroup") or []
        instances = sum(int(g.get("count", 1)) for g in groups) or None
        threads = config.get("parameters", {}).get("NUM_THREADS", {})
        threads_value = threads.get("string_value") or threads.get("stringValue")
        return (str(meta.get("version", "")), instances,
                int(threads_value) if threads_value else None)
    except BenchError:
        raise
    except Exception as exc:  # noqa: BLE001 - e.g. the model is not served there
        raise BenchError(f"server {url}: cannot read model {model!r}: {exc}") from None
    finally:
        client.close()


@contextlib.contextmanager
def served(settings: BenchSettings, *, instances: int | None = None,
           threads: int | None = None, ensemble: bool = True,
           repository_options: Mapping[str, Any] | None = None, say: Say = quiet
           ) -> Iterator[Served]:
    """The study's server: ``settings.server`` when given (checked to answer; its
    instances read from the custom backend's config), else a ``tritonserver`` started here
    on 127.0.0.1 serving the ExaTrkX repository of ``settings.models`` with ``instances`` x
    ``threads`` (default: the settings') and ``repository_options`` (fields of
    ``ExaTrkXRepositoryOptions``), stopped on exit."""
    from sonic_exatrkx.exatrkx.stages import PIPELINE_MODEL

    extra = dict(repository_options or {})
    if settings.server is not None:
        version, n, t = _server_facts(settings.server, settings.protocol, PIPELINE_MODEL)
        say(f"server {settings.server}: Triton {version}, {n} instance(s) of {PIPELINE_MODEL}")
        yield Served(settings.server, settings.protocol, False, n, t, version, None, extra)
        return
    from sonic_exatrkx.server import (
        ExaTrkXRepositoryOptions,
        TritonServer,
        write_exatrkx_repository,
    )

    n = instances or settings.instances()
    t = threads or settings.server_threads
    known = {f.name for f in fields(ExaTrkXRepositoryOptions)}
    unknown = sorted(set(extra) - known)
    if unknown:
        raise BenchError(f"this server build has no repository option {', '.join(unknown)} "
                         f"(options: {', '.join(sorted(known))})")
    options = replace(ExaTrkXRepositoryOptions(instances=n, num_threads=t, max_spacepoints=0,
                                               ensemble=ensemble), **extra)
    with tempfile.TemporaryDirectory(prefix="bench-repo-") as tmp:
        write_exatrkx_repository(tmp, settings.model_dir(), options)
        say(f"starting a local Triton server: {n} instance(s) x {t} thread(s) per model"
            + (", with the ensemble" if ensemble else "") + " ...")
        with TritonServer(tmp, env_threads=t, ready_timeout=300) as server:
            url = server.grpc_url if settings.protocol == "grpc" else server.http_url
            version = _server_facts(url, settings.protocol, PIPELINE_MODEL)[0]
            say(f"server ready in {server.start_seconds:.1f} s")
            yield Served(url, settings.protocol, True, n, t, version, server.start_seconds,
                         extra)


def model_stats(url: str, protocol: str, models: Sequence[str]
                ) -> dict[str, dict[str, tuple[int, int]]]:
    """Triton's cumulative (count, ns) per phase for each of ``models`` (its statistics
    API, via tritonclient's ``get_inference_statistics``); a model that does not answer is
    left out."""
    from sonic_exatrkx.sonic.stats import read_counters

    client = _admin(url, protocol)
    try:
        extra = {"as_json": True} if protocol == "grpc" else {}
        out = {}
        for model in models:
            counters = read_counters(client, model, "", **extra)
            if counters is not None:
                out[model] = counters
        return out
    finally:
        client.close()


def server_timing(before: Mapping[str, Any], after: Mapping[str, Any], model: str
                  ) -> dict[str, float]:
    """Mean queue and compute ms per request of ``model`` between two :func:`model_stats`
    readings, and the requests done (NaN times when none)."""
    from sonic_exatrkx.sonic.stats import timing_since

    if model not in after:
        return {"requests": 0, "queue_ms": float("nan"), "compute_ms": float("nan")}
    timing = timing_since("bench", "", model, before.get(model), after[model])
    if timing is None:
        return {"requests": 0, "queue_ms": float("nan"), "compute_ms": float("nan")}
    return {"requests": timing.inferences, "queue_ms": timing.queue_ms,
            "compute_ms": timing.compute_ms}
