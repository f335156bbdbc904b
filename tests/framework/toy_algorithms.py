"""Small algorithms that exercise the event loop (imported by the framework tests)."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future

import numpy as np

from sonic_exatrkx.framework import (
    Algorithm,
    ExternalWorkAlgorithm,
    ProcessCode,
    Reader,
    ReadHandle,
    WriteHandle,
    Writer,
)


class CountingReader(Reader):
    """Provides events first..last-1; writes a deterministic random array per event."""

    def __init__(self, first: int = 0, last: int = 10, key: str = "data", **kw):
        super().__init__(**kw)
        self.first, self.last = first, last
        self.out = WriteHandle(self, key, np.ndarray)

    def available_events(self):
        return range(self.first, self.last)

    def execute(self, ctx):
        rng = np.random.default_rng(ctx.event)
        self.out(ctx, rng.normal(size=100).astype(np.float32))


class Square(Algorithm):
    def __init__(self, inp: str = "data", out: str = "squared", sleep: float = 0.0, **kw):
        super().__init__(**kw)
        self.inp = ReadHandle(self, inp, np.ndarray)
        self.out = WriteHandle(self, out, np.ndarray)
        self.sleep = sleep

    def execute(self, ctx):
        if self.sleep:
            # Later events finish first, to shake the order of completion.
            threading.Event().wait(self.sleep * (1 + (7 - ctx.event) % 4))
        self.out(ctx, self.inp(ctx) ** 2)


class CodeAt(Algorithm):
    """Returns `code` for the given events, SUCCESS otherwise."""

    def __init__(self, events: set[int], code: ProcessCode, **kw):
        super().__init__(**kw)
        self.events, self.code = events, code

    def execute(self, ctx):
        return self.code if ctx.event in self.events else ProcessCode.SUCCESS


class RaiseAt(Algorithm):
    def __init__(self, events: set[int], **kw):
        super().__init__(**kw)
        self.events = events

    def execute(self, ctx):
        if ctx.event in self.events:
            raise ValueError(f"bad value in event {ctx.event}")


class ListWriter(Writer):
    """Appends (event, checksum) to a file, one line per event, as a single-file writer."""

    def __init__(self, path, key: str = "squared", **kw):
        super().__init__(**kw)
        self.inp = ReadHandle(self, key, np.ndarray)
        self.path = path
        self.events: list[int] = []

    def initialize(self):
        self.fh = open(self.path, "w")  # noqa: SIM115 - closed in finalize/abort

    def execute(self, ctx):
        self.events.append(ctx.event)
        self.fh.write(f"{ctx.event} {self.inp(ctx).sum():.9g}\n")

    def finalize(self):
        self.fh.close()

    def abort(self):
        self.fh.close()


class TimerWork(ExternalWorkAlgorithm):
    """External work that completes after `delay` s on a timer thread; no worker waits."""

    def __init__(self, delay: float, **kw):
        super().__init__(**kw)
        self.delay = delay
        self.out = WriteHandle(self, "external", int)
        self.max_concurrent = 0
        self._pending = 0
        self._lock = threading.Lock()

    def acquire(self, ctx):
        fut: Future = Future()
        with self._lock:
            self._pending += 1
            self.max_concurrent = max(self.max_concurrent, self._pending)

        def done():
            with self._lock:
                self._pending -= 1
            fut.set_result(ctx.event * 10)

        threading.Timer(self.delay, done).start()
        return fut

    def produce(self, ctx, result):
        self.out(ctx, result)


class CoroutineWork(Algorithm):
    """An execute that returns a coroutine: awaited on the loop."""

    def __init__(self, delay: float, **kw):
        super().__init__(**kw)
        self.delay = delay

    def execute(self, ctx):
        async def wait():
            await asyncio.sleep(self.delay)
            return ProcessCode.SUCCESS

        return wait()
