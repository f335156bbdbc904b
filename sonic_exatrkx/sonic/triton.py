"""Remote inference on NVIDIA Triton servers, with retries, failover and local fallback.

gRPC (the default) is truly asynchronous: ``infer_async`` sends the request with
tritonclient's callback API and returns; the callback checks the answer and completes the
future, or schedules the next try. No thread waits on the network. tritonclient's HTTP
client needs a thread to wait on each request, so over HTTP the requests run on a small
pool of ``http_concurrency`` threads (one HTTP connection each).

Every transport setting comes in one :class:`~sonic_exatrkx.sonic.options.TritonOptions`.
What to do after a failed try (retry here after a delay, the next server, the local
fallback, fail) is the :class:`~sonic_exatrkx.sonic.retry.RetryPolicy`'s decision; when
every server failed and there is no fallback, the request fails with an
:class:`InferenceError` that names the model, the servers and their last errors.
Shared memory (``options.shared_memory``) is handled by :mod:`.shm`, Triton's own
statistics by :mod:`.stats`, probes and checks of the servers by :mod:`.triton_health`;
this module keeps the connections and a request's tries.
"""

from __future__ import annotations

import contextlib
import logging
import random
import re
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from sonic_exatrkx.framework import ConfigurationError
from sonic_exatrkx.sonic.client import (
    InferenceClient,
    Tensors,
    TensorSpec,
    forward,
)
from sonic_exatrkx.sonic.errors import (
    InferenceError,
    RequestTimeoutError,
    ServerUnavailableError,
    UnknownModelError,
    describe,
)
from sonic_exatrkx.sonic.options import TritonOptions
from sonic_exatrkx.sonic.retry import Action, Why
from sonic_exatrkx.sonic.shm import Region, SharedMemoryRequests, Slots
from sonic_exatrkx.sonic.stats import (
    ClientStats,
    Counters,
    ServerTiming,
    read_counters,
    timing_since,
)
from sonic_exatrkx.sonic.triton_health import ServerHealth

log = logging.getLogger("sonic_exatrkx.sonic")

_URL = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.\-]+):(\d{1,5})$")


def parse_servers(servers: str | Sequence[str], protocol: str = "grpc") -> list[str]:
    """``host:port`` strings from one URL, a comma-separated list or a sequence."""
    items = servers.split(",") if isinstance(servers, str) else list(servers)
    urls = []
    for raw in items:
        url = str(raw).strip()
        for scheme in ("grpc://", "http://", "https://"):
            if url.startswith(scheme):
                url = url[len(scheme):]
        m = _URL.match(url)
        if not m or not 0 < int(m.group(2)) < 65536:
            raise ConfigurationError(
                f"bad Triton server URL {raw!r}: expected host:port (the server's "
                f"{protocol} port, e.g. 127.0.0.1:{8001 if protocol == 'grpc' else 8000})")
        urls.append(url)
    if not urls:
        raise ConfigurationError("no Triton server URL given")
    if len(set(urls)) != len(urls):
        raise ConfigurationError(f"a Triton server URL is listed twice: {urls}")
    return urls


@dataclass(eq=False)  # identity: tries in flight are kept in a set
class _Request:
    inputs: Mapping[str, np.ndarray]
    future: Future[Tensors]
    order: list[str]
    pos: int = 0
    tries: int = 0
    start: float = field(default_factory=time.perf_counter)
    errors: list[str] = field(default_factory=list)
    wire: Any = None  # the tritonclient InferInput list, built once per protocol
    slots: Slots | None = None  # shared memory holding the inputs (and known outputs)
    via_shm: bool = False  # how the current try was sent
    sent_at: float = 0.0  # when the current try was sent
    first_failure: float | None = None  # perf_counter of the first failed try
    deadline_s: float | None = None  # of each try (options.deadline_s of the event size)
    url: str = ""  # the server of the current try
    slow_logged: bool = False
    rounds: int = 0  # rounds over every server that failed (the retry budget)


class TritonClient(ServerHealth, InferenceClient):
    """One model on one or more Triton servers (listed in failover order), with the
    transport settings of ``options``."""

    remote = True

    def __init__(
        self,
        *,
        model: str,
        servers: str | Sequence[str],
        inputs: Mapping[str, TensorSpec],
        outputs: Mapping[str, TensorSpec],
        options: TritonOptions | None = None,
        fallback: InferenceClient | None = None,
        models_checksum: str | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name or f"triton:{model}", inputs=inputs, outputs=outputs)
        self.options = options if options is not None else TritonOptions()
        if not isinstance(self.options, TritonOptions):
            raise ConfigurationError(f"{self.name}: options must be TritonOptions, got "
                                     f"{type(self.options).__name__}")
        self.model = model
        self.protocol = self.options.protocol
        self.servers = parse_servers(servers, self.protocol)
        self.retry = self.options.retry
        self.fallback = fallback
        #: The job's models folder checksum; a server publishing another is refused.
        self.models_checksum = models_checksum
        self._lib = self._import()
        self._grpc: dict[str, Any] = {}
        self._http_local = threading.local()
        self._http_clients: list[Any] = []
        self._http_pool: ThreadPoolExecutor | None = None
        self._down_until: dict[str, float] = {}
        self._lock = threading.Lock()
        self._logged: set[str] = set()
        self._counters_at_start: dict[str, Counters] = {}
        #: Per server: tries sent, failed, answered latency and in flight (the balancing).
        self.server_requests = {u: ClientStats(self.name, server=u) for u in self.servers}
        self._prober: threading.Thread | None = None
        self._pending: set[_Request] = set()  # tries in flight (the slow-request log)
        self._stop_probing = threading.Event()
        self._shm = SharedMemoryRequests(
            self.name, self._shm_register, self._shm_unregister,
            lambda key, msg: self._log_once(key, logging.WARNING, "%s", msg)
        ) if self.options.shared_memory else None

    # -- connections -----------------------------------------------------------------
    def _import(self) -> Any:
        try:
            if self.protocol == "grpc":
                import tritonclient.grpc as lib
            else:
                import tritonclient.http as lib
        except ImportError as exc:
            raise ConfigurationError(
                f"TritonClient: tritonclient[{self.protocol}] is not installed "
                "(pip install 'sonic-exatrkx[triton]')") from exc
        return lib

    def _connection(self, url: str) -> Any:
        opts = self.options
        if self.protocol == "grpc":
            with self._lock:
                client = self._grpc.get(url)
                if client is None:
                    client = self._lib.InferenceServerClient(
                        url, ssl=opts.ssl, root_certificates=opts.tls_root_certificates)
                    self._grpc[url] = client
                return client
        clients = getattr(self._http_local, "clients", None)
        if clients is None:
            clients = self._http_local.clients = {}
        if url not in clients:
            client = self._lib.InferenceServerClient(
                url, concurrency=1, connection_timeout=opts.health_timeout_s,
                network_timeout=opts.timeout_s or 600.0)
            clients[url] = client
            with self._lock:
                self._http_clients.append(client)
        return clients[url]

    def _log_once(self, key: str, level: int, msg: str, *args: Any) -> None:
        with self._lock:
            if key in self._logged:
                return
            self._logged.add(key)
        log.log(level, msg, *args)

    @contextlib.contextmanager
    def _admin(self, url: str) -> Any:
        """A connection for control calls and the keywords they take (HTTP: a fresh
        connection, a kept-alive one may have been closed by the server)."""
        timeout = self.options.health_timeout_s
        if self.protocol == "grpc":
            yield self._connection(url), {"client_timeout": timeout}
            return
        client = self._lib.InferenceServerClient(url, connection_timeout=timeout,
                                                 network_timeout=timeout)
        try:
            yield client, {}
        finally:
            with contextlib.suppress(Exception):
                client.close()

    def _shm_register(self, url: str, region: Region) -> None:
        with self._admin(url) as (client, kw):
            client.register_system_shared_memory(region.name, region.key, region.size,
                                                 headers=self.options.header_dict, **kw)

    def _shm_unregister(self, url: str, region: Region) -> None:
        with self._admin(url) as (client, kw):
            client.unregister_system_shared_memory(region.name,
                                                   headers=self.options.header_dict, **kw)

    # -- health (probes and checks: .triton_health) ---------------------------------
    def check(self) -> None:
        """At job start: every answering server must serve the model with the expected
        outputs; servers that do not answer are marked down (an error if none answers
        and there is no fallback)."""
        problems = {}
        unknown: list[UnknownModelError] = []
        for url in self.servers:
            try:
                why = self._probe(url)
            except UnknownModelError as exc:  # a pool member without the model: skip it
                unknown.append(exc)
                why = str(exc)
            if why is not None:
                problems[url] = why
                self._down_until[url] = time.monotonic() + self.retry.down_s
            else:
                counters = self._server_counters(url)
                if counters is not None:
                    self._counters_at_start[url] = counters
                if self._shm is not None:
                    self._shm.check_server(url)
        if len(problems) == len(self.servers):
            detail = "; ".join(f"{u}: {w}" for u, w in problems.items())
            if len(unknown) == len(self.servers):
                raise unknown[0]
            if self.fallback is None:
                raise ServerUnavailableError(
                    f"{self.name}: no Triton server answers ({self.protocol}) - {detail}. "
                    f"Is the server running, and is this its {self.protocol} port?")
            log.warning("%s: no Triton server answers (%s); using the local fallback",
                        self.name, detail)
        elif problems:
            log.warning("%s: servers not answering, skipped for now: %s", self.name,
                        ", ".join(problems))
        if self.fallback is not None:
            self.fallback.check()
        self._start_probing()

    # -- server-side statistics --------------------------------------------------------
    def _server_counters(self, url: str) -> Counters | None:
        extra = {"as_json": True} if self.protocol == "grpc" else {}
        with self._admin(url) as (client, kw):
            return read_counters(client, self.model, self.options.model_version, **extra,
                                 **kw)

    def server_stats(self) -> list[ServerTiming]:
        """Per server: this job's requests and their mean queue and compute time there
        (Triton's statistics, the difference since :meth:`check`)."""
        lines = []
        for url in self.servers:
            now = self._server_counters(url)
            if now is None:
                continue
            timing = timing_since(self.name, url, self.model,
                                  self._counters_at_start.get(url), now)
            if timing is not None:
                lines.append(timing)
        return lines

    # -- inference -------------------------------------------------------------------
    def infer_async(self, inputs: Mapping[str, np.ndarray]) -> Future[Tensors]:
        req = _Request(inputs=inputs, future=Future(), order=self._order())
        points = max((np.shape(a)[0] for a in inputs.values() if np.ndim(a)), default=0)
        req.deadline_s = self.options.deadline_s(int(points))
        self.stats.add(requests=1)
        if self._shm is not None and req.order:
            try:
                self._shm_prepare(req)
            except Exception as exc:  # noqa: BLE001 - e.g. /dev/shm full: the network path
                self._log_once("shm-create", logging.WARNING,
                               "%s: cannot create a shared memory region (%s); using the "
                               "network until one can be", self.name, describe(exc))
        if not req.order:  # every server down, fallback configured
            self._to_fallback(req)
        else:
            self._send(req)
        return req.future

    def _order(self) -> list[str]:
        """The servers this request tries, in order: those up, the least loaded first
        (``balance="least-outstanding"``; ties in list order), then the rest."""
        now = time.monotonic()
        with self._lock:
            up = [u for u in self.servers if self._down_until.get(u, 0.0) <= now]
            if self.options.balance == "least-outstanding":
                up.sort(key=lambda u: self.server_requests[u].in_flight)  # stable: list order
        if up or self.fallback is not None:
            return up
        return list(self.servers)

    def _shm_prepare(self, req: _Request) -> None:
        assert self._shm is not None
        slots = self._shm.prepare(req.inputs, self.input_specs, self.output_specs)
        if slots is None:
            return
        req.slots = slots
        shm = self._shm
        # Reuse the region only after a clean first try: a timed-out try may still be
        # running on the server and write into it later.
        req.future.add_done_callback(
            lambda f: shm.release(slots, reuse=req.tries == 1 and not req.errors
                                  and f.exception() is None))

    def _wire(self, req: _Request) -> Any:
        if req.wire is None:
            from tritonclient.utils import np_to_triton_dtype

            wire = []
            for key, arr in req.inputs.items():
                arr = np.ascontiguousarray(arr)
                item = self._lib.InferInput(key, list(arr.shape), np_to_triton_dtype(arr.dtype))
                item.set_data_from_numpy(arr)
                wire.append(item)
            req.wire = (wire, [self._lib.InferRequestedOutput(n) for n in self.output_specs],
                        sum(np.asarray(a).nbytes for a in req.inputs.values()))
        return req.wire

    def _send(self, req: _Request) -> None:
        url = req.order[req.pos]
        req.tries += 1
        opts = self.options
        self.server_requests[url].add(requests=1, in_flight=1)
        req.sent_at = time.perf_counter()
        req.url = url
        with self._lock:
            self._pending.add(req)
        try:
            req.via_shm = self._shm is not None and self._shm.use(req.slots, url)
            if req.via_shm:
                assert self._shm is not None and req.slots is not None
                wire, outs, nbytes = self._shm.wire(req.slots, req.inputs, self.output_specs,
                                                    self._lib)
                self.stats.add(bytes_shm=sum(np.asarray(a).nbytes
                                             for a in req.inputs.values()))
            else:
                wire, outs, nbytes = self._wire(req)
            self.stats.add(bytes_sent=nbytes)
            self.server_requests[url].add(bytes_sent=nbytes)
            if self.protocol == "grpc":
                self._connection(url).async_infer(
                    self.model, wire, callback=lambda result, error: self._done(
                        req, url, result, error),
                    model_version=opts.model_version, outputs=outs,
                    client_timeout=req.deadline_s, headers=opts.header_dict,
                    compression_algorithm=opts.compression)
            else:
                with self._lock:
                    if self._http_pool is None:
                        self._http_pool = ThreadPoolExecutor(
                            opts.http_concurrency, thread_name_prefix=f"http-{self.model}")
                    pool = self._http_pool
                pool.submit(self._http_call, req, url, wire, outs)
        except Exception as exc:  # noqa: BLE001 - handled as a failed try
            self._done(req, url, None, exc)

    def _http_call(self, req: _Request, url: str, wire: Any, outs: Any) -> None:
        opts = self.options
        try:
            result = self._connection(url).infer(
                self.model, wire, model_version=opts.model_version, outputs=outs,
                headers=opts.header_dict, request_compression_algorithm=opts.compression)
        except Exception as exc:  # noqa: BLE001
            self._done(req, url, None, exc)
            return
        self._done(req, url, result, None)

    def _done(self, req: _Request, url: str, result: Any, error: BaseException | None
              ) -> None:
        """Completion of one try (tritonclient's thread): finish, retry or fail over."""
        self.server_requests[url].add(in_flight=-1)
        with self._lock:
            self._pending.discard(req)
        if error is None:
            self.server_requests[url].record_latency(time.perf_counter() - req.sent_at)
        else:
            self.server_requests[url].add(failures=1)
        try:
            if error is None:
                self._finish(req, result)
            else:
                self._failed_try(req, url, error)
        except BaseException as exc:  # noqa: BLE001 - never lose a request
            if not req.future.done():
                self.stats.add(failures=1)
                req.future.set_exception(exc)

    def _finish(self, req: _Request, result: Any) -> None:
        raw = {}
        shm_outputs = req.slots.outputs if req.via_shm and req.slots is not None else {}
        for key, spec in self.output_specs.items():
            if key in shm_outputs:
                assert self._shm is not None and req.slots is not None
                raw[key] = self._shm.read_output(req.slots, result, key, spec)
                if raw[key] is not None:
                    self.stats.add(bytes_shm=raw[key].nbytes)
                continue
            arr = result.as_numpy(key)
            if arr is not None:
                raw[key] = np.array(arr)  # own the memory (the response buffer is freed)
        outputs = self._check(req.inputs, raw)  # OutputCheckError: failed in _done
        received = sum(a.nbytes for k, a in outputs.items() if k not in shm_outputs)
        self.stats.add(bytes_received=received)
        self.server_requests[req.order[req.pos]].add(bytes_received=received)
        self.stats.record_latency(time.perf_counter() - req.start)
        req.future.set_result(outputs)

    def _failed_try(self, req: _Request, url: str, error: BaseException) -> None:
        """Carry out the retry policy's decision for a failed try."""
        text = describe(error)
        now = time.perf_counter()
        if req.first_failure is None:
            req.first_failure = now
        decision = self.retry.decide(error, tries=req.tries,
                                     servers_left=len(req.order) - req.pos - 1,
                                     fallback=self.fallback is not None,
                                     waited_s=now - req.first_failure, rounds=req.rounds,
                                     draw=random.random())
        if decision.why is Why.TIMEOUT:
            self.stats.add(failures=1)
            req.future.set_exception(RequestTimeoutError(
                f"{self.name}: request to {url} timed out after {req.deadline_s:g} s "
                f"({text})"))
            return
        if decision.why is Why.NOT_RECOVERABLE:
            self.stats.add(failures=1)
            err = InferenceError(f"{self.name}: model '{self.model}' at {url} failed: {text}")
            err.__cause__ = error
            req.future.set_exception(err)
            return
        req.errors.append(f"{url} (try {req.tries}): {text}")
        if self._shm is not None:
            self._shm.forget(url)  # a restarted server has lost our registrations
        if decision.action is Action.RETRY and self._is_down(url) \
                and req.pos + 1 < len(req.order):  # the probes say it is gone: next one
            decision = replace(decision, action=Action.NEXT_SERVER)
        if decision.action is Action.RETRY:
            self.stats.add(retries=1)
            timer = threading.Timer(decision.delay_s, self._send, args=(req,))
            timer.daemon = True
            timer.start()
            return
        if decision.server_down:
            with self._lock:
                self._down_until[url] = time.monotonic() + self.retry.down_s
            self._log_once(f"down:{url}", logging.WARNING,
                           "%s: server %s failed %d tries (%s); skipping it for %.0f s",
                           self.name, url, req.tries, text, self.retry.down_s)
        req.pos += 1
        req.tries = 0
        if decision.action is Action.WAIT:
            self._log_once(f"wait:{req.rounds}", logging.WARNING,
                           "%s: every server failed (%s); waiting for one to come back "
                           "(retry budget %.0f s)", self.name, text, self.retry.budget_s)
            self.stats.add(retries=1)
            req.rounds += 1
            req.pos = 0
            req.order = list(self.servers)  # all of them, whatever is marked down
            timer = threading.Timer(decision.delay_s, self._send, args=(req,))
            timer.daemon = True
            timer.start()
        elif decision.action is Action.NEXT_SERVER:
            self.stats.add(failovers=1)
            self._send(req)
        elif decision.action is Action.FALLBACK:
            self._to_fallback(req, "the servers refused the event as too large" if
                              not decision.server_down else "no Triton server available")
        else:
            self.stats.add(failures=1)
            req.future.set_exception(InferenceError(
                f"{self.name}: every server failed for model '{self.model}' "
                f"({len(req.errors)} tries): " + "; ".join(req.errors[-3:])))

    def _to_fallback(self, req: _Request, why: str = "no Triton server available") -> None:
        assert self.fallback is not None
        self.stats.add(fallbacks=1)
        self._log_once(f"fallback:{why[:20]}", logging.WARNING,
                       "%s: %s; running on the local fallback", self.name, why)
        forward(self.fallback.infer_async(req.inputs), req.future)

    def all_stats(self) -> list[ClientStats]:
        return [self.stats, *(self.fallback.all_stats() if self.fallback else [])]

    def per_server_stats(self) -> list[ClientStats]:
        """Tries sent to each server, failed tries and the latency of answered ones."""
        return list(self.server_requests.values())

    def close(self) -> None:
        self._stop_probing.set()
        if self._prober is not None:
            self._prober.join(timeout=self.options.health_timeout_s + 1)
            self._prober = None
        if self._shm is not None:  # before the connections: unregistering uses them
            self._shm.close()
        with self._lock:  # connections reopen on next use
            grpc, self._grpc = list(self._grpc.values()), {}
            pool, self._http_pool = self._http_pool, None
            http, self._http_clients = self._http_clients, []
        if pool is not None:
            pool.shutdown(wait=True)
        for client in [*grpc, *http]:
            with contextlib.suppress(Exception):  # closing a dead connection
                client.close()
        if self.fallback is not None:
            self.fallback.close()
