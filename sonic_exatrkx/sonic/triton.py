"""Remote inference on NVIDIA Triton servers, with retries, failover and local fallback.

gRPC (the default) is truly asynchronous: ``infer_async`` sends the request with
tritonclient's callback API and returns; the callback checks the answer and completes the
future, or schedules the next try. No thread waits on the network. tritonclient's HTTP
client needs a thread to wait on each request, so over HTTP the requests run on a small
pool of ``http_concurrency`` threads (one HTTP connection each).

Failures: connection loss / unavailable / timed out (when ``on_timeout="retry"``) are
tried again on the same server up to ``allowed_tries`` times with exponential backoff,
then on the next server of the list; a server that used up its tries is skipped by later
requests for ``down_s`` seconds. When every server failed, the request goes to the
``fallback`` client if there is one, else it fails with an :class:`InferenceError` that
names the model, the servers and their last errors. Invalid arguments, unknown models,
errors raised in the model and wrong outputs are never retried.

``shared_memory=True`` passes the inputs, and the outputs whose size follows from the
inputs, through system shared memory (:mod:`.shm`) when the server is on this node; a
server that cannot map our regions (another node) gets the network path, logged once.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sonic_exatrkx.framework import ConfigurationError
from sonic_exatrkx.sonic.client import (
    InferenceClient,
    Tensors,
    TensorSpec,
    bind_dims,
    forward,
)
from sonic_exatrkx.sonic.errors import (
    InferenceError,
    RequestTimeoutError,
    ServerUnavailableError,
    UnknownModelError,
    check_count,
    describe,
    is_recoverable,
    is_timeout,
)
from sonic_exatrkx.sonic.shm import Region, SharedMemoryPool, layout, probe
from sonic_exatrkx.sonic.stats import ClientStats, ServerTiming

log = logging.getLogger("sonic_exatrkx.sonic")

PROTOCOLS = ("grpc", "http")
ON_TIMEOUT = ("retry", "fail")
COMPRESSION = (None, "gzip", "deflate")
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


@dataclass
class _Request:
    inputs: Mapping[str, np.ndarray]
    future: Future[Tensors]
    order: list[str]
    pos: int = 0
    tries: int = 0
    start: float = field(default_factory=time.perf_counter)
    errors: list[str] = field(default_factory=list)
    wire: Any = None  # the tritonclient InferInput list, built once per protocol
    region: Region | None = None  # shared memory holding the inputs (and known outputs)
    offsets: dict[str, int] = field(default_factory=dict)
    shm_outputs: dict[str, int] = field(default_factory=dict)  # output -> bytes in region
    shm_wire: Any = None
    via_shm: bool = False  # how the current try was sent


class TritonClient(InferenceClient):
    """One model on one or more Triton servers (listed in failover order)."""

    def __init__(
        self,
        *,
        model: str,
        servers: str | Sequence[str],
        inputs: Mapping[str, TensorSpec],
        outputs: Mapping[str, TensorSpec],
        protocol: str = "grpc",
        model_version: str | int = "",
        timeout_s: float | None = None,
        on_timeout: str = "retry",
        allowed_tries: int = 3,
        backoff_s: float = 0.05,
        down_s: float = 30.0,
        fallback: InferenceClient | None = None,
        compression: str | None = None,
        headers: Mapping[str, str] | None = None,
        ssl: bool = False,
        root_certificates: str | None = None,
        http_concurrency: int = 4,
        health_timeout_s: float = 5.0,
        shared_memory: bool = False,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name or f"triton:{model}", inputs=inputs, outputs=outputs)
        if protocol not in PROTOCOLS:
            raise ConfigurationError(f"TritonClient: protocol must be one of {PROTOCOLS}, "
                                     f"got {protocol!r}")
        if on_timeout not in ON_TIMEOUT:
            raise ConfigurationError(f"TritonClient: on_timeout must be one of {ON_TIMEOUT}, "
                                     f"got {on_timeout!r}")
        if compression not in COMPRESSION:
            raise ConfigurationError(f"TritonClient: compression must be one of "
                                     f"{COMPRESSION}, got {compression!r}")
        check_count(allowed_tries, "TritonClient: allowed_tries")
        for key, value in (("timeout_s", timeout_s), ("backoff_s", backoff_s),
                           ("down_s", down_s), ("health_timeout_s", health_timeout_s)):
            if value is not None and (not isinstance(value, int | float) or value < 0
                                      or (key == "timeout_s" and value == 0)):
                raise ConfigurationError(f"TritonClient: {key} must be a number > 0, "
                                         f"got {value!r}")
        if http_concurrency < 1:
            raise ConfigurationError("TritonClient: http_concurrency must be >= 1")
        if ssl and protocol == "http":
            raise ConfigurationError("TritonClient: ssl is supported over gRPC only here")
        if not isinstance(shared_memory, bool):
            raise ConfigurationError(f"TritonClient: shared_memory must be True or False, "
                                     f"got {shared_memory!r}")
        self.model = model
        self.protocol = protocol
        self.servers = parse_servers(servers, protocol)
        self.model_version = str(model_version)
        self.timeout_s = timeout_s
        self.on_timeout = on_timeout
        self.allowed_tries = allowed_tries
        self.backoff_s = float(backoff_s)
        self.down_s = float(down_s)
        self.fallback = fallback
        self.compression = compression
        self.headers = dict(headers) if headers else None
        self.ssl = ssl
        self.root_certificates = root_certificates
        self.http_concurrency = http_concurrency
        self.health_timeout_s = health_timeout_s
        self._lib = self._import()
        self._grpc: dict[str, Any] = {}
        self._http_local = threading.local()
        self._http_clients: list[Any] = []
        self._http_pool: ThreadPoolExecutor | None = None
        self._down_until: dict[str, float] = {}
        self._lock = threading.Lock()
        self._logged: set[str] = set()
        self._counters_at_start: dict[str, dict[str, tuple[int, int]]] = {}
        self.shared_memory = shared_memory
        self._no_shm: set[str] = set()  # servers that cannot map our regions
        self._pool = SharedMemoryPool(self.name, self._shm_register, self._shm_unregister) \
            if shared_memory else None

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
        if self.protocol == "grpc":
            with self._lock:
                client = self._grpc.get(url)
                if client is None:
                    client = self._lib.InferenceServerClient(
                        url, ssl=self.ssl, root_certificates=self.root_certificates)
                    self._grpc[url] = client
                return client
        clients = getattr(self._http_local, "clients", None)
        if clients is None:
            clients = self._http_local.clients = {}
        if url not in clients:
            client = self._lib.InferenceServerClient(
                url, concurrency=1, connection_timeout=self.health_timeout_s,
                network_timeout=self.timeout_s or 600.0)
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
        """A connection for control calls (HTTP: a fresh one, a kept-alive connection
        may have been closed by the server)."""
        if self.protocol == "grpc":
            yield self._connection(url), {"client_timeout": self.health_timeout_s}
            return
        client = self._lib.InferenceServerClient(url, connection_timeout=self.health_timeout_s,
                                                 network_timeout=self.health_timeout_s)
        try:
            yield client, {}
        finally:
            with contextlib.suppress(Exception):
                client.close()

    def _shm_register(self, url: str, region: Region) -> None:
        with self._admin(url) as (client, kw):
            client.register_system_shared_memory(region.name, region.key, region.size,
                                                 headers=self.headers, **kw)

    def _shm_unregister(self, url: str, region: Region) -> None:
        with self._admin(url) as (client, kw):
            client.unregister_system_shared_memory(region.name, headers=self.headers, **kw)

    def _no_shm_for(self, url: str, why: str) -> None:
        with self._lock:
            self._no_shm.add(url)
        self._log_once(f"noshm:{url}", logging.WARNING,
                       "%s: the server at %s cannot use this node's shared memory (%s); "
                       "using the network for it", self.name, url, why)

    # -- health ----------------------------------------------------------------------
    def _probe(self, url: str) -> str | None:
        """None when ``url`` serves the model ready; else why not (raises for an unknown
        model or mismatching outputs: configuration errors, not outages)."""
        kw = {"client_timeout": self.health_timeout_s} if self.protocol == "grpc" else {}
        client = self._connection(url)
        try:
            live = client.is_server_live(**kw)
        except Exception as exc:  # noqa: BLE001 - any failure means "not there"
            return describe(exc)
        if not live:
            return "server not live"
        try:
            ready = client.is_model_ready(self.model, self.model_version, **kw)
        except Exception as exc:  # noqa: BLE001
            return describe(exc)
        if not ready:
            try:
                index = client.get_model_repository_index(
                    **({"as_json": True} if self.protocol == "grpc" else {}), **kw)
                models = index.get("models", []) if isinstance(index, dict) else index
                names = sorted({m.get("name", "?") for m in models})
            except Exception:  # noqa: BLE001 - the list is only a hint
                names = []
            version = f" version {self.model_version}" if self.model_version else ""
            raise UnknownModelError(
                f"{self.name}: the Triton server at {url} has no ready model "
                f"'{self.model}'{version} (it serves: {', '.join(names) or 'nothing'})")
        self._check_metadata(url, client, kw)
        return None

    def _check_metadata(self, url: str, client: Any, kw: dict[str, Any]) -> None:
        extra = {"as_json": True} if self.protocol == "grpc" else {}
        meta = client.get_model_metadata(self.model, self.model_version, **extra, **kw)
        declared = {o["name"]: o for o in meta.get("outputs", [])}
        for name, spec in self.output_specs.items():
            out = declared.get(name)
            if out is None:
                raise ConfigurationError(
                    f"{self.name}: model '{self.model}' at {url} has no output '{name}' "
                    f"(outputs: {', '.join(declared) or 'none'})")
            dims = [int(d) for d in out.get("shape", [])]
            want = spec.triton_dims()
            same = len(dims) == len(want) and all(
                d == -1 or w == -1 or d == w for d, w in zip(dims, want, strict=True))
            if out.get("datatype") != spec.dtype or not same:
                raise ConfigurationError(
                    f"{self.name}: model '{self.model}' at {url} declares output '{name}' "
                    f"as {out.get('datatype')} {dims}; this client expects {spec.dtype} "
                    f"{want}")

    def healthy(self) -> bool:
        """Whether at least one server answers and serves the model (for ``auto``)."""
        try:
            return any(self._probe(url) is None for url in self.servers)
        except ConfigurationError:
            return False

    def check(self) -> None:
        """At job start: every answering server must serve the model with the expected
        outputs; servers that do not answer are marked down (an error if none answers
        and there is no fallback)."""
        problems = {}
        for url in self.servers:
            why = self._probe(url)
            if why is not None:
                problems[url] = why
                self._down_until[url] = time.monotonic() + self.down_s
            else:
                counters = self._server_counters(url)
                if counters is not None:
                    self._counters_at_start[url] = counters
                if self._pool is not None and url not in self._no_shm:
                    why_not = probe(self.name, self._shm_register, self._shm_unregister, url)
                    if why_not is not None:
                        self._no_shm_for(url, why_not)
        if len(problems) == len(self.servers):
            detail = "; ".join(f"{u}: {w}" for u, w in problems.items())
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

    # -- server-side statistics --------------------------------------------------------
    _STAT_KEYS = ("success", "queue", "compute_input", "compute_infer", "compute_output")

    def _server_counters(self, url: str) -> dict[str, tuple[int, int]] | None:
        """Triton's cumulative (count, ns) per phase for this model on ``url``."""
        kw = {"client_timeout": self.health_timeout_s} if self.protocol == "grpc" else {}
        extra = {"as_json": True} if self.protocol == "grpc" else {}
        # HTTP: a fresh connection (a kept-alive one may have been closed by the server).
        client = self._connection(url) if self.protocol == "grpc" else \
            self._lib.InferenceServerClient(url, connection_timeout=self.health_timeout_s,
                                            network_timeout=self.health_timeout_s)
        try:
            stats = client.get_inference_statistics(self.model, self.model_version,
                                                    **extra, **kw)
            model = stats["model_stats"][0]["inference_stats"]
        except Exception:  # noqa: BLE001 - statistics are best effort
            return None
        finally:
            if self.protocol == "http":
                with contextlib.suppress(Exception):
                    client.close()
        return {k: (int(model.get(k, {}).get("count", 0)), int(model.get(k, {}).get("ns", 0)))
                for k in self._STAT_KEYS}

    def server_stats(self) -> list[ServerTiming]:
        """Per server: this job's requests and their mean queue and compute time there
        (Triton's statistics, the difference since :meth:`check`)."""
        lines = []
        for url in self.servers:
            now = self._server_counters(url)
            if now is None:
                continue
            before = self._counters_at_start.get(url, dict.fromkeys(self._STAT_KEYS, (0, 0)))
            delta = {k: (now[k][0] - before[k][0], now[k][1] - before[k][1]) for k in now}
            n = delta["success"][0]
            if n <= 0:
                continue
            ms = {k: 1e-6 * delta[k][1] / n for k in delta}
            compute = ms["compute_input"] + ms["compute_infer"] + ms["compute_output"]
            lines.append(ServerTiming(self.name, url, self.model, n, ms["queue"], compute,
                                      ms["success"]))
        return lines

    # -- inference -------------------------------------------------------------------
    def infer_async(self, inputs: Mapping[str, np.ndarray]) -> Future[Tensors]:
        req = _Request(inputs=inputs, future=Future(), order=self._order())
        self.stats.add(requests=1)
        if self._pool is not None and req.order:
            try:
                self._shm_prepare(req)
            except Exception as exc:  # noqa: BLE001 - e.g. /dev/shm full: the network path
                self._log_once("shm-create", logging.WARNING,
                               "%s: cannot create a shared memory region (%s); using the "
                               "network", self.name, describe(exc))
        if not req.order:  # every server down, fallback configured
            self._to_fallback(req)
        else:
            self._send(req)
        return req.future

    def _order(self) -> list[str]:
        now = time.monotonic()
        with self._lock:
            up = [u for u in self.servers if self._down_until.get(u, 0.0) <= now]
        if up or self.fallback is not None:
            return up
        return list(self.servers)

    def _shm_prepare(self, req: _Request) -> None:
        """Take a region for this request, write the inputs into it and plan the slots
        of the outputs whose size is known from the inputs (the others come back in the
        response)."""
        assert self._pool is not None
        if any(np.asarray(a).nbytes == 0 for a in req.inputs.values()):
            return  # an empty event: nothing to share (Triton refuses 0-byte regions)
        bound = bind_dims(self.input_specs, req.inputs)
        sizes = [(f"in:{k}", np.asarray(a).nbytes) for k, a in req.inputs.items()]
        for name, spec in self.output_specs.items():
            dims = [bound.get(d, -1) if isinstance(d, str) else d for d in spec.dims]
            if all(d >= 0 for d in dims):
                nbytes = int(np.prod(dims, dtype=np.int64)) * spec.numpy_dtype.itemsize
                req.shm_outputs[name] = nbytes
                sizes.append((f"out:{name}", nbytes))
        req.offsets, total = layout(sizes)
        region = self._pool.acquire(total)
        try:
            for key, arr in req.inputs.items():
                region.write(req.offsets[f"in:{key}"], np.asarray(arr))
        except BaseException:
            self._pool.release(region, reuse=False)
            raise
        req.region = region
        pool = self._pool
        # Reuse the region only after a clean first try: a timed-out try may still be
        # running on the server and write into it later.
        req.future.add_done_callback(
            lambda f: pool.release(region, reuse=req.tries == 1 and not req.errors
                                   and f.exception() is None))

    def _shm_wire(self, req: _Request) -> Any:
        if req.shm_wire is None:
            from tritonclient.utils import np_to_triton_dtype

            assert req.region is not None
            wire = []
            for key, arr in req.inputs.items():
                arr = np.asarray(arr)
                item = self._lib.InferInput(key, list(arr.shape), np_to_triton_dtype(arr.dtype))
                item.set_shared_memory(req.region.name, arr.nbytes,
                                       offset=req.offsets[f"in:{key}"])
                wire.append(item)
            outs = []
            for name in self.output_specs:
                out = self._lib.InferRequestedOutput(name)
                if name in req.shm_outputs:
                    out.set_shared_memory(req.region.name, max(req.shm_outputs[name], 1),
                                          offset=req.offsets[f"out:{name}"])
                outs.append(out)
            req.shm_wire = (wire, outs, 0)
        return req.shm_wire

    def _use_shm(self, req: _Request, url: str) -> bool:
        """Whether this try goes through shared memory (registering the region on
        ``url`` first); a server that refuses the region gets the network path."""
        if req.region is None or self._pool is None or url in self._no_shm:
            return False
        try:
            self._pool.ensure_registered(url, req.region)
        except Exception as exc:  # noqa: BLE001
            if is_recoverable(exc):
                raise  # the server is down: a failed try, as for the request itself
            self._no_shm_for(url, describe(exc))
            return False
        return True

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
        try:
            req.via_shm = self._use_shm(req, url)
            if req.via_shm:
                wire, outs, nbytes = self._shm_wire(req)
                self.stats.add(bytes_shm=sum(np.asarray(a).nbytes
                                             for a in req.inputs.values()))
            else:
                wire, outs, nbytes = self._wire(req)
            self.stats.add(bytes_sent=nbytes)
            if self.protocol == "grpc":
                self._connection(url).async_infer(
                    self.model, wire, callback=lambda result, error: self._done(
                        req, url, result, error),
                    model_version=self.model_version, outputs=outs,
                    client_timeout=self.timeout_s, headers=self.headers,
                    compression_algorithm=self.compression)
            else:
                with self._lock:
                    if self._http_pool is None:
                        self._http_pool = ThreadPoolExecutor(
                            self.http_concurrency, thread_name_prefix=f"http-{self.model}")
                    pool = self._http_pool
                pool.submit(self._http_call, req, url, wire, outs)
        except Exception as exc:  # noqa: BLE001 - handled as a failed try
            self._done(req, url, None, exc)

    def _http_call(self, req: _Request, url: str, wire: Any, outs: Any) -> None:
        try:
            result = self._connection(url).infer(
                self.model, wire, model_version=self.model_version, outputs=outs,
                headers=self.headers, request_compression_algorithm=self.compression)
        except Exception as exc:  # noqa: BLE001
            self._done(req, url, None, exc)
            return
        self._done(req, url, result, None)

    def _done(self, req: _Request, url: str, result: Any, error: BaseException | None
              ) -> None:
        """Completion of one try (tritonclient's thread): finish, retry or fail over."""
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
        for key, spec in self.output_specs.items():
            if req.via_shm and key in req.shm_outputs:
                raw[key] = self._shm_output(req, result, key, spec)
                continue
            arr = result.as_numpy(key)
            if arr is not None:
                raw[key] = np.array(arr)  # own the memory (the response buffer is freed)
        outputs = self._check(req.inputs, raw)  # OutputCheckError: failed in _done
        self.stats.add(bytes_received=sum(
            a.nbytes for k, a in outputs.items() if not (req.via_shm and k in req.shm_outputs)))
        self.stats.record_latency(time.perf_counter() - req.start)
        req.future.set_result(outputs)

    def _shm_output(self, req: _Request, result: Any, key: str, spec: TensorSpec
                    ) -> np.ndarray | None:
        """An output the server wrote into the request's region (shape from the
        response; a server that wrote more than its slot answers with an error)."""
        assert req.region is not None
        meta = result.get_output(key)
        if meta is None:
            return None
        shape = [int(d) for d in (meta["shape"] if isinstance(meta, dict) else meta.shape)]
        if int(np.prod(shape, dtype=np.int64)) * spec.numpy_dtype.itemsize \
                > req.shm_outputs[key]:
            raise InferenceError(f"{self.name}: output '{key}' {shape} does not fit its "
                                 f"shared memory slot of {req.shm_outputs[key]} bytes")
        self.stats.add(bytes_shm=int(np.prod(shape, dtype=np.int64))
                       * spec.numpy_dtype.itemsize)
        return req.region.read(req.offsets[f"out:{key}"], spec.numpy_dtype, shape)

    def _failed_try(self, req: _Request, url: str, error: BaseException) -> None:
        text = describe(error)
        if is_timeout(error) and self.on_timeout == "fail":
            self.stats.add(failures=1)
            req.future.set_exception(RequestTimeoutError(
                f"{self.name}: request to {url} timed out after {self.timeout_s} s "
                f"({text})"))
            return
        if not is_recoverable(error):
            self.stats.add(failures=1)
            err = InferenceError(f"{self.name}: model '{self.model}' at {url} failed: {text}")
            err.__cause__ = error
            req.future.set_exception(err)
            return
        req.errors.append(f"{url} (try {req.tries}): {text}")
        if self._pool is not None:
            self._pool.forget(url)  # a restarted server has lost our registrations
        if req.tries < self.allowed_tries:
            self.stats.add(retries=1)
            delay = self.backoff_s * 2 ** (req.tries - 1)
            timer = threading.Timer(delay, self._send, args=(req,))
            timer.daemon = True
            timer.start()
            return
        with self._lock:
            self._down_until[url] = time.monotonic() + self.down_s
        self._log_once(f"down:{url}", logging.WARNING,
                       "%s: server %s failed %d tries (%s); skipping it for %.0f s",
                       self.name, url, req.tries, text, self.down_s)
        req.pos += 1
        req.tries = 0
        if req.pos < len(req.order):
            self.stats.add(failovers=1)
            self._send(req)
        elif self.fallback is not None:
            self._to_fallback(req)
        else:
            self.stats.add(failures=1)
            req.future.set_exception(InferenceError(
                f"{self.name}: every server failed for model '{self.model}' "
                f"({len(req.errors)} tries): " + "; ".join(req.errors[-3:])))

    def _to_fallback(self, req: _Request) -> None:
        assert self.fallback is not None
        self.stats.add(fallbacks=1)
        self._log_once("fallback", logging.WARNING,
                       "%s: no Triton server available; running on the local fallback",
                       self.name)
        forward(self.fallback.infer_async(req.inputs), req.future)

    def all_stats(self) -> list[ClientStats]:
        return [self.stats, *(self.fallback.all_stats() if self.fallback else [])]

    def close(self) -> None:
        if self._pool is not None:  # before the connections: unregistering uses them
            self._pool.close()
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
