"""Start and stop a real ``tritonserver`` (from the nvidia-pytriton wheel) on loopback.

Used by ``sonic-exatrkx serve``, by tests and by examples::

    with TritonServer("model_repository") as server:
        client = tritonclient.grpc.InferenceServerClient(server.grpc_url)

The server binds 127.0.0.1 unless told otherwise, loads every model of the repository at
start (model control mode ``none``: no remote loading), exits if any model fails to load,
and serves HTTP, gRPC and Prometheus metrics on free ports unless given. Signal handling
is left to the caller (the CLI); the library only registers :meth:`TritonServer.stop` with
``atexit``.
"""

from __future__ import annotations

import atexit
import contextlib
import http.client
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from .cleanup import CleanupReport, cleanup_server, stubs_of
from .environment import (
    backends_dir,
    ensure_python_stub,
    find_tritonserver_dir,
    tritonserver_binary,
    venv_bin_dir,
)

log = logging.getLogger(__name__)

LOG_TAIL_LINES = 80
_IN_USE = re.compile(r"Socket '[^']*:(\d+)' already in use")
_PORT_NAMES = ("http_port", "grpc_port", "metrics_port")
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
_LOAD_FAILED = re.compile(r"failed to load '([^']+)' version \d+: (.*?)\"?$", re.MULTILINE)
_NO_GPU = "unsupported gpu id"


def load_failures(log_text: str) -> list[str]:
    """One line per model the server failed to load, from its log: the model and
    Triton's reason (a GPU it cannot use is said so in plain words)."""
    failures = []
    for model, reason in _LOAD_FAILED.findall(log_text):
        reason = reason.strip().removesuffix(" are:").strip()
        if _NO_GPU in reason:
            reason = f"{reason.split('. GPUs')[0]}: this server sees no usable GPU " \
                     "(serve with CPU instances, or where a GPU is visible)"
        failures.append(f"model '{model}': {reason}")
    return list(dict.fromkeys(failures))


class TritonServerError(RuntimeError):
    """The server could not start or died; the message ends with the server log tail."""

    def __init__(self, message: str, log_tail: str = "", port_conflict: int | None = None
                 ) -> None:
        full = f"{message}\n--- tritonserver log (last lines) ---\n{log_tail}" if log_tail \
            else message
        super().__init__(full)
        self.log_tail = log_tail
        #: A port the server could not use because something else holds it.
        self.port_conflict = port_conflict
        if port_conflict is None:
            m = _IN_USE.search(log_tail)
            self.port_conflict = int(m.group(1)) if m else None


# Loopback only: never route our health checks through an HTTP proxy from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_ports(host: str, count: int) -> list[int]:
    """``count`` distinct free TCP ports on ``host`` (all sockets held until all are chosen)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                              socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _url_host(host: str) -> str:
    """Host part for a URL; the wildcard address is reached through loopback."""
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def _tail(path: Path | None, lines: int = LOG_TAIL_LINES) -> str:
    if path is None or not path.is_file():
        return ""
    with path.open(errors="replace") as f:
        return "".join(deque(f, maxlen=lines))


class TritonServer:
    """A ``tritonserver`` process serving ``model_repository``; a context manager.

    Ports left as ``None`` are chosen free on ``host``. ``env_threads`` sets the OpenMP /
    MKL / OpenBLAS thread variables for the server and its Python-backend stubs (on few
    cores, one thread per model instance avoids oversubscription). ``log_file`` keeps the
    server log there; by default it goes to a temporary directory removed by :meth:`stop`.
    ``extra_args`` are appended to the command line (e.g. ``--backend-config=...``).

    ``auto_complete_config`` is off: our config.pbtxt files are complete, and with it on the
    Python backend starts one extra stub process per model just to ask ``model.py`` for its
    config, which costs a full import (torch for the ExaTrkX models: ~30% of start time).

    Stopping: on SIGTERM Triton waits up to ``exit_timeout`` seconds for in-flight requests
    *and for idle client connections* (a kept-alive HTTP client holds it the full time),
    then unloads the models; after ``stop_timeout`` seconds (default ``exit_timeout`` + 25)
    it is killed.
    """

    def __init__(
        self,
        model_repository: str | os.PathLike[str],
        *,
        host: str = "127.0.0.1",
        http_port: int | None = None,
        grpc_port: int | None = None,
        metrics_port: int | None = None,
        log_verbose: int = 0,
        ready_timeout: float = 120.0,
        env_threads: int | None = None,
        log_file: str | os.PathLike[str] | None = None,
        exit_timeout: int = 5,
        stop_timeout: float | None = None,
        extra_args: Sequence[str] = (),
        auto_complete_config: bool = False,
    ) -> None:
        self.model_repository = Path(model_repository).resolve()
        self.host = host
        self.http_port = http_port
        self.grpc_port = grpc_port
        self.metrics_port = metrics_port
        self.log_verbose = int(log_verbose)
        self.ready_timeout = float(ready_timeout)
        if int(exit_timeout) != exit_timeout or exit_timeout < 0:
            raise ValueError(f"exit_timeout must be a whole number of seconds >= 0, "
                             f"got {exit_timeout}")
        self.exit_timeout = int(exit_timeout)
        self.stop_timeout = float(stop_timeout) if stop_timeout is not None \
            else self.exit_timeout + 25.0
        if env_threads is not None and env_threads < 1:
            raise ValueError(f"env_threads must be >= 1, got {env_threads}")
        self.env_threads = env_threads
        self.extra_args = tuple(extra_args)
        self.auto_complete_config = bool(auto_complete_config)
        self._log_file = Path(log_file).resolve() if log_file is not None else None
        self._tmpdir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._regions: set[str] = set()
        self._auto_ports: list[str] | None = None  # ports we choose (again at each start)
        self._lock = threading.RLock()
        self.start_seconds: float | None = None
        self.stop_seconds: float | None = None
        self.last_cleanup: CleanupReport | None = None

    # ----------------------------------------------------------------- properties
    @property
    def pid(self) -> int | None:
        """PID of the server process while started."""
        return self._process.pid if self._process is not None else None

    @property
    def log_path(self) -> Path | None:
        """The server log file (stdout and stderr of the server and its stubs)."""
        return self._log_file

    @property
    def http_url(self) -> str:
        """``host:port`` of the HTTP endpoint, as ``tritonclient.http`` wants it."""
        return f"{_url_host(self.host)}:{self._port('http_port')}"

    @property
    def grpc_url(self) -> str:
        """``host:port`` of the gRPC endpoint, as ``tritonclient.grpc`` wants it."""
        return f"{_url_host(self.host)}:{self._port('grpc_port')}"

    @property
    def metrics_url(self) -> str:
        """Full URL of the Prometheus metrics page."""
        return f"http://{_url_host(self.host)}:{self._port('metrics_port')}/metrics"

    def _port(self, name: str) -> int:
        port = getattr(self, name)
        if port is None:
            raise RuntimeError(f"{name} is chosen when the server starts; call start() first")
        return int(port)

    def is_running(self) -> bool:
        """Whether the server process is alive."""
        return self._process is not None and self._process.poll() is None

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last ``lines`` lines of the server log."""
        return _tail(self._log_file, lines)

    # ----------------------------------------------------------------- start
    def command(self) -> list[str]:
        """The server command line (ports must be chosen)."""
        root = find_tritonserver_dir()
        return [
            str(tritonserver_binary(root)),
            f"--model-repository={self.model_repository}",
            f"--backend-directory={backends_dir(root)}",
            "--model-control-mode=none",
            "--exit-on-error=true",
            "--strict-readiness=true",
            f"--http-address={self.host}",
            f"--http-port={self._port('http_port')}",
            f"--grpc-address={self.host}",
            f"--grpc-port={self._port('grpc_port')}",
            "--allow-metrics=true",
            f"--metrics-address={self.host}",
            f"--metrics-port={self._port('metrics_port')}",
            f"--exit-timeout-secs={self.exit_timeout}",
            f"--log-verbose={self.log_verbose}",
            *(() if self.auto_complete_config else ("--disable-auto-complete-config",)),
            *self.extra_args,
        ]

    def environment(self) -> dict[str, str]:
        """Server environment: this venv's ``bin`` first on PATH so stubs find its packages."""
        env = dict(os.environ)
        env["PATH"] = os.pathsep.join([str(venv_bin_dir()), env.get("PATH", os.defpath)])
        if self.env_threads is not None:
            for var in THREAD_ENV_VARS:
                env[var] = str(self.env_threads)
        return env

    def start(self) -> TritonServer:
        """Launch the server and block until it is ready (or raise with its log).

        Ports chosen here are free when chosen but could be taken before the server binds
        them (other processes on the machine); that case is retried with new ports.
        """
        with self._lock:
            if self._process is not None:
                raise RuntimeError("server already started")
            if not self.model_repository.is_dir():
                raise FileNotFoundError(f"model repository {self.model_repository} not found")
            ensure_python_stub()
            if self._auto_ports is None:
                self._auto_ports = [n for n in _PORT_NAMES if getattr(self, n) is None]
        attempts = 3 if self._auto_ports else 1
        for attempt in range(1, attempts + 1):
            try:
                return self._launch()
            except TritonServerError as exc:
                ours = {getattr(self, n) for n in self._auto_ports}
                if attempt == attempts or exc.port_conflict not in ours:
                    raise
                log.warning("a chosen port was taken before tritonserver bound it; retrying "
                            "with new ports (attempt %d of %d)", attempt + 1, attempts)
        raise AssertionError("unreachable")

    def _launch(self) -> TritonServer:
        with self._lock:
            assert self._auto_ports is not None
            ports = free_ports(self.host, len(self._auto_ports))
            for name, port in zip(self._auto_ports, ports, strict=True):
                setattr(self, name, port)
            if self._log_file is None:
                self._tmpdir = Path(tempfile.mkdtemp(prefix="sonic-exatrkx-triton-"))
                self._log_file = self._tmpdir / "tritonserver.log"
            self._log_file.parent.mkdir(parents=True, exist_ok=True)
            cmd = self.command()
            log.info("starting %s", " ".join(cmd))
            t0 = time.monotonic()
            with self._log_file.open("ab") as out:
                # Own session: a terminal's Ctrl-C reaches only us; stop() shuts it down.
                self._process = subprocess.Popen(
                    cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                    env=self.environment(), start_new_session=True)
            atexit.register(self.stop)
        try:
            self._wait_ready(t0)
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - t0
        self._regions |= {s.shm_region for s in stubs_of(self._process.pid) if s.shm_region}
        log.info("Triton server %d ready in %.1f s: http %s, grpc %s, metrics %s",
                 self._process.pid, self.start_seconds, self.http_url, self.grpc_url,
                 self.metrics_url)
        return self

    def _wait_ready(self, t0: float) -> None:
        """Poll HTTP readiness, then the metrics page, while watching the process.

        The metrics page is checked too because Triton reports its metrics service started
        even when another process holds that port.
        """
        assert self._process is not None
        host = _url_host(self.host)
        ready_url = f"http://{host}:{self.http_port}/v2/health/ready"
        deadline = t0 + self.ready_timeout
        while not self._get_ok(ready_url, t0, deadline, "ready"):
            time.sleep(0.2)
        metrics_deadline = min(deadline, time.monotonic() + 10.0)
        while not self._get_ok(self.metrics_url, t0, metrics_deadline,
                               f"serving metrics on port {self.metrics_port}",
                               port=self.metrics_port):
            time.sleep(0.2)

    def _get_ok(self, url: str, t0: float, deadline: float, what: str,
                port: int | None = None) -> bool:
        """One GET of ``url``: True on 200; raises when the server died or time is up."""
        assert self._process is not None
        code = self._process.poll()
        if code is not None:
            failed = load_failures(_tail(self._log_file, 100_000))
            because = f": {'; '.join(failed)}" if failed else ""
            raise TritonServerError(
                f"tritonserver exited with code {code} before it was {what}{because} "
                f"(model repository {self.model_repository}){self._log_hint()}",
                self.log_tail())
        with contextlib.suppress(OSError, urllib.error.URLError, http.client.HTTPException), \
                _OPENER.open(url, timeout=2.0) as resp:
            if resp.status == 200:
                return True
        if time.monotonic() >= deadline:
            hint = " (is the port taken by another process?)" if port is not None else ""
            raise TritonServerError(
                f"tritonserver not {what} within {time.monotonic() - t0:.0f} s{hint} "
                f"(model repository {self.model_repository}){self._log_hint()}",
                self.log_tail(), port_conflict=port)
        return False

    def _log_hint(self) -> str:
        """Where the full log is, unless it is a temporary file removed by stop()."""
        return f"; full log: {self._log_file}" if self._tmpdir is None else ""

    # ----------------------------------------------------------------- stop
    def stop(self, timeout: float | None = None) -> None:
        """SIGTERM, wait up to ``timeout`` s, then SIGKILL; clean up the server's stubs.

        Idempotent. Whatever way the server ended, its leftover Python-backend stubs are
        killed and their shared-memory files removed (never those of other servers).
        """
        with self._lock:
            proc = self._process
            if proc is None:
                return
            timeout = self.stop_timeout if timeout is None else timeout
            t0 = time.monotonic()
            if proc.poll() is None:
                self._regions |= {s.shm_region for s in stubs_of(proc.pid) if s.shm_region}
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    log.warning("tritonserver %d did not stop within %.0f s; killing it",
                                proc.pid, timeout)
                    proc.kill()
                    try:
                        proc.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        log.error("tritonserver %d survived SIGKILL for 30 s (stuck in the "
                                  "kernel?); giving up on it", proc.pid)
            self.last_cleanup = cleanup_server(proc.pid, self._regions)
            self.stop_seconds = time.monotonic() - t0
            self._process = None
            self._regions = set()
            atexit.unregister(self.stop)
            if self._tmpdir is not None:
                shutil.rmtree(self._tmpdir, ignore_errors=True)
                self._tmpdir = None
                self._log_file = None
            log.info("Triton server %d stopped in %.1f s", proc.pid, self.stop_seconds)

    def __enter__(self) -> TritonServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self._process is not None else "stopped"
        return f"TritonServer({str(self.model_repository)!r}, host={self.host!r}, {state})"
