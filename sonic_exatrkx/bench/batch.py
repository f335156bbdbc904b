"""``sonic-exatrkx bench batch``: what the many-machine path costs and gains, here.

On simulated HNL events (a held-out seed), one run each, ratios within the run:

- the per-event commits that make a job resumable: the same job with and without them,
  and the time to restore a finished job's events (a restart that has nothing left);
- Dask: a LocalCluster with 1 and with 2 worker processes (cluster start excluded);
- a pool of Triton servers: one server against two (each one instance, one thread), the
  job async with events in flight;
- least-outstanding balancing: the request split between a server and the same server
  behind the delay proxy (a slow one), from a load generator with a few requests in flight.

On 2 cores little scaling is expected: the point is that the paths work and what they
cost; the same study on a node with more cores (or GPUs behind the servers) shows the
curve.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from sonic_exatrkx.sonic import TritonOptions

__all__ = ["DEFAULT_SEED", "BatchBenchConfig", "BatchBenchResult", "run_batch_bench"]

DEFAULT_SEED = 13579  # held out: no training, tuning or test uses it


@dataclass(frozen=True)
class BatchBenchConfig:
    models: Path
    events: int
    seed: int
    chunk_size: int
    delay_ms: float


@dataclass
class BatchBenchResult:
    rows: list[tuple[str, float, str]] = field(default_factory=list)  # what, value, unit

    def add(self, what: str, value: float, unit: str) -> None:
        self.rows.append((what, value, unit))

    def value(self, what: str) -> float:
        return next(v for w, v, _ in self.rows if w == what)

    def lines(self) -> list[str]:
        width = max(len(w) for w, _, _ in self.rows)
        return [f"{w:<{width}}  {v:10.2f} {u}" for w, v, u in self.rows]


@contextmanager
def _servers(models: Path, n: int, root: Path) -> Iterator[list[str]]:
    from sonic_exatrkx.server import (
        ExaTrkXRepositoryOptions,
        TritonServer,
        write_exatrkx_repository,
    )

    repo = root / "repo"
    write_exatrkx_repository(repo, models, ExaTrkXRepositoryOptions(
        instances=1, num_threads=1, ensemble=False))
    servers = [TritonServer(repo, env_threads=1, ready_timeout=300) for _ in range(n)]
    try:
        for server in servers:
            server.start()
        yield [s.grpc_url for s in servers]
    finally:
        for server in servers:
            server.stop()


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run_batch_bench(cfg: BatchBenchConfig, say: Callable[[str], None] = print
                    ) -> BatchBenchResult:
    from distributed import Client, LocalCluster

    from algorithms.exatrkx_track_finding import TrackFindingConfig
    from sonic_exatrkx.jobs import Manifest, RecoJobConfig, build_reco_job
    from sonic_exatrkx.jobs.dask_executor import DaskConfig, run_dask_job
    from sonic_exatrkx.sim import SimulationConfig, write_events
    from sonic_exatrkx.sonic import TritonOptions
    from sonic_exatrkx.sonic.delay_proxy import DelayProxy

    result = BatchBenchResult()
    quiet: Callable[[str], None] = lambda _m: None  # noqa: E731
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        root = Path(tmp)
        events = root / "events"
        write_events(SimulationConfig(sample="hnl", pileup=0, seed=cfg.seed), events,
                     cfg.events, progress=False)
        base = RecoJobConfig(input=events, output=root / "plain", threads=1,
                             finder=TrackFindingConfig(models=cfg.models))
        say(f"{cfg.events} HNL mu=0 events (seed {cfg.seed}); one thread per job")

        def job(out: str, commits: bool = True, **changes: object) -> float:
            built = build_reco_job(replace(base, output=root / out, **changes), say=quiet)
            if not commits:
                built.sequencer.commits = None
            return _timed(built.run)

        job("warm-up", commits=False, events=2)
        without = job("plain", commits=False)
        with_commits = job("committed")
        killed = Manifest.read(root / "committed")
        killed.complete = False  # as if killed after its last commit: restore every event
        killed.write(root / "committed")
        restore = job("committed")
        result.add("job without commits", cfg.events / without, "events/s")
        result.add("job with per-event commits", cfg.events / with_commits, "events/s")
        result.add("commit overhead", 1e3 * (with_commits - without) / cfg.events, "ms/event")
        result.add("restart restoring every event", 1e3 * restore / cfg.events, "ms/event")
        say("\n".join(result.lines()))

        for workers in (1, 2):
            with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                              host="127.0.0.1", dashboard_address=":0",
                              silence_logs=logging.WARNING) as cluster, \
                    Client(cluster) as client:
                wall = _timed(lambda c=client, w=workers: run_dask_job(
                    replace(base, output=root / f"dask{w}"),
                    DaskConfig(chunk_size=cfg.chunk_size), say=quiet, progress=False,
                    client=c))
            result.add(f"dask, {workers} worker(s)", cfg.events / wall, "events/s")
        result.add("dask 2 / 1 workers", result.value("dask, 2 worker(s)")
                   / result.value("dask, 1 worker(s)"), "x")
        say("\n".join(result.lines()[-3:]))

        with _servers(cfg.models, 2, root) as urls:
            for n in (1, 2):
                finder = replace(base.finder, inference="triton", servers=tuple(urls[:n]),
                                 mode="async")
                job(f"servers{n}", commits=False, events=2, finder=finder)  # warm up
                wall = job(f"served{n}", commits=False, finder=finder, in_flight=4)
                result.add(f"{n} server(s), 4 in flight", cfg.events / wall, "events/s")
            result.add("2 / 1 servers", result.value("2 server(s), 4 in flight")
                       / result.value("1 server(s), 4 in flight"), "x")
            fast = urls[0]
            with DelayProxy(fast, one_way_s=cfg.delay_ms / 2e3) as slow:
                split = _split(cfg.models, [slow.url, fast], TritonOptions())
            result.add(f"requests to the fast server (other +{cfg.delay_ms:g} ms)",
                       split[fast], "requests")
            result.add("requests to the slowed server", split[slow.url], "requests")
        say("\n".join(result.lines()[-5:]))
    return result


def _split(models: Path, servers: list[str], options: TritonOptions) -> dict[str, int]:
    """40 requests of one small event, 4 in flight, over a pool: requests per server."""
    from sonic_exatrkx.exatrkx import Pipeline
    from sonic_exatrkx.sonic import TritonClient
    from sonic_exatrkx.sonic.exatrkx_service import stage_specs

    config = Pipeline.from_directory(models).config
    inputs, outputs = stage_specs("pipeline", config)
    client = TritonClient(model="exatrkx", servers=servers, inputs=inputs, outputs=outputs,
                          options=options)
    x = np.random.default_rng(0).uniform(0.1, 1, (500, config.features.width)).astype(
        np.float32)
    try:
        client.check()
        slots = threading.Semaphore(4)
        futures = []
        for _ in range(40):
            slots.acquire()
            future = client.infer_async({"FEATURES": x})
            future.add_done_callback(lambda _f: slots.release())
            futures.append(future)
        for future in futures:
            future.result(120)
    finally:
        client.close()
    return {u: s.requests for u, s in client.server_requests.items()}
