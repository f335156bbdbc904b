"""The reconstruction job on a Dask cluster: chunks of events as tasks, then one merge.

The job's events are cut into chunks of ``chunk_size`` consecutive events (chunk ``k`` of
``n`` is the shard ``k/n`` of :mod:`sonic_exatrkx.framework.shard`); each task runs the
same job chain over its chunk into ``<output>/chunks/chunkKKKKK`` (local inference or a
Triton client: the same switch as a plain run) and commits per event there. A task that
Dask runs again after its worker died resumes its chunk from those commits, so every event
is written exactly once; a chunk that finished is not redone when the whole job is run
again. When every chunk is done the chunks are merged into ``<output>``
(:mod:`sonic_exatrkx.jobs.merge`), which then holds what one plain run writes.

Without a scheduler address a :class:`distributed.LocalCluster` of ``workers`` worker
processes (one thread each) runs on this machine; with one, the tasks go to that cluster
(e.g. dask-jobqueue's ``HTCondorCluster`` / ``SLURMCluster``: see docs/batch.md). A job
that needs Triton and names no server gets one local server from the driver, shared by
the LocalCluster's workers (remote workers need ``servers``).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from algorithms.chains import make_reader
from sonic_exatrkx.checks import check_count
from sonic_exatrkx.framework import ConfigurationError, Sequencer, Shard
from sonic_exatrkx.jobs.manifest import Manifest
from sonic_exatrkx.jobs.merge import MergeResult, merge_outputs
from sonic_exatrkx.jobs.reco import RecoJobConfig, place_inference, run_reco_job

CHUNKS = "chunks"


@dataclass(frozen=True)
class DaskConfig:
    """Where the tasks run: ``scheduler`` (an address, e.g. tcp://host:8786) or a local
    cluster of ``workers`` processes; ``chunk_size`` events per task."""

    scheduler: str | None = None
    workers: int = 2
    chunk_size: int = 16

    def __post_init__(self) -> None:
        check_count(self.workers, "workers", error=ConfigurationError)
        check_count(self.chunk_size, "chunk_size", error=ConfigurationError)


@dataclass
class DaskJobResult:
    merge: MergeResult
    chunks: int
    processed: int
    resumed: int
    wall_time_s: float

    @property
    def failed(self) -> list[object]:
        """Always empty: a Dask job whose chunks failed events fails in the merge, which
        names them."""
        return []

    def lines(self) -> list[str]:
        rate = self.processed / self.wall_time_s if self.wall_time_s > 0 else 0.0
        resumed = f" (+{self.resumed} restored from earlier runs)" if self.resumed else ""
        slow = self.merge.timing.slowest()
        lines = [f"sonic-exatrkx run (dask): {self.processed} events processed{resumed} in "
                 f"{self.chunks} chunks in {self.wall_time_s:.2f} s ({rate:.1f} events/s)"
                 + (f"; slowest: {slow.identifier} {1e3 * slow.time_perevent_s:.2f} "
                    "ms/event" if slow else "")]
        lines += self.merge.lines()[1:]
        lines.append(f"outputs in {self.merge.output.resolve()} (chunks in "
                     f"{CHUNKS}/)")
        return lines


def job_events(cfg: RecoJobConfig) -> list[int]:
    """The job's events (the readers' common events after skip/events)."""
    seq = Sequencer(events=cfg.events, skip=cfg.skip, progress=False)
    seq.add_reader(make_reader(cfg.input_path, input_format=cfg.input_format, truth=False,
                               options=cfg.input_options))
    return seq.sliced_events()


def run_chunk(cfg: RecoJobConfig) -> dict[str, Any]:
    """One task: the job over one chunk (its ``shard``), resumed from its commits."""
    result = run_reco_job(cfg, say=lambda _m: None)
    return {"processed": result.summary.processed, "resumed": result.summary.resumed,
            "failed": len(result.summary.failed)}


@contextlib.contextmanager
def _client(dask: DaskConfig) -> Iterator[Any]:
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:
        raise ConfigurationError("the Dask executor needs dask[distributed] (pip install "
                                 "'sonic-exatrkx[dask]')") from exc
    if dask.scheduler is not None:
        with Client(dask.scheduler) as client:
            yield client
        return
    with LocalCluster(n_workers=dask.workers, threads_per_worker=1, processes=True,
                      host="127.0.0.1", dashboard_address=":0",
                      silence_logs=logging.WARNING) as cluster, \
            Client(cluster) as client:
        yield client


def run_dask_job(cfg: RecoJobConfig, dask: DaskConfig,
                 say: Callable[[str], None] = print, progress: bool | None = None,
                 client: Any = None) -> DaskJobResult:
    """Run ``cfg`` as chunks on Dask and merge them into ``cfg.output``. ``client``: a
    :class:`distributed.Client` of the caller's cluster (e.g. a dask-jobqueue cluster),
    used instead of ``dask.scheduler`` / a LocalCluster."""
    from tqdm import tqdm

    if cfg.shard is not None:
        raise ConfigurationError("a Dask job covers its events in chunks: --shard is for "
                                 "separate batch jobs")
    if cfg.convert_only:
        raise ConfigurationError("--convert-only runs without Dask")
    events = job_events(cfg)
    n = math.ceil(len(events) / dask.chunk_size)
    if cfg.start_over:  # the whole job's folder; the chunks then start fresh
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(cfg.output / CHUNKS)
        cfg = replace(cfg, start_over=False)
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        where = place_inference(cfg, say)
        finder = where.finder
        if where.server is not None:
            if dask.scheduler is not None or client is not None:
                raise ConfigurationError("workers of a remote Dask cluster cannot use a "
                                         "server on this machine: give --server")
            stack.enter_context(where.server)
            finder = replace(finder, servers=tuple(where.server.urls()))
        chunk_dir = cfg.output / CHUNKS
        chunks = [replace(cfg, finder=finder, shard=Shard(k, n),
                          output=chunk_dir / f"chunk{k:05d}", threads=cfg.threads or 1,
                          plots=False, io_process=False)  # a worker process: no children
                  for k in range(n)]
        settings = cfg.settings()
        todo = [c for c in chunks if not _finished(c, settings)]
        say(f"{len(events)} events in {n} chunks of up to {dask.chunk_size} "
            f"({n - len(todo)} already done)")
        if client is None:
            client = stack.enter_context(_client(dask))
        say(f"dask: {len(client.scheduler_info()['workers'])} workers at "
            f"{client.scheduler.address}")
        sizes = {c.output.name: len(c.shard.select(events)) for c in chunks if c.shard}
        futures = [client.submit(run_chunk, c, key=f"sonic-exatrkx-{c.output.name}-"
                                 f"{os.getpid()}", pure=False) for c in todo]
        names = {f.key: c.output.name for f, c in zip(futures, todo, strict=True)}
        processed = resumed = failed = 0
        from distributed import as_completed

        show = progress if progress is not None else sys.stderr.isatty()
        with tqdm(total=sum(sizes[c.output.name] for c in todo), unit="evt",
                  disable=not show) as bar:
            for future in as_completed(futures):
                info = future.result()  # a task's error is the job's error
                processed += info["processed"]
                resumed += info["resumed"]
                failed += info["failed"]
                bar.update(sizes[names[future.key]])
    wall = time.perf_counter() - start
    merged = merge_outputs([c.output for c in chunks], cfg.output, say=say, replace=True)
    return DaskJobResult(merged, n, processed, resumed, wall)


def _finished(chunk: RecoJobConfig, settings: dict[str, object]) -> bool:
    """A chunk done by an earlier run of the same job (another job's chunk is submitted
    and refused by the task, with the settings that differ)."""
    if not Manifest.exists(chunk.output):
        return False
    manifest = Manifest.read(chunk.output)
    return manifest.complete and manifest.settings == settings


__all__ = ["DaskConfig", "DaskJobResult", "job_events", "run_chunk", "run_dask_job"]
