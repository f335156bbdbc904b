"""Client-side metrics in Prometheus form, with the ``prometheus_client`` library.

Nothing is counted twice: a collector reads the clients' own :class:`ClientStats` when
scraped (or when a batch job writes its textfile at the end), so the metrics, the job's
summary lines and the manifest always agree. Series (``client``: e.g. ``triton:exatrkx``
or ``local:pipeline``; ``server``: host:port of a pool member):

- ``sonic_client_{requests,retries,failovers,fallbacks,failures}_total{client}``: requests
  the job made and what became of them; ``sonic_client_bytes_{sent,received,shm}_total``;
- ``sonic_client_latency_seconds{client}``: request round trip (histogram);
- ``sonic_client_server_tries_total{client,server}``, ``..._server_failures_total``,
  ``sonic_client_server_latency_seconds{client,server}`` (histogram) and
  ``sonic_client_in_flight{client,server}`` (gauge): the same per server of a pool.

During a job :func:`serve_metrics` exposes them over HTTP (bound to 127.0.0.1 unless told
otherwise); a batch job writes them with :func:`write_metrics` (node-exporter's textfile
collector, or a push to a gateway by the site's tooling). docs/deploy.md has the PromQL.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from sonic_exatrkx.sonic.stats import COUNTERS, ClientStats

#: Latency histogram buckets (s): from a fast local event to a slow dense one.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

Source = Callable[[], tuple[Iterable[ClientStats], Iterable[ClientStats]]]


def _histogram(latencies: list[float]) -> tuple[list[tuple[str, float]], float]:
    lat = np.asarray(latencies, dtype=np.float64)
    counts = [(f"{b:g}", float(np.count_nonzero(lat <= b))) for b in BUCKETS]
    return [*counts, ("+Inf", float(lat.size))], float(lat.sum())


class ClientCollector:
    """A ``prometheus_client`` collector over ``source()``: (client totals, per server)."""

    def __init__(self, source: Source) -> None:
        self.source = source

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        clients, servers = (list(x) for x in self.source())
        for key in COUNTERS:
            family = CounterMetricFamily(f"sonic_client_{key}", f"Client {key} (this job)",
                                         labels=["client"])
            for s in clients:
                family.add_metric([s.name], getattr(s, key))
            yield family
        latency = HistogramMetricFamily("sonic_client_latency_seconds",
                                        "Request round trip", labels=["client"])
        for s in clients:
            buckets, total = _histogram(s.latency_snapshot())
            latency.add_metric([s.name], buckets, sum_value=total)
        yield latency
        tries = CounterMetricFamily("sonic_client_server_tries",
                                    "Tries sent to each server", labels=["client", "server"])
        failures = CounterMetricFamily("sonic_client_server_failures",
                                       "Failed tries per server", labels=["client", "server"])
        in_flight = GaugeMetricFamily("sonic_client_in_flight", "Tries in flight",
                                      labels=["client", "server"])
        per_server = HistogramMetricFamily("sonic_client_server_latency_seconds",
                                           "Answered tries' round trip per server",
                                           labels=["client", "server"])
        for s in servers:
            labels = [s.name, s.server]
            tries.add_metric(labels, s.requests)
            failures.add_metric(labels, s.failures)
            in_flight.add_metric(labels, s.in_flight)
            buckets, total = _histogram(s.latency_snapshot())
            per_server.add_metric(labels, buckets, sum_value=total)
        yield from (tries, failures, in_flight, per_server)


def registry_for(source: Source) -> Any:
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry()
    registry.register(ClientCollector(source))  # type: ignore[arg-type]
    return registry


def write_metrics(path: str | os.PathLike[str], source: Source) -> Path:
    """The metrics as a Prometheus textfile (written atomically by prometheus_client)."""
    from prometheus_client import write_to_textfile

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(out), registry_for(source))
    return out


def write_prometheus(path: str | os.PathLike[str], stats: Iterable[ClientStats],
                     servers: Iterable[ClientStats] = ()) -> Path:
    """:func:`write_metrics` for fixed statistics (e.g. a finished job's)."""
    items, per_server = list(stats), list(servers)
    return write_metrics(path, lambda: (items, per_server))


class MetricsServer:
    """``prometheus_client``'s HTTP endpoint for one job; :meth:`close` stops it."""

    def __init__(self, port: int, source: Source, addr: str = "127.0.0.1") -> None:
        from prometheus_client import start_http_server

        self.server, self.thread = start_http_server(port, addr=addr,
                                                     registry=registry_for(source))
        self.port = self.server.server_port
        self.addr = addr

    @property
    def url(self) -> str:
        return f"http://{self.addr}:{self.port}/metrics"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
