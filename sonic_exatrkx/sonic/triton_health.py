"""Health of the servers of a Triton client: readiness probes, model and output checks,
the background prober that marks servers down and back up, and the slow-request log.

A mixin of :class:`~sonic_exatrkx.sonic.triton.TritonClient` (it uses the client's
connections, lock and down-list), kept apart so that the client module holds connections
and a request's tries.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from sonic_exatrkx.exatrkx.stages import MODELS_CHECKSUM
from sonic_exatrkx.framework import ConfigurationError
from sonic_exatrkx.sonic.errors import ModelMismatchError, UnknownModelError, describe

log = logging.getLogger("sonic_exatrkx.sonic")


class ServerHealth:
    """Probes and checks of :class:`TritonClient` (see the module docstring)."""

    def _probe(self, url: str) -> str | None:
        """None when ``url`` serves the model ready; else why not (raises for an unknown
        model or mismatching outputs: configuration errors, not outages)."""
        version = self.options.model_version
        kw = {"client_timeout": self.options.health_timeout_s} \
            if self.protocol == "grpc" else {}
        client = self._connection(url)
        try:
            live = client.is_server_live(**kw)
        except Exception as exc:  # noqa: BLE001 - any failure means "not there"
            return describe(exc)
        if not live:
            return "server not live"
        try:
            ready = client.is_model_ready(self.model, version, **kw)
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
            shown = f" version {version}" if version else ""
            raise UnknownModelError(
                f"{self.name}: the Triton server at {url} has no ready model "
                f"'{self.model}'{shown} (it serves: {', '.join(names) or 'nothing'})")
        self._check_metadata(url, client, kw)
        self._check_models(url, client, kw)
        return None

    def _check_models(self, url: str, client: Any, kw: dict[str, Any]) -> None:
        """The served model must come from the job's models (the checksum the repository
        writer publishes in its parameters)."""
        if self.models_checksum is None:
            return
        extra = {"as_json": True} if self.protocol == "grpc" else {}
        config = client.get_model_config(self.model, self.options.model_version, **extra,
                                         **kw)
        config = config.get("config", config)  # gRPC wraps it, HTTP does not
        served = config.get("parameters", {}).get(MODELS_CHECKSUM, {}).get("string_value")
        if served is None:
            self._log_once(f"nochecksum:{url}", logging.WARNING,
                           "%s: the server at %s does not publish %s for '%s' (a repository "
                           "not written by sonic-exatrkx?): its models cannot be checked",
                           self.name, url, MODELS_CHECKSUM, self.model)
        elif served != self.models_checksum:
            raise ModelMismatchError(
                f"{self.name}: the server at {url} serves '{self.model}' from other models "
                f"than this job's (checksum {served[:12]}... instead of "
                f"{self.models_checksum[:12]}...): tracks would differ; serve the job's "
                "--models folder, or give the job the server's")

    def _check_metadata(self, url: str, client: Any, kw: dict[str, Any]) -> None:
        extra = {"as_json": True} if self.protocol == "grpc" else {}
        meta = client.get_model_metadata(self.model, self.options.model_version, **extra,
                                         **kw)
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

    def _start_probing(self) -> None:
        interval = self.options.probe_interval_s
        if interval <= 0 or self._prober is not None:
            return
        self._stop_probing.clear()
        self._prober = threading.Thread(target=self._probe_loop, args=(interval,),
                                        daemon=True, name=f"probe-{self.model}")
        self._prober.start()

    def _is_down(self, url: str) -> bool:
        with self._lock:
            return self._down_until.get(url, 0.0) > time.monotonic()

    def _log_slow_requests(self) -> None:
        """Log, once per request, a try that has waited longer than ``slow_log_s``."""
        now = time.perf_counter()
        with self._lock:
            slow = [r for r in self._pending
                    if not r.slow_logged and now - r.sent_at > self.options.slow_log_s]
            for r in slow:
                r.slow_logged = True
        for r in slow:
            deadline = f"{r.deadline_s:g} s" if r.deadline_s is not None else "none"
            log.warning("%s: a request has waited %.0f s at %s (deadline %s); still waiting",
                        self.name, now - r.sent_at, r.url, deadline)

    def _probe_loop(self, interval: float) -> None:
        """Every ``interval`` s: a server that is not ready (or no longer serves the
        model) is marked down before requests fail there; a down server that is ready
        again is back at once, without waiting for ``retry.down_s``."""
        while not self._stop_probing.wait(interval):
            self._log_slow_requests()
            for url in self.servers:
                try:
                    why = self._probe(url)
                except Exception as exc:  # noqa: BLE001 - unknown model, metadata call failed
                    why = describe(exc)
                now = time.monotonic()
                with self._lock:
                    down = self._down_until.get(url, 0.0) > now
                    if why is None and down:
                        del self._down_until[url]
                    elif why is not None and not down:
                        self._down_until[url] = now + self.retry.down_s
                if why is None and down:
                    log.warning("%s: server %s is ready again; sending it requests",
                                self.name, url)
                    with self._lock:
                        self._logged.discard(f"down:{url}")
                elif why is not None and not down:
                    self._log_once(f"down:{url}", logging.WARNING,
                                   "%s: server %s is not ready (%s); skipping it",
                                   self.name, url, why)
