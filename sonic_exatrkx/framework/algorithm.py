"""Algorithm, Reader and Writer bases, their data handles and the per-event context."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, Union

import numpy as np

from sonic_exatrkx.framework.errors import ConfigurationError
from sonic_exatrkx.framework.process_code import ProcessCode
from sonic_exatrkx.framework.store import EventStore

T = TypeVar("T")

#: What `execute` may return: a code (None = SUCCESS) now, or external work whose
#: result is a code later. The event loop awaits the work without blocking a thread.
ExecuteResult = Union[ProcessCode, None, Awaitable[Any], "Future[Any]"]


@dataclass
class AlgorithmContext:
    """What an algorithm sees of one event."""

    event: int
    index: int
    store: EventStore


class _Handle(Generic[T]):
    def __init__(self, owner: Algorithm, key: str, kind: type[T] | tuple[type, ...]) -> None:
        if not isinstance(key, str) or not key.strip():
            raise ConfigurationError(
                f"algorithm '{owner.name}': an event store key must be a non-empty string, "
                f"got {key!r}"
            )
        self.owner = owner
        self.key = key
        self.kind = kind

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.owner.name!r}, {self.key!r})"


class ReadHandle(_Handle[T]):
    """Declares at construction that an algorithm reads `key`; call it to read."""

    def __init__(self, owner: Algorithm, key: str, kind: type[T] | tuple[type, ...] = object):
        super().__init__(owner, key, kind)
        owner._reads.append(self)

    def __call__(self, ctx: AlgorithmContext) -> T:
        return ctx.store.get(self.key, self.kind)


class WriteHandle(_Handle[T]):
    """Declares at construction that an algorithm writes `key`; call it to write."""

    def __init__(self, owner: Algorithm, key: str, kind: type[T] | tuple[type, ...] = object):
        super().__init__(owner, key, kind)
        owner._writes.append(self)

    def __call__(self, ctx: AlgorithmContext, value: T) -> None:
        ctx.store.put(self.key, value, self.kind)


class Algorithm:
    """One step of an event's chain.

    Subclasses declare handles in `__init__` and implement `execute(ctx)`. `execute`
    runs on a worker thread; it may return a ProcessCode (None means SUCCESS) or start
    external work and return an awaitable / `concurrent.futures.Future` that resolves to
    a ProcessCode: the loop then goes on with other events while it is pending.
    """

    def __init__(self, *, name: str | None = None, level: int | str | None = None) -> None:
        self.name = name or type(self).__name__
        self._reads: list[ReadHandle[Any]] = []
        self._writes: list[WriteHandle[Any]] = []
        self.logger = logging.getLogger(f"sonic_exatrkx.{self.name}")
        if level is not None:
            self.logger.setLevel(level)

    @property
    def reads(self) -> Sequence[ReadHandle[Any]]:
        return tuple(self._reads)

    @property
    def writes(self) -> Sequence[WriteHandle[Any]]:
        return tuple(self._writes)

    def initialize(self) -> None:
        """Called once before the first event."""

    def execute(self, ctx: AlgorithmContext) -> ExecuteResult:
        raise NotImplementedError(f"{type(self).__name__}.execute")

    def finalize(self) -> None:
        """Called once after the last event of a successful job."""

    def abort(self) -> None:
        """Called instead of `finalize` when the job fails: drop partial outputs."""


class ExternalWorkAlgorithm(Algorithm):
    """CMSSW's acquire/produce split for work done elsewhere (a server, a device).

    `acquire` runs on a worker thread and returns an awaitable or Future for the
    external result; no thread waits for it; `produce` runs on a worker thread once
    the result is there.
    """

    def acquire(self, ctx: AlgorithmContext) -> Awaitable[Any] | Future[Any]:
        raise NotImplementedError(f"{type(self).__name__}.acquire")

    def produce(self, ctx: AlgorithmContext, result: Any) -> ProcessCode | None:
        raise NotImplementedError(f"{type(self).__name__}.produce")

    def execute(self, ctx: AlgorithmContext) -> ExecuteResult:  # pragma: no cover - not used
        raise RuntimeError("the Sequencer calls acquire/produce for external work")


class Reader(Algorithm):
    """Puts one event's input data in the store; knows which events exist."""

    def available_events(self) -> Sequence[int]:
        """Sorted event numbers this reader can provide (a range or a list)."""
        raise NotImplementedError(f"{type(self).__name__}.available_events")


class Writer(Algorithm):
    """Writes event data out. The Sequencer calls each writer in increasing event order,
    one event at a time, so outputs do not depend on threads or events in flight."""

    def checkpoint(self, ctx: AlgorithmContext) -> Mapping[str, np.ndarray] | None:
        """The arrays this writer needs to rebuild its end-of-job output without seeing
        ``ctx``'s event again (resumable jobs, merges); None: nothing (its per-event files
        are complete when ``execute`` returns). See :mod:`.commits`."""
        return None

    def restore(self, event: int, state: Mapping[str, np.ndarray]) -> None:
        """Take back an event committed by an earlier run, instead of ``execute``."""
