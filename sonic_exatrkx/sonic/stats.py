"""Per-client request statistics, for the job summary and Prometheus."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: The counters of :class:`ClientStats` (Prometheus counters, summed over jobs).
COUNTERS = ("requests", "retries", "failovers", "fallbacks", "failures", "bytes_sent",
            "bytes_received", "bytes_shm")


@dataclass
class ClientStats:
    """Counters and round-trip latencies of one client; safe to update from any thread.

    ``requests`` counts requests the caller made (one per event and model), ``retries``
    extra tries on the same server, ``failovers`` moves to the next server, ``fallbacks``
    requests handed to the local fallback, ``failures`` requests that failed for good;
    ``bytes_sent`` / ``bytes_received`` go over the network, ``bytes_shm`` (both ways)
    through system shared memory. ``local``: the client runs in this process (its
    "requests" are calls, its latencies their durations).
    """

    name: str
    server: str = ""  # set for the statistics of one server of a pool
    local: bool = False
    requests: int = 0
    retries: int = 0
    failovers: int = 0
    fallbacks: int = 0
    failures: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    bytes_shm: int = 0
    in_flight: int = 0  # tries sent and not answered yet (a gauge)
    latencies_s: list[float] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for key, value in counts.items():
                setattr(self, key, getattr(self, key) + value)

    def record_latency(self, seconds: float) -> None:
        with self._lock:
            self.latencies_s.append(seconds)

    def latency_snapshot(self) -> list[float]:
        with self._lock:
            return list(self.latencies_s)

    def percentiles_ms(self, qs: Iterable[float] = (50, 90, 99)) -> dict[str, float]:
        with self._lock:
            lat = np.array(self.latencies_s)
        if lat.size == 0:
            return {f"p{q:g}": float("nan") for q in qs}
        return {f"p{q:g}": float(1e3 * np.percentile(lat, q)) for q in qs}

    def counts(self) -> dict[str, object]:
        """The counters and latencies as plain values (a job's manifest; merges sum them)."""
        with self._lock:
            latencies = list(self.latencies_s)
        return {"name": self.name, "local": self.local,
                **{k: getattr(self, k) for k in COUNTERS}, "latencies_s": latencies}

    @classmethod
    def summed(cls, name: str, items: Iterable[Mapping[str, Any]]) -> ClientStats:
        """One client's statistics over several jobs (shards, chunks) from :meth:`counts`."""
        total = cls(name)
        for item in items:
            total.local = bool(item.get("local", False))
            total.add(**{k: int(item.get(k, 0)) for k in COUNTERS})
            total.latencies_s.extend(float(x) for x in item.get("latencies_s", []))
        return total

    def line(self) -> str:
        """One summary line: counts, round-trip percentiles (sent to answered), bytes; for
        a client in this process: calls and their durations."""
        p = self.percentiles_ms()
        spread = f"p50 {p['p50']:.1f} ms, p90 {p['p90']:.1f} ms, p99 {p['p99']:.1f} ms"
        if self.local:
            return f"{self.name} (in this process): {self.requests} calls; time per call {spread}"
        where = f" on {self.server}" if self.server else ""
        return (
            f"{self.name}{where}: {self.requests} requests, {self.retries} retries, "
            f"{self.failovers} failovers, {self.fallbacks} fallbacks, {self.failures} failed; "
            f"round trip per request (sent to answered) {spread}; "
            f"{self.bytes_sent / 1e6:.2f} MB sent, {self.bytes_received / 1e6:.2f} MB received"
            + (f", {self.bytes_shm / 1e6:.2f} MB via shared memory" if self.bytes_shm else "")
        )


@dataclass(frozen=True)
class ServerTiming:
    """What Triton's statistics API says about one model on one server over this job
    (the difference of its cumulative counters since the job started): requests done
    and their mean time queued and computing there."""

    client: str
    url: str
    model: str
    inferences: int
    queue_ms: float
    compute_ms: float  # input + infer + output
    total_ms: float  # request duration in the server

    def line(self) -> str:
        return (f"{self.client} on {self.url}: {self.inferences} inferences; per request "
                f"queue {self.queue_ms:.2f} ms, compute {self.compute_ms:.2f} ms, total in "
                f"server {self.total_ms:.2f} ms")


#: Phases of Triton's per-model inference statistics that a job's summary uses.
STAT_KEYS = ("success", "queue", "compute_input", "compute_infer", "compute_output")
#: Cumulative (count, ns) per phase, as Triton reports them for one model on one server.
Counters = dict[str, tuple[int, int]]


def read_counters(client: Any, model: str, version: str, **kw: Any) -> Counters | None:
    """Triton's cumulative (count, ns) per phase for ``model`` from a tritonclient
    connection (``kw``: e.g. ``as_json`` / ``client_timeout`` for gRPC); None when the
    server does not answer: statistics are best effort."""
    try:
        stats = client.get_inference_statistics(model, version, **kw)
        phases = stats["model_stats"][0]["inference_stats"]
    except Exception:  # noqa: BLE001 - statistics are best effort
        return None
    return {k: (int(phases.get(k, {}).get("count", 0)), int(phases.get(k, {}).get("ns", 0)))
            for k in STAT_KEYS}


def timing_since(client: str, url: str, model: str, before: Counters | None,
                 now: Counters) -> ServerTiming | None:
    """This job's requests on one server: the difference of the counters since the job
    started, as mean times per request (None when the job sent none there)."""
    start = before or dict.fromkeys(STAT_KEYS, (0, 0))
    delta = {k: (now[k][0] - start[k][0], now[k][1] - start[k][1]) for k in now}
    n = delta["success"][0]
    if n <= 0:
        return None
    ms = {k: 1e-6 * delta[k][1] / n for k in delta}
    compute = ms["compute_input"] + ms["compute_infer"] + ms["compute_output"]
    return ServerTiming(client, url, model, n, ms["queue"], compute, ms["success"])


def round_trip_split(name: str, mean_ms: float, timings: Sequence[ServerTiming],
                     stats: Sequence[ClientStats]) -> str:
    """The mean time from dispatch to answer per event, split into Triton's queue and
    compute (per model: its mean per request, one request per model and event) and the
    rest outside the server (network, client, stages run here).

    The split holds only when Triton's counts are this job's requests: when a model
    counted more or fewer inferences than the job had answered (other clients on the
    server, tries the job gave up on, a server without statistics, events run by the
    local fallback) the rest is not reported; nor is a rest below zero, which differences
    of means can give, as a negative time.
    """
    by_client: dict[str, list[ServerTiming]] = {}
    for t in timings:
        by_client.setdefault(t.client, []).append(t)
    answered = {s.name: s.requests - s.failures - s.fallbacks for s in stats}
    queue = compute = 0.0
    mismatched = []
    for client, items in by_client.items():
        n = sum(t.inferences for t in items)
        queue += sum(t.queue_ms * t.inferences for t in items) / n
        compute += sum(t.compute_ms * t.inferences for t in items) / n
        if client in answered and answered[client] != n:
            mismatched.append(f"{client}: {n} inferences counted for {answered[client]} "
                              "answered requests")
    head = (f"{name}: of the mean {mean_ms:.2f} ms from dispatch to answer per event, "
            f"{queue:.2f} ms queued and {compute:.2f} ms computing in Triton "
            f"({len(by_client)} model(s), statistics API)")
    if mismatched:
        return (f"{head}; the rest is not this job's to split ({'; '.join(mismatched)}: "
                "other clients, abandoned tries or the local fallback)")
    rest = mean_ms - queue - compute
    if rest < 0:
        return (f"{head}; outside the server: too small to measure (Triton's means exceed "
                f"the round trip's by {-rest:.2f} ms)")
    return f"{head}, {rest:.2f} ms outside the server (network, client, stages run here)"
