"""The event loop: runs readers, algorithms and writers over a slice of events.

Events are coroutines on one asyncio loop; CPU work goes to a pool of `num_threads`
threads and up to `max_in_flight` events are in the algorithms at once. External work (an
awaitable or Future returned by an algorithm) is awaited on the loop, so while a server
computes one event no thread is blocked and other events keep moving. Writers run in
event order, so outputs are identical whatever the thread and in-flight settings.

Read ahead and write behind keep the input and output off the algorithms' path, as a
framework's I/O threads do: with ``read_ahead`` > 0 the readers run on their own thread,
up to that many events ahead of the algorithms; with ``write_behind`` > 0 the writers
(and the event's commit) run on their own thread, in event order, while the algorithms
go on with up to that many later events. An event is committed only after its writers
have finished, and commits stay in event order, so a killed job resumes as before. When
an event fails (or an algorithm ends the job), the events before it are still written
and committed; it and the later ones are not. With ``io_process`` the readers and writers
run in a child process (:mod:`.io_process`): their Python work no longer takes turns with
the algorithms' for the interpreter lock.

One module for the configuration (``Sequencer``) and the run's asyncio state
(``_EventLoop``): the slot, ordering and stop rules above are one state machine read best
in one place; what stands apart already lives beside it (commits, shards, timing, services,
the I/O process).
"""

from __future__ import annotations

import asyncio
import csv
import inspect
import logging
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from sonic_exatrkx.checks import check_count
from sonic_exatrkx.framework.algorithm import (
    Algorithm,
    AlgorithmContext,
    ExternalWorkAlgorithm,
    Reader,
    Writer,
)
from sonic_exatrkx.framework.commits import DONE, SKIPPED, EventCommits
from sonic_exatrkx.framework.errors import (
    AlgorithmError,
    ConfigurationError,
    FailedEvent,
    JobAborted,
)
from sonic_exatrkx.framework.process_code import ProcessCode
from sonic_exatrkx.framework.service import Service
from sonic_exatrkx.framework.shard import Shard
from sonic_exatrkx.framework.store import EventStore, nearest_names
from sonic_exatrkx.framework.timing import TimingTable

log = logging.getLogger("sonic_exatrkx.Sequencer")


@dataclass
class RunSummary:
    """What a finished job did; `failed` is filled when errors do not stop the job."""

    events: list[int] = field(default_factory=list)
    processed: int = 0
    skipped: int = 0
    failed: list[FailedEvent] = field(default_factory=list)
    ended_at: int | None = None
    resumed: int = 0  # events restored from the commits of an earlier run
    wall_time_s: float = 0.0
    timing: TimingTable = field(default_factory=TimingTable)

    @property
    def events_per_second(self) -> float:
        return self.processed / self.wall_time_s if self.wall_time_s > 0 else 0.0

    def line(self) -> str:
        """The job in one line: events, the event loop's wall time and rate (services'
        start-up and the writers' end-of-job outputs are outside it), and the algorithm
        that takes longest per event (``:external``: an event waiting for its external
        work, e.g. a served inference)."""
        slow = self.timing.slowest()
        if slow is None:
            slowest = ""
        elif slow.identifier.endswith(":external"):
            slowest = (f"; slowest step: {slow.identifier.removesuffix(':external')} waiting "
                       f"for its external work, {1e3 * slow.time_perevent_s:.2f} ms per event")
        else:
            slowest = (f"; slowest algorithm: {slow.identifier} "
                       f"{1e3 * slow.time_perevent_s:.2f} ms per event")
        resumed = f" (+{self.resumed} restored from an earlier run)" if self.resumed else ""
        return (
            f"{self.processed} events processed{resumed}, {self.skipped} skipped, "
            f"{len(self.failed)} failed in {self.wall_time_s:.2f} s of event loop "
            f"({self.events_per_second:.1f} events/s){slowest}"
        )


class _Stop(Exception):
    """Internal: this event's chain ends here."""


class Sequencer:
    """Configure with keyword arguments, add readers/algorithms/writers, then `run()`."""

    def __init__(
        self,
        *,
        events: int | None = None,
        skip: int = 0,
        num_threads: int | None = None,
        max_in_flight: int | None = None,
        output_dir: str | os.PathLike[str] | None = None,
        log_level: int | str = logging.INFO,
        continue_on_error: bool = False,
        progress: bool | None = None,
        shard: Shard | None = None,
        commits: EventCommits | None = None,
        read_ahead: int = 2,
        write_behind: int = 2,
        io_process: bool = False,
    ) -> None:
        if events is not None and events < 0:
            raise ConfigurationError(f"Sequencer: events must be >= 0 or None, got {events}")
        if skip < 0:
            raise ConfigurationError(f"Sequencer: skip must be >= 0, got {skip}")
        num_threads = num_threads or os.cpu_count() or 1
        check_count(num_threads, "Sequencer: num_threads", error=ConfigurationError)
        max_in_flight = max_in_flight or num_threads
        check_count(max_in_flight, "Sequencer: max_in_flight", error=ConfigurationError)
        check_count(read_ahead, "Sequencer: read_ahead", minimum=0, error=ConfigurationError)
        check_count(write_behind, "Sequencer: write_behind", minimum=0,
                    error=ConfigurationError)
        self.events = events
        self.skip = skip
        self.num_threads = num_threads
        self.max_in_flight = max_in_flight
        #: Events read ahead of the algorithms on a reader thread (0: readers run in the
        #: event's slot on the worker threads).
        self.read_ahead = read_ahead
        #: Events whose writers may still run, on a writer thread, while the algorithms go
        #: on with later ones (0: writers run in the event's slot on the worker threads).
        self.write_behind = write_behind
        #: Readers and writers in a child process for the run (:mod:`.io_process`).
        self.io_process = io_process
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.continue_on_error = continue_on_error
        self.progress = progress
        self.shard = shard
        self.commits = commits
        self.services: list[Service] = []
        self.readers: list[Reader] = []
        self.algorithms: list[Algorithm] = []
        self.writers: list[Writer] = []
        logging.getLogger("sonic_exatrkx").setLevel(log_level)
        if not logging.getLogger().handlers and not logging.getLogger("sonic_exatrkx").handlers:
            logging.basicConfig(format="%(asctime)s %(name)-28s %(levelname)-7s %(message)s")

    # -- configuration -----------------------------------------------------------------
    def add_service(self, service: Service) -> Sequencer:
        """A job-wide service, started before the algorithms initialize and ended after
        the job (see :mod:`sonic_exatrkx.framework.service`)."""
        if not isinstance(service, Service):
            raise ConfigurationError(f"add_service: {service!r} is not a Service")
        if any(s.name == service.name for s in self.services):
            raise ConfigurationError(f"add_service: a service named '{service.name}' was "
                                     "already added")
        self.services.append(service)
        return self

    def add_reader(self, reader: Reader) -> Sequencer:
        if not isinstance(reader, Reader):
            raise ConfigurationError(f"add_reader: {reader!r} is not a Reader")
        self.readers.append(self._unique(reader))
        return self

    def add_algorithm(self, algorithm: Algorithm) -> Sequencer:
        if isinstance(algorithm, Reader | Writer) or not isinstance(algorithm, Algorithm):
            raise ConfigurationError(
                f"add_algorithm: {algorithm!r} must be an Algorithm (use add_reader/add_writer)"
            )
        self.algorithms.append(self._unique(algorithm))
        return self

    def add_writer(self, writer: Writer) -> Sequencer:
        if not isinstance(writer, Writer):
            raise ConfigurationError(f"add_writer: {writer!r} is not a Writer")
        self.writers.append(self._unique(writer))
        return self

    def _unique(self, alg: Algorithm) -> Algorithm:
        if any(a.name == alg.name for a in self.chain):
            raise ConfigurationError(f"two algorithms are named '{alg.name}'; names must differ")
        return alg

    @property
    def chain(self) -> list[Algorithm]:
        """Readers, then algorithms, then writers: the order each event runs them."""
        return [*self.readers, *self.algorithms, *self.writers]

    def check_chain(self) -> None:
        """Every key read must be written earlier in the chain, and written once."""
        chain = self.chain
        producer: dict[str, Algorithm] = {}
        for position, alg in enumerate(chain):
            for handle in alg.reads:
                if handle.key in producer:
                    writer = next(h for h in producer[handle.key].writes if h.key == handle.key)
                    if _disjoint_types(writer.kind, handle.kind):
                        raise ConfigurationError(
                            f"'{alg.name}' reads '{handle.key}' as {_kind(handle.kind)} but "
                            f"'{producer[handle.key].name}' writes it as {_kind(writer.kind)}"
                        )
                    continue
                later = [
                    a for a in chain[position + 1 :] if any(h.key == handle.key for h in a.writes)
                ]
                if later:
                    raise ConfigurationError(
                        f"'{alg.name}' reads '{handle.key}', but its producer "
                        f"'{later[0].name}' comes later in the chain: move it before "
                        f"'{alg.name}'"
                    )
                near = nearest_names(handle.key, list(producer))
                hint = f"; did you mean {', '.join(repr(n) for n in near)}?" if near else ""
                raise ConfigurationError(
                    f"'{alg.name}' reads '{handle.key}', which no algorithm writes{hint} "
                    f"(written keys: {', '.join(sorted(producer)) or 'none'})"
                )
            for handle in alg.writes:
                if handle.key in producer:
                    raise ConfigurationError(
                        f"'{alg.name}' and '{producer[handle.key].name}' both write "
                        f"'{handle.key}'; event store keys are write-once"
                    )
                producer[handle.key] = alg

    def event_numbers(self) -> list[int]:
        """The events this job processes: readers' common range, then skip/events, then
        the shard's block (:mod:`sonic_exatrkx.framework.shard`)."""
        events = self.sliced_events()
        return self.shard.select(events) if self.shard is not None else events

    def sliced_events(self) -> list[int]:
        """The whole job's events before sharding: readers' common range, skip/events."""
        if self.readers:
            common: list[int] | None = None
            for reader in self.readers:
                available = list(reader.available_events())
                common = (
                    available
                    if common is None
                    else [e for e in common if e in set(available)]
                )
            assert common is not None
            if not common:
                raise ConfigurationError(
                    "the readers have no event in common: "
                    + "; ".join(
                        f"{r.name}: {_describe(list(r.available_events()))}" for r in self.readers
                    )
                )
        elif self.events is not None:
            common = list(range(self.skip + self.events))
        else:
            raise ConfigurationError("no reader is configured, so `events` must be given")
        if self.skip >= len(common) and (self.events or 0) > 0:
            raise ConfigurationError(
                f"skip={self.skip} leaves no events: the readers provide {len(common)} "
                f"({_describe(common)})"
            )
        stop = None if self.events is None else self.skip + self.events
        if stop is not None and stop > len(common):
            log.warning(
                "asked for %d events after skipping %d, but only %d are available",
                self.events, self.skip, max(0, len(common) - self.skip),
            )
        return common[self.skip : stop]

    # -- running -------------------------------------------------------------------------
    def run(self) -> RunSummary:
        """Process the events. Raises AlgorithmError or JobAborted when the job fails.

        Services start before the algorithms initialize and end after the job, in
        reverse order, also when it fails."""
        self.check_chain()
        events = self.event_numbers()
        started: list[Service] = []
        try:
            for service in self.services:
                service.start_job()
                started.append(service)
            return self._run(events)
        finally:
            for service in reversed(started):
                try:
                    service.end_job()
                except Exception:
                    log.exception("service '%s' failed at the end of the job", service.name)

    def _run(self, events: list[int]) -> RunSummary:
        if not self.io_process:
            return self._run_chain(events)
        from sonic_exatrkx.framework.io_process import remote_chain

        readers, writers, commits = self.readers, self.writers, self.commits
        host, self.readers, self.writers, self.commits = remote_chain(readers, writers,
                                                                      commits)
        try:
            return self._run_chain(events)
        finally:  # the parent's readers and writers hold the child's state now
            self.readers, self.writers, self.commits = readers, writers, commits
            host.close()

    def _run_chain(self, events: list[int]) -> RunSummary:
        if self.output_dir is not None:
            self.output_dir.mkdir(parents=True, exist_ok=True)
        summary = RunSummary(events=events)
        for alg in self.chain:
            alg.initialize()
        start = time.perf_counter()
        ok = False
        try:
            todo = self._restore(events, summary)
            log.info(
                "processing %d events (%s) with %d threads, %d in flight",
                len(todo), _describe(todo), self.num_threads, self.max_in_flight,
            )
            asyncio.run(_EventLoop(self, summary).run(todo, first_index=len(events)
                                                      - len(todo)))
            ok = True
        finally:
            summary.wall_time_s = time.perf_counter() - start
            for alg in self.chain:
                try:
                    alg.finalize() if ok else alg.abort()
                except Exception:
                    if ok:
                        raise
                    log.exception("'%s' failed while cleaning up", alg.name)
            if self.output_dir is not None:
                summary.timing.write_csv(self.output_dir / "timing.csv")
                if summary.failed:
                    _write_failed(self.output_dir / "failed_events.csv", summary.failed)
        log.debug("%s", summary.line())  # the caller prints the summary
        if summary.failed:
            log.warning(
                "%d events failed: %s",
                len(summary.failed),
                ", ".join(f"{f.event} ({f.algorithm})" for f in summary.failed),
            )
        return summary


    def _restore(self, events: list[int], summary: RunSummary) -> list[int]:
        """Restore the writers from the commits of an earlier run of this job, for the
        longest run of committed events at the start of ``events`` (writers see events
        in order, so a killed job's commits are such a prefix); the rest is processed."""
        if self.commits is None:
            return events
        committed = set(self.commits.events())
        n = 0
        while n < len(events) and events[n] in committed:
            n += 1
        for event in events[:n]:
            status, states = self.commits.load(event)
            if status == SKIPPED:
                summary.skipped += 1
                continue
            for writer in self.writers:
                writer.restore(event, states.get(writer.name, {}))
        summary.resumed = n - summary.skipped
        if n:
            log.info("restored %d committed events (%s) from %s", n, _describe(events[:n]),
                     self.commits.folder)
        return events[n:]


class _EventLoop:
    """One run's asyncio state: thread pools, slot limits, writer order, stop index."""

    def __init__(self, seq: Sequencer, summary: RunSummary) -> None:
        self.seq = seq
        self.summary = summary
        self.pool = ThreadPoolExecutor(seq.num_threads, thread_name_prefix="sequencer")
        self.read_pool = (ThreadPoolExecutor(1, thread_name_prefix="sequencer-read")
                          if seq.read_ahead else self.pool)
        self.write_pool = (ThreadPoolExecutor(1, thread_name_prefix="sequencer-write")
                           if seq.write_behind else self.pool)
        self.write_turn = 0
        self.skipped: set[int] = set()  # indices an algorithm skipped
        self.turn = asyncio.Condition()
        self.end_index: int | None = None
        self.fatal: BaseException | None = None
        self.fatal_index: int | None = None
        # Slots: events read but not yet in the algorithms, and events in the algorithms
        # (FIFO: events take them in event order, so the next event to write never waits
        # for a slot held by a later one).
        self.ahead = asyncio.Semaphore(max(seq.read_ahead, 1))
        self.computing = asyncio.Semaphore(seq.max_in_flight)

    @property
    def stop_index(self) -> int | None:
        """The first event index not to write: where the job ended or failed."""
        stops = [i for i in (self.end_index, self.fatal_index) if i is not None]
        return min(stops) if stops else None

    def dropped(self, index: int) -> bool:
        stop = self.stop_index
        return stop is not None and index >= stop

    async def run(self, events: Sequence[int], first_index: int = 0) -> None:
        loop = asyncio.get_running_loop()
        seq = self.seq
        self.write_turn = first_index
        # Events open at once: reading ahead, in the algorithms, waiting for the writers.
        opened = asyncio.Semaphore(seq.max_in_flight + seq.read_ahead + seq.write_behind)
        show = seq.progress if seq.progress is not None else sys.stderr.isatty()
        bar = tqdm(total=len(events), unit="evt", disable=not show, dynamic_ncols=True)
        tasks: list[asyncio.Task[None]] = []
        try:
            # Indices continue after the events restored from commits.
            for index, event in enumerate(events, start=first_index):
                await opened.acquire()
                if self.stop_index is not None:  # every earlier event is started already
                    opened.release()
                    break
                task = loop.create_task(self.process(index, event))
                task.add_done_callback(lambda _t: (opened.release(), bar.update()))
                tasks.append(task)
            await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        finally:
            bar.close()
            for pool in {self.read_pool, self.write_pool, self.pool}:
                pool.shutdown(wait=True, cancel_futures=True)
        if self.fatal is not None:
            raise self.fatal

    async def process(self, index: int, event: int) -> None:
        """One event: readers (ahead, on the reader thread, holding a read-ahead slot),
        algorithms (holding one of the ``max_in_flight`` slots), then its writers in event
        order (behind, on the writer thread, once within ``write_behind`` of the next
        event to write)."""
        seq = self.seq
        ctx = AlgorithmContext(event=event, index=index, store=EventStore(event))
        write = False
        held: list[asyncio.Semaphore] = []  # the slots this event holds now
        try:
            chain: tuple[Algorithm, ...] = (*seq.readers, *seq.algorithms)
            if seq.read_ahead:
                await self._take(self.ahead, held)
                if not await self.run_chain(seq.readers, ctx, self.read_pool):
                    return
                chain = tuple(seq.algorithms)
            if self.dropped(index):
                return
            await self._take(self.computing, held)
            if seq.read_ahead:
                self._give(self.ahead, held)
            write = await self.run_chain(chain, ctx, self.pool)
            if seq.write_behind:  # the next event may start while this one is written
                # Within write_behind of the next event to write: events finish their
                # algorithms out of order, and the next one to write must never wait for
                # room taken by later ones.
                async with self.turn:
                    await self.turn.wait_for(
                        lambda: index < self.write_turn + seq.write_behind)
                self._give(self.computing, held)
        except _Stop:
            pass
        finally:
            if self.ahead in held:
                self._give(self.ahead, held)
            try:
                await self.write_in_order(ctx, write)
            finally:
                while held:
                    held.pop().release()

    @staticmethod
    async def _take(slots: asyncio.Semaphore, held: list[asyncio.Semaphore]) -> None:
        await slots.acquire()
        held.append(slots)

    @staticmethod
    def _give(slots: asyncio.Semaphore, held: list[asyncio.Semaphore]) -> None:
        held.remove(slots)
        slots.release()

    async def run_chain(self, chain: Sequence[Algorithm], ctx: AlgorithmContext,
                        pool: ThreadPoolExecutor) -> bool:
        """Run ``chain`` on the event; False when an algorithm's code stopped it."""
        for alg in chain:
            code = await self.call(alg, ctx, pool)
            if code is not ProcessCode.SUCCESS:
                self.on_code(alg, ctx, code)
                return False
        return True

    async def write_in_order(self, ctx: AlgorithmContext, write: bool) -> None:
        async with self.turn:
            await self.turn.wait_for(lambda: self.write_turn == ctx.index)
        try:
            if write and not self.dropped(ctx.index):
                states = {}
                for writer in self.seq.writers:
                    code = await self.call(writer, ctx, self.write_pool)
                    if code is not ProcessCode.SUCCESS:
                        self.on_code(writer, ctx, code)
                        break
                    state = writer.checkpoint(ctx)
                    if state:
                        states[writer.name] = state
                else:
                    self.summary.processed += 1
                    await self.commit(ctx, DONE, states)
            if not self.dropped(ctx.index) and ctx.index in self.skipped:
                await self.commit(ctx, SKIPPED, {})
        except _Stop:
            pass
        finally:
            async with self.turn:
                self.write_turn += 1
                self.turn.notify_all()

    async def commit(self, ctx: AlgorithmContext, status: str,
                     states: dict[str, Any]) -> None:
        """Commit the event (resumable jobs): after its writers, before the next event's."""
        commits = self.seq.commits
        if commits is not None:
            await asyncio.get_running_loop().run_in_executor(
                self.write_pool, commits.commit, ctx.event, status, states)

    def on_code(self, alg: Algorithm, ctx: AlgorithmContext, code: ProcessCode) -> None:
        if code is ProcessCode.SKIP:
            self.summary.skipped += 1
            self.skipped.add(ctx.index)
        elif code is ProcessCode.END:
            if self.end_index is None or ctx.index < self.end_index:
                self.end_index = ctx.index
                self.summary.ended_at = ctx.event
            log.info("'%s' ended the job at event %d", alg.name, ctx.event)
        elif code is ProcessCode.ABORT:
            self.fail(JobAborted(alg.name, ctx.event), ctx.index)

    def fail(self, error: BaseException, index: int) -> None:
        """The job fails with the error of its earliest failing event."""
        if self.fatal_index is None or index < self.fatal_index:
            self.fatal, self.fatal_index = error, index

    async def call(self, alg: Algorithm, ctx: AlgorithmContext,
                   pool: ThreadPoolExecutor) -> ProcessCode:
        """Run one algorithm on one event in ``pool``; returns its code or raises _Stop."""
        loop = asyncio.get_running_loop()
        timing = self.summary.timing
        try:
            if isinstance(alg, ExternalWorkAlgorithm):
                work, dt = await loop.run_in_executor(pool, _timed, alg.acquire, ctx)
                timing.add(alg.name, dt)
                waited = time.perf_counter()
                result = await _await_external(work)
                timing.add(f"{alg.name}:external", time.perf_counter() - waited)
                code, dt = await loop.run_in_executor(pool, _timed, alg.produce, ctx, result)
                timing.rows[alg.name].time_total_s += dt
            else:
                code, dt = await loop.run_in_executor(pool, _timed, alg.execute, ctx)
                timing.add(alg.name, dt)
                if inspect.isawaitable(code) or isinstance(code, Future):
                    waited = time.perf_counter()
                    code = await _await_external(code)
                    timing.add(f"{alg.name}:external", time.perf_counter() - waited)
            return _as_code(alg, code)
        except (asyncio.CancelledError, _Stop):
            raise
        except Exception as exc:
            error = AlgorithmError(alg.name, ctx.event, exc)
            error.__cause__ = exc
            if self.seq.continue_on_error:
                log.error("%s", error)
                self.summary.failed.append(FailedEvent(ctx.event, alg.name, str(exc)))
            else:
                self.fail(error, ctx.index)
            raise _Stop from exc


def _timed(fn: Any, *args: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


async def _await_external(work: Any) -> Any:
    if isinstance(work, Future):
        return await asyncio.wrap_future(work)
    if inspect.isawaitable(work):
        return await work
    raise TypeError(f"external work must be an awaitable or a Future, got {type(work).__name__}")


def _as_code(alg: Algorithm, code: Any) -> ProcessCode:
    if code is None:
        return ProcessCode.SUCCESS
    if isinstance(code, ProcessCode):
        return code
    raise TypeError(f"'{alg.name}' returned {code!r}; expected a ProcessCode or None")


def _disjoint_types(written: Any, read: Any) -> bool:
    written_t = written if isinstance(written, tuple) else (written,)
    read_t = read if isinstance(read, tuple) else (read,)
    return not any(issubclass(w, r) or issubclass(r, w) for w in written_t for r in read_t)


def _kind(kind: Any) -> str:
    if isinstance(kind, tuple):
        return " or ".join(k.__name__ for k in kind)
    return kind.__name__


def _describe(events: Sequence[int]) -> str:
    if not events:
        return "none"
    if len(events) == events[-1] - events[0] + 1:
        return f"{events[0]}..{events[-1]}"
    return f"{len(events)} events from {events[0]} to {events[-1]}"


def _write_failed(path: Path, failed: list[FailedEvent]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["event", "algorithm", "error"])
        for item in sorted(failed, key=lambda x: x.event):
            w.writerow([item.event, item.algorithm, item.error])
    os.replace(tmp, path)
