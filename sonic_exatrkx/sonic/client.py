"""The client interface shared by local and remote inference, and the local client.

A client maps named input arrays to named output arrays. ``infer`` blocks;
``infer_async`` returns a :class:`concurrent.futures.Future` at once. Where the
transport allows it (Triton over gRPC) no thread waits for the answer; the local client
computes on its own thread pool, so it still never blocks the caller. Tensor specs
(:class:`TensorSpec`, :func:`bind_dims`) are the ExaTrkX contract's, re-exported here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from sonic_exatrkx.exatrkx.stages import Dim, TensorSpec, bind_dims
from sonic_exatrkx.framework import ConfigurationError
from sonic_exatrkx.sonic.errors import OutputCheckError
from sonic_exatrkx.sonic.stats import ClientStats, ServerTiming

Tensors = dict[str, np.ndarray]
__all__ = ["Dim", "InferenceClient", "LocalClient", "TensorSpec", "Tensors", "bind_dims",
           "chain", "check_outputs", "completed", "forward"]


def check_outputs(model: str, specs: Mapping[str, TensorSpec], outputs: Mapping[str, Any],
                  bound: Mapping[str, int]) -> None:
    """Raise :class:`OutputCheckError` unless every output has its dtype and shape."""
    for name, spec in specs.items():
        if name not in outputs:
            raise OutputCheckError(f"{model}: output '{name}' missing from the "
                                   f"response (got {', '.join(outputs) or 'none'})")
        arr = np.asarray(outputs[name])
        expected = spec.shape(bound)
        shape_ok = arr.ndim == len(expected) and all(
            e == -1 or e == s for e, s in zip(expected, arr.shape, strict=True))
        if arr.dtype != spec.numpy_dtype or not shape_ok:
            want = ", ".join(
                f"{d}={bound[d]}" if isinstance(d, str) and d in bound else str(d)
                for d in spec.dims)
            raise OutputCheckError(
                f"{model}: output '{name}' is {arr.dtype} {list(arr.shape)}, "
                f"expected {spec.numpy_dtype} [{want}]")


class InferenceClient:
    """One way to run one model: named arrays in, named arrays out.

    ``inputs`` / ``outputs`` are the tensor specs; outputs are checked against them
    (dtype, shape, symbolic dims bound from the inputs) before anyone sees them.
    ``remote``: whether the work leaves this process (a producer's default mode).
    """

    remote: bool = False

    def __init__(self, *, name: str, inputs: Mapping[str, TensorSpec],
                 outputs: Mapping[str, TensorSpec],
                 extras: Mapping[str, type] | None = None) -> None:
        self.name = name
        self.input_specs = dict(inputs)
        self.output_specs = dict(outputs)
        #: Declared optional outputs that are not tensors (name -> Python type).
        self.extra_outputs = dict(extras or {})
        self.stats = ClientStats(name, local=not self.remote)

    def infer(self, inputs: Mapping[str, np.ndarray]) -> Tensors:
        """Blocking inference."""
        return self.infer_async(inputs).result()

    def infer_async(self, inputs: Mapping[str, np.ndarray]) -> Future[Tensors]:
        raise NotImplementedError(f"{type(self).__name__}.infer_async")

    def check(self) -> None:
        """Fail now (ConfigurationError) if this client cannot serve; called at job start."""

    def server_stats(self) -> list[ServerTiming]:
        """Server-side timing (queue, compute) of this job's requests, where known."""
        return []

    def per_server_stats(self) -> list[ClientStats]:
        """Requests per server of a pool (remote clients), for the job summary."""
        return []

    def healthy(self) -> bool:
        """Whether this client can serve now (for ``inference="auto"``)."""
        return True

    def close(self) -> None:
        """Release connections and threads."""

    def all_stats(self) -> list[ClientStats]:
        """This client's statistics and those of the clients it uses."""
        return [self.stats]

    def _check(self, inputs: Mapping[str, np.ndarray], outputs: Mapping[str, Any]) -> Tensors:
        check_outputs(self.name, self.output_specs, outputs,
                      bind_dims(self.input_specs, inputs))
        for key, value in outputs.items():
            if key in self.output_specs:
                continue
            kind = self.extra_outputs.get(key)
            if kind is None:
                raise OutputCheckError(f"{self.name}: undeclared output '{key}' (declared: "
                                       f"{', '.join([*self.output_specs, *self.extra_outputs])})")
            if not isinstance(value, kind):
                raise OutputCheckError(f"{self.name}: output '{key}' is a "
                                       f"{type(value).__name__}, expected {kind.__name__}")
        return dict(outputs)


class LocalClient(InferenceClient):
    """Runs ``fn(inputs) -> outputs`` in this process, on a pool of ``max_workers`` threads.

    The pool bounds how many events compute at once (each may use several torch/FAISS
    threads), so it is part of the job's thread budget. ``infer`` computes on the calling
    thread: in sync mode the event loop's own thread does the work.
    """

    def __init__(self, fn: Callable[[Mapping[str, np.ndarray]], Mapping[str, Any]], *,
                 name: str, inputs: Mapping[str, TensorSpec],
                 outputs: Mapping[str, TensorSpec], max_workers: int = 1,
                 extras: Mapping[str, type] | None = None) -> None:
        super().__init__(name=name, inputs=inputs, outputs=outputs, extras=extras)
        if int(max_workers) != max_workers or max_workers < 1:
            raise ConfigurationError(f"LocalClient '{name}': max_workers must be an integer "
                                     f">= 1, got {max_workers!r}")
        self.fn = fn
        self.max_workers = int(max_workers)
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def infer(self, inputs: Mapping[str, np.ndarray]) -> Tensors:
        self.stats.add(requests=1)
        start = time.perf_counter()
        try:
            out = self._check(inputs, self.fn(inputs))
        except BaseException:
            self.stats.add(failures=1)
            raise
        self.stats.record_latency(time.perf_counter() - start)
        return out

    def infer_async(self, inputs: Mapping[str, np.ndarray]) -> Future[Tensors]:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.max_workers,
                                                thread_name_prefix=f"local-{self.name}")
            pool = self._pool
        return pool.submit(self.infer, inputs)

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)


def chain(future: Future[Any], then: Callable[[Any], Future[Any]]) -> Future[Any]:
    """A future for ``then(result of future)``: runs in the completing thread, so
    ``then`` must only dispatch (return a future), never compute or wait."""
    out: Future[Any] = Future()

    def step(done: Future[Any]) -> None:
        try:
            nxt = then(done.result())
        except BaseException as exc:  # noqa: BLE001 - delivered through the future
            out.set_exception(exc)
            return
        forward(nxt, out)

    future.add_done_callback(step)
    return out


def forward(source: Future[Any], target: Future[Any]) -> None:
    """Complete ``target`` with ``source``'s outcome when it is done."""

    def done(f: Future[Any]) -> None:
        exc = f.exception()
        if exc is not None:
            target.set_exception(exc)
        else:
            target.set_result(f.result())

    source.add_done_callback(done)


def completed(value: Any = None, error: BaseException | None = None) -> Future[Any]:
    """An already finished future."""
    fut: Future[Any] = Future()
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(value)
    return fut
