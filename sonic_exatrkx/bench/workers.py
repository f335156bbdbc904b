"""Long-lived worker threads for the benchmarks: each keeps its own state (a
tritonclient client must stay in the thread that made it) and pulls items from one shared
queue, so events/s and per-item latencies are measured the same way for every path."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

__all__ = ["WorkerPool", "run_concurrent"]

T = TypeVar("T")


class WorkerPool:
    """``n`` long-lived threads; each runs ``setup()`` once in its own thread and keeps the
    result as its state (a tritonclient HTTP client, which is gevent-based, can only be used
    from the thread that made it). :meth:`close` runs ``teardown(state)`` in each thread."""

    def __init__(self, n: int, setup: Callable[[], Any] = lambda: None,
                 teardown: Callable[[Any], None] = lambda _s: None) -> None:
        self._jobs: list[queue.Queue[Callable[[Any], None] | None]] = [
            queue.Queue() for _ in range(n)]
        self._ready: queue.Queue[BaseException | None] = queue.Queue()
        self._threads = [threading.Thread(target=self._loop, args=(q, setup, teardown),
                                          name=f"bench-{i}", daemon=True)
                         for i, q in enumerate(self._jobs)]
        for t in self._threads:
            t.start()
        errors = [e for e in (self._ready.get() for _ in self._threads) if e is not None]
        if errors:
            self.close()
            raise errors[0]

    def _loop(self, jobs: queue.Queue[Callable[[Any], None] | None],
              setup: Callable[[], Any], teardown: Callable[[Any], None]) -> None:
        try:
            state = setup()
        except BaseException as exc:  # noqa: BLE001 - reported to the constructor
            self._ready.put(exc)
            return
        self._ready.put(None)
        try:
            while (job := jobs.get()) is not None:
                job(state)
        finally:
            teardown(state)

    def map(self, call: Callable[[Any, T], Any], items: Sequence[T], concurrency: int
            ) -> tuple[float, list[float], list[Any]]:
        """``call(state, item)`` for every item from the first ``concurrency`` threads,
        sharing one queue. Returns the wall time and each item's latency (s) and result, in
        item order; an exception in any call is raised once all threads stopped."""
        if not 1 <= concurrency <= len(self._jobs):
            raise ValueError(f"concurrency {concurrency} not in 1..{len(self._jobs)}")
        lock = threading.Lock()
        order = iter(range(len(items)))
        latencies = [0.0] * len(items)
        results: list[Any] = [None] * len(items)
        failed = threading.Event()
        done: queue.Queue[BaseException | None] = queue.Queue()

        def job(state: Any) -> None:
            try:
                while not failed.is_set():
                    with lock:
                        i = next(order, None)
                    if i is None:
                        break
                    t0 = time.perf_counter()
                    results[i] = call(state, items[i])
                    latencies[i] = time.perf_counter() - t0
            except BaseException as exc:  # noqa: BLE001 - raised in the caller
                failed.set()
                done.put(exc)
                return
            done.put(None)

        t0 = time.perf_counter()
        for q in self._jobs[:concurrency]:
            q.put(job)
        errors = [e for e in (done.get() for _ in range(concurrency)) if e is not None]
        wall = time.perf_counter() - t0
        if errors:
            raise errors[0]
        return wall, latencies, results

    def close(self) -> None:
        for q in self._jobs:
            q.put(None)
        for t in self._threads:
            t.join(timeout=30)

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_concurrent(call: Callable[[T], Any], items: Sequence[T], concurrency: int
                   ) -> tuple[float, list[float], list[Any]]:
    """``call(item)`` for every item from ``concurrency`` fresh threads (see
    :meth:`WorkerPool.map`)."""
    with WorkerPool(concurrency) as pool:
        return pool.map(lambda _state, item: call(item), items, concurrency)
