"""SonicProducer: an algorithm whose work is done by a client, in one of three modes.

As in CMSSW's SonicCore, the base class owns ``acquire`` and ``produce`` (CMSSW's
``final`` ones) and a subclass writes two hooks: ``make_inputs(ctx)`` reads the event
store and returns the client's input arrays; ``put_outputs(ctx, outputs)`` writes the
outputs back. In between the base dispatches in its mode, which decides who waits:

- ``sync``: the worker thread running ``acquire`` makes the blocking call;
- ``pseudo-async``: the blocking call runs on one of ``helper_threads`` helper threads;
  the event loop moves on, but a helper thread waits on each request;
- ``async``: the client's non-blocking API completes a future; no thread waits, so with
  the Sequencer's ``max_in_flight`` events open that many requests are outstanding.

``mode=None`` (the default) is resolved once, at ``initialize``, from the client the job
ends up with: ``async`` for a remote client, ``sync`` for one in this process.

Outputs do not depend on the mode: the same client computes them.

Every event gets a trace (input preparation, round trip from dispatch to answer,
produce); at the end of the job :meth:`SonicProducer.trace_summary` sets the round trip
against the time the requests spent queued and computing in Triton (its statistics API,
per model, over the job), which leaves the network and client overhead when Triton's
counts are this job's requests.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from sonic_exatrkx.framework import (
    AlgorithmContext,
    ConfigurationError,
    ExternalWorkAlgorithm,
    ProcessCode,
)
from sonic_exatrkx.sonic.client import InferenceClient, Tensors, completed
from sonic_exatrkx.sonic.errors import check_count
from sonic_exatrkx.sonic.metrics import MetricsServer, write_metrics
from sonic_exatrkx.sonic.stats import ClientStats, ServerTiming, round_trip_split

MODES = ("sync", "pseudo-async", "async")


class SonicProducer(ExternalWorkAlgorithm):
    """Base of algorithms that hand their inference to an :class:`InferenceClient`."""

    def __init__(self, *, mode: str | None = None, helper_threads: int = 4,
                 metrics_file: str | os.PathLike[str] | None = None,
                 trace_file: str | os.PathLike[str] | None = None,
                 metrics_port: int | None = None,
                 name: str | None = None, level: int | str | None = None) -> None:
        super().__init__(name=name, level=level)
        if mode is not None and mode not in MODES:
            raise ConfigurationError(f"{self.name}: mode must be one of {MODES}, "
                                     f"got {mode!r}")
        check_count(helper_threads, f"{self.name}: helper_threads")
        self.requested_mode = mode
        self.mode = mode or "sync"  # resolved against the client at initialize
        self.helper_threads = helper_threads
        self.metrics_file = Path(metrics_file) if metrics_file is not None else None
        self.trace_file = Path(trace_file) if trace_file is not None else None
        self.metrics_port = metrics_port
        self.metrics_server: MetricsServer | None = None
        self.client: InferenceClient | None = None
        self._helpers: ThreadPoolExecutor | None = None
        #: Per event: (event, prep_s, round_trip_s, produce_s), in completion order.
        self.traces: list[tuple[int, float, float, float]] = []
        self._pending: dict[int, tuple[float, float]] = {}
        self._server_timings: list[ServerTiming] | None = None  # taken at finalize
        self._trace_lock = threading.Lock()

    # -- what subclasses write -------------------------------------------------------
    def make_inputs(self, ctx: AlgorithmContext) -> Mapping[str, np.ndarray]:
        """The client's input arrays for this event."""
        raise NotImplementedError(f"{type(self).__name__}.make_inputs")  # pragma: no cover

    def put_outputs(self, ctx: AlgorithmContext, outputs: Mapping[str, Any]
                    ) -> ProcessCode | None:
        """Store the client's outputs for this event."""
        raise NotImplementedError(f"{type(self).__name__}.put_outputs")  # pragma: no cover

    # -- acquire / produce (the base's, traced) --------------------------------------
    def acquire(self, ctx: AlgorithmContext) -> Future[Any]:
        """Make the inputs, dispatch them in this producer's mode and trace the event."""
        start = time.perf_counter()
        inputs = self.make_inputs(ctx)
        sent = time.perf_counter()
        future = self.dispatch(inputs)

        def arrived(_f: Any) -> None:
            with self._trace_lock:
                self._pending[ctx.index] = (sent - start, time.perf_counter() - sent)

        future.add_done_callback(arrived)
        return future

    def produce(self, ctx: AlgorithmContext, outputs: Any) -> ProcessCode | None:
        start = time.perf_counter()
        code = self.put_outputs(ctx, outputs)
        with self._trace_lock:
            prep, wait = self._pending.pop(ctx.index, (float("nan"), float("nan")))
            self.traces.append((ctx.event, prep, wait, time.perf_counter() - start))
        return code

    def write_traces(self, path: str | os.PathLike[str]) -> Path:
        """Per-event CSV: event, client prep, round trip (dispatch to answer) and produce
        times in ms, sorted by event."""
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        with self._trace_lock:
            rows = sorted(self.traces)
        lines = ["event,prep_ms,round_trip_ms,produce_ms"]
        lines += [f"{e},{1e3 * p:.3f},{1e3 * w:.3f},{1e3 * d:.3f}" for e, p, w, d in rows]
        out.write_text("\n".join(lines) + "\n")
        return out

    # -- dispatch --------------------------------------------------------------------
    def dispatch(self, inputs: Mapping[str, np.ndarray]) -> Future[Tensors]:
        """Send ``inputs`` to the client in this producer's mode; returns the outputs'
        future (already done in sync mode)."""
        client = self._require_client()
        if self.mode == "sync":
            try:
                return completed(client.infer(inputs))
            except Exception as exc:  # noqa: BLE001 - reported through the future
                return completed(error=exc)
        if self.mode == "pseudo-async":
            if self._helpers is None:
                self._helpers = ThreadPoolExecutor(self.helper_threads,
                                                   thread_name_prefix=f"{self.name}-helper")
            return self._helpers.submit(client.infer, inputs)
        return client.infer_async(inputs)

    # -- life cycle ------------------------------------------------------------------
    def _require_client(self) -> InferenceClient:
        if self.client is None:
            raise ConfigurationError(f"{self.name}: no client configured")
        return self.client

    def initialize(self) -> None:
        client = self._require_client()
        self.mode = self.requested_mode or ("async" if client.remote else "sync")
        if self.mode == "pseudo-async" and self._helpers is None:
            self._helpers = ThreadPoolExecutor(self.helper_threads,
                                               thread_name_prefix=f"{self.name}-helper")
        self._server_timings = None
        client.check()
        if self.metrics_port is not None and self.metrics_server is None:
            self.metrics_server = MetricsServer(self.metrics_port, self.metrics_source)
            self.logger.info("%s: client metrics at %s", self.name, self.metrics_server.url)

    @property
    def stats(self) -> list[ClientStats]:
        """Statistics of every client this producer uses (remote, local, fallback)."""
        return self.client.all_stats() if self.client is not None else []

    def server_timings(self) -> list[ServerTiming]:
        """Triton's view of this job's requests, per model and server (kept from the
        end of the job, so it is still there after the server stopped)."""
        if self._server_timings is not None:
            return self._server_timings
        return self.client.server_stats() if self.client is not None else []

    def trace_summary(self) -> list[str]:
        """Per-event traces in a few lines: input preparation, dispatch to answer and
        output storing (median, 90 %), and for a served job the mean from dispatch to
        answer split into time in Triton (queue + compute, summed over the models an event
        visits) and the rest (:func:`~sonic_exatrkx.sonic.stats.round_trip_split`)."""
        with self._trace_lock:
            rows = np.array([t[1:] for t in self.traces], dtype=np.float64).reshape(-1, 3)
        rows = rows[np.isfinite(rows).all(axis=1)] * 1e3
        if rows.size == 0:
            return []
        p50, p90 = np.percentile(rows, 50, axis=0), np.percentile(rows, 90, axis=0)
        mean = rows.mean(axis=0)
        lines = [f"{self.name} trace: {len(rows)} events; per event, median (p90): inputs "
                 f"prepared {p50[0]:.2f} ms ({p90[0]:.2f}), dispatch to answer "
                 f"{p50[1]:.2f} ms ({p90[1]:.2f}; mean {mean[1]:.2f}), outputs stored "
                 f"{p50[2]:.2f} ms"]
        timings = [t for t in self.server_timings() if t.inferences > 0]
        if timings:
            lines.append(round_trip_split(f"{self.name} trace", float(mean[1]), timings,
                                          self.stats))
        return lines

    def stats_summary(self) -> str:
        """Lines for the job summary: one per client, Triton's timing per model and
        server, and the trace summary."""
        lines = [s.line() for s in self.stats if s.requests]
        per_server = self.client.per_server_stats() if self.client is not None else []
        if len({s.server for s in per_server}) > 1:  # a pool
            lines += [s.line() for s in per_server if s.requests]
        lines += [t.line() for t in self.server_timings()]
        lines += self.trace_summary()
        return "\n".join(lines)

    def metrics_source(self) -> tuple[list[ClientStats], list[ClientStats]]:
        """What the metrics are read from: the clients' totals and their per-server
        statistics (:mod:`.metrics`)."""
        client = self.client
        return self.stats, client.per_server_stats() if client is not None else []

    def _close(self) -> None:
        if self.metrics_server is not None:
            self.metrics_server.close()
            self.metrics_server = None
        if self._helpers is not None:
            self._helpers.shutdown(wait=True)
            self._helpers = None
        if self.client is not None:
            self.client.close()

    def finalize(self) -> None:
        if self.client is not None:
            self._server_timings = self.client.server_stats()
        for line in self.stats_summary().splitlines():
            self.logger.debug("%s", line)  # the job prints stats_summary()
        if self.metrics_file is not None:
            write_metrics(self.metrics_file, self.metrics_source)
        if self.trace_file is not None:
            self.write_traces(self.trace_file)
        self._close()

    def abort(self) -> None:
        self._close()
