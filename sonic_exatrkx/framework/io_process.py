"""Readers and writers in a child process: input and output off the algorithms' GIL.

Read ahead and write behind put the readers and writers on their own threads, but in one
Python process those threads still take turns with the algorithms for the interpreter
lock: measured here, a CSV read-and-write loop on a thread slowed the ExaTrkX pipeline
from 21 to 36 ms per event, the same loop in another process left it at 21.5 ms
(``docs/performance.md``). With ``Sequencer(io_process=True)`` the readers and writers
live in one child process (``spawn``: no fork of a process holding torch's threads) for
the run; the event loop keeps stand-ins (:class:`RemoteReader`, :class:`RemoteWriter`)
with the same names and data handles, which send each call to the child and wait for the
answer without holding the lock:

- a read runs the reader on an empty store in the child and brings back what it wrote;
- a write sends the values of the writer's read handles and brings back its checkpoint;
- the event's commit (:mod:`.commits`) is written by the child too;
- ``initialize``, ``restore``, ``finalize`` and ``abort`` run in the child, and after
  ``finalize`` / ``abort`` the child's algorithm state (counters, summaries) is copied
  onto the parent's object, so a job reads its readers and writers as before.

Calls keep the Sequencer's order (one at a time: a lock), so outputs are byte-identical
to in-process ones. An error in the child comes back as the exception it raised (the
Sequencer names the algorithm and event as always); a child that dies is one error naming
the algorithm and event, never a hang. Algorithms must pickle (locks are recreated in
the child); external-work readers and writers are refused.
"""

from __future__ import annotations

import io
import logging
import multiprocessing as mp
import pickle
import threading
from collections.abc import Mapping, Sequence
from multiprocessing.connection import Connection
from typing import Any

from sonic_exatrkx.framework.algorithm import (
    Algorithm,
    AlgorithmContext,
    Reader,
    Writer,
    _Handle,
)
from sonic_exatrkx.framework.commits import EventCommits, State
from sonic_exatrkx.framework.errors import ConfigurationError, FrameworkError
from sonic_exatrkx.framework.process_code import ProcessCode
from sonic_exatrkx.framework.store import EventStore

__all__ = ["IOProcess", "IOProcessError", "RemoteCommits", "RemoteReader", "RemoteWriter",
           "remote_chain"]

#: The index of a call to the child's :class:`EventCommits`.
_COMMITS = -1

log = logging.getLogger("sonic_exatrkx.IOProcess")

_LOCK_TYPES = (type(threading.Lock()), type(threading.RLock()))
#: Seconds the child gets to exit after the job before it is killed.
_STOP_TIMEOUT_S = 30.0
#: Seconds to wait for the exit code of a child whose pipe broke.
_DEATH_TIMEOUT_S = 5.0


class IOProcessError(FrameworkError):
    """The I/O child process died or cannot host an algorithm."""


class _Pickler(pickle.Pickler):
    """Pickles locks as new locks: an algorithm's lock guards its own threads only."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, _LOCK_TYPES):
            return (threading.RLock if isinstance(obj, _LOCK_TYPES[1]) else threading.Lock,
                    ())
        return NotImplemented


def _dumps(obj: Any) -> bytes:
    buf = io.BytesIO()
    _Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
    return buf.getvalue()


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling, else a RuntimeError with its type and message."""
    try:
        pickle.loads(_dumps(exc))
        return exc
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")


def _serve(conn: Connection, blob: bytes, log_level: int) -> None:
    """The child: unpickle the algorithms, then answer calls until told to stop."""
    logging.basicConfig(format="%(asctime)s %(name)-28s %(levelname)-7s %(message)s")
    logging.getLogger("sonic_exatrkx").setLevel(log_level)
    algorithms, commits = pickle.loads(blob)
    while True:
        try:
            op, index, args = conn.recv()
        except EOFError:  # the parent is gone
            return
        if op == "stop":
            conn.send(("ok", None))
            return
        try:
            answer = (commits.commit(*args) if index == _COMMITS
                      else _answer(algorithms[index], op, args))
            conn.send_bytes(_dumps(("ok", answer)))
        except BaseException as exc:  # noqa: BLE001 - every error goes back to the parent
            conn.send_bytes(_dumps(("error", _portable(exc))))


def _state(alg: Algorithm) -> dict[str, bytes]:
    """The algorithm's attributes that pickle (pickled), less its handles and logger (the
    parent has its own): what the parent takes back after ``finalize``."""
    out = {}
    for key, value in vars(alg).items():
        if key in ("_reads", "_writes", "logger") or isinstance(value, _Handle):
            continue
        try:
            out[key] = _dumps(value)
        except Exception:  # an open file, a closure: the child's own business
            continue
    return out


def _answer(alg: Algorithm, op: str, args: tuple[Any, ...]) -> Any:
    if op in ("initialize", "finalize", "abort"):
        getattr(alg, op)()
        return _state(alg) if op != "initialize" else None
    if op == "restore":
        alg.restore(*args)  # type: ignore[attr-defined]
        return None
    event, index, values = args
    store = EventStore(event)
    for key, value in values.items():
        store.put(key, value)
    ctx = AlgorithmContext(event=event, index=index, store=store)
    code = alg.execute(ctx)
    if code is not None and not isinstance(code, ProcessCode):
        raise TypeError(f"'{alg.name}' returned {type(code).__name__}; in the I/O process "
                        "readers and writers return a ProcessCode or None")
    if op == "read":
        return code, {h.key: store.get(h.key) for h in alg.writes if h.key in store}
    state = alg.checkpoint(ctx) if code in (None, ProcessCode.SUCCESS) else None
    return code, state


class IOProcess:
    """One child process hosting ``algorithms`` (readers and writers) and the job's
    ``commits`` for a run."""

    def __init__(self, algorithms: Sequence[Algorithm],
                 commits: EventCommits | None = None) -> None:
        self.algorithms = list(algorithms)
        try:
            blob = _dumps((self.algorithms, commits))
        except Exception as exc:
            names = ", ".join(f"'{a.name}'" for a in self.algorithms)
            raise IOProcessError(f"the I/O process cannot host {names}: they do not pickle "
                                 f"({type(exc).__name__}: {exc}); run without io_process"
                                 ) from exc
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._lock = threading.Lock()
        self.process = ctx.Process(target=_serve, name="sonic-exatrkx-io", daemon=True,
                                   args=(child, blob, logging.getLogger("sonic_exatrkx")
                                         .getEffectiveLevel()))
        self.process.start()
        child.close()
        log.debug("I/O process %d hosts %s", self.process.pid,
                  ", ".join(a.name for a in self.algorithms))

    def call(self, index: int, op: str, *args: Any) -> Any:
        """Run ``op`` on algorithm ``index`` (or the commits) in the child; raises what
        it raised."""
        name = "the commits" if index == _COMMITS else f"'{self.algorithms[index].name}'"
        with self._lock:
            try:
                self._conn.send((op, index, args))
                status, value = pickle.loads(self._conn.recv_bytes())
            except (EOFError, OSError) as exc:
                self.process.join(_DEATH_TIMEOUT_S)  # its exit code, when it has one
                code = self.process.exitcode
                raise IOProcessError(
                    f"the I/O process (pid {self.process.pid}) hosting {name} stopped "
                    f"during its {op}" + (f" (exit code {code})" if code is not None else "")
                ) from exc
        if status == "error":
            raise value
        return value

    def close(self) -> None:
        """Stop the child (by its PID if it does not stop by itself)."""
        if self.process.is_alive():
            try:
                with self._lock:
                    self._conn.send(("stop", 0, ()))
                    self._conn.recv()
            except (EOFError, OSError):
                pass
            self.process.join(_STOP_TIMEOUT_S)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self._conn.close()


def _adopt(real: Algorithm, state: dict[str, bytes]) -> None:
    """Copy the child's algorithm state onto the parent's object (its results)."""
    real.__dict__.update({key: pickle.loads(blob) for key, blob in state.items()})


class _Remote:
    """What both stand-ins share: the real algorithm's name and handles, calls sent to
    the child."""

    def _bind(self, real: Algorithm, host: IOProcess, index: int) -> None:
        self.real, self.host, self.index = real, host, index
        self.name = real.name
        self.logger = real.logger
        self._reads = list(real.reads)
        self._writes = list(real.writes)

    def initialize(self) -> None:
        self.host.call(self.index, "initialize")

    def finalize(self) -> None:
        _adopt(self.real, self.host.call(self.index, "finalize"))

    def abort(self) -> None:
        _adopt(self.real, self.host.call(self.index, "abort"))


class RemoteReader(_Remote, Reader):
    """The event loop's stand-in for a reader in the I/O process."""

    def __init__(self, real: Reader, host: IOProcess, index: int) -> None:
        self._bind(real, host, index)

    def available_events(self) -> Sequence[int]:
        return self.real.available_events()

    def execute(self, ctx: AlgorithmContext) -> ProcessCode | None:
        code, values = self.host.call(self.index, "read", ctx.event, ctx.index, {})
        for handle in self.real.writes:
            if handle.key in values:
                handle(ctx, values[handle.key])
        return code


class RemoteWriter(_Remote, Writer):
    """The event loop's stand-in for a writer in the I/O process."""

    def __init__(self, real: Writer, host: IOProcess, index: int) -> None:
        self._bind(real, host, index)
        self._states: dict[int, Any] = {}

    def execute(self, ctx: AlgorithmContext) -> ProcessCode | None:
        values = {h.key: ctx.store.get(h.key, h.kind) for h in self.real.reads
                  if h.key in ctx.store}
        code, state = self.host.call(self.index, "write", ctx.event, ctx.index, values)
        if state is not None:  # what checkpoint() hands the commit next
            self._states[ctx.index] = state
        return code

    def checkpoint(self, ctx: AlgorithmContext) -> Any:
        return self._states.pop(ctx.index, None)

    def restore(self, event: int, state: Any) -> None:
        self.host.call(self.index, "restore", event, state)


class RemoteCommits(EventCommits):
    """The event loop's stand-in for the job's commits: written by the I/O process, read
    here (resuming reads them before the loop starts)."""

    def __init__(self, real: EventCommits, host: IOProcess) -> None:
        super().__init__(real.folder)
        self.host = host

    def commit(self, event: int, status: str, states: Mapping[str, State]) -> None:
        self.host.call(_COMMITS, "commit", event, status, dict(states))


def remote_chain(readers: Sequence[Reader], writers: Sequence[Writer],
                 commits: EventCommits | None = None
                 ) -> tuple[IOProcess, list[RemoteReader], list[RemoteWriter],
                            RemoteCommits | None]:
    """Start the I/O process for ``readers``, ``writers`` and ``commits``; their
    stand-ins."""
    from sonic_exatrkx.framework.algorithm import ExternalWorkAlgorithm

    external = [a.name for a in (*readers, *writers) if isinstance(a, ExternalWorkAlgorithm)]
    if external:
        raise ConfigurationError(f"io_process: {', '.join(external)} do external work; "
                                 "the I/O process runs plain readers and writers only")
    host = IOProcess([*readers, *writers], commits)
    n = len(readers)
    return (host, [RemoteReader(r, host, i) for i, r in enumerate(readers)],
            [RemoteWriter(w, host, n + i) for i, w in enumerate(writers)],
            None if commits is None else RemoteCommits(commits, host))
