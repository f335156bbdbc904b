"""Client metrics with prometheus_client: an HTTP endpoint on 127.0.0.1 during the job
(scraped mid-job here) and a textfile at the end, both parseable Prometheus text with the
counters the job summary shows."""

from __future__ import annotations

import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from algorithms import CsvEventReader
from algorithms.exatrkx_track_finding import ExaTrkXTrackFinding, TrackFindingConfig
from sonic_exatrkx.framework import Writer
from tests.sonic.conftest import run_job


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


class Scrape(Writer):
    """Fetches the job's metrics endpoint while the job runs (at its last event)."""

    def __init__(self, finder: ExaTrkXTrackFinding, at_event: int) -> None:
        super().__init__(name="Scrape")
        self.finder, self.at_event, self.text = finder, at_event, ""

    def execute(self, ctx) -> None:
        if ctx.event == self.at_event:
            server = self.finder.metrics_server
            assert server is not None and server.addr == "127.0.0.1"
            with urllib.request.urlopen(server.url, timeout=10) as response:  # noqa: S310
                self.text = response.read().decode()


def test_metrics_endpoint_during_a_local_job_and_textfile(sim_events, sonic_models, tmp_path):
    finder = ExaTrkXTrackFinding(TrackFindingConfig(
        models=sonic_models, metrics_port=0, metrics_file=tmp_path / "job.prom"))
    scrape = Scrape(finder, at_event=3)
    run_job(CsvEventReader(sim_events), finder, threads=1, in_flight=1, writers=[scrape])
    live = samples(scrape.text)
    client = (("client", "local:pipeline"),)
    assert live[("sonic_client_requests_total", client)] == 4
    assert live[("sonic_client_failures_total", client)] == 0
    assert live[("sonic_client_latency_seconds_count", client)] == 4
    assert live[("sonic_client_latency_seconds_bucket", (*client, ("le", "+Inf")))] == 4
    final = samples((tmp_path / "job.prom").read_text())
    assert final[("sonic_client_requests_total", client)] == 4
    assert finder.metrics_server is None  # stopped with the job


@pytest.mark.triton
def test_served_job_metrics_per_server(exatrkx_server, sim_events, sonic_models, tmp_path):
    url = exatrkx_server.grpc_url
    finder = ExaTrkXTrackFinding(TrackFindingConfig(
        models=sonic_models, inference="triton", servers=url,
        metrics_file=tmp_path / "job.prom"))
    run_job(CsvEventReader(sim_events), finder)
    final = samples((tmp_path / "job.prom").read_text())
    labels = (("client", "triton:exatrkx"), ("server", url))
    assert final[("sonic_client_requests_total", (("client", "triton:exatrkx"),))] == 4
    assert final[("sonic_client_server_tries_total", labels)] == 4
    assert final[("sonic_client_server_failures_total", labels)] == 0
    assert final[("sonic_client_in_flight", labels)] == 0
    assert final[("sonic_client_server_latency_seconds_count", labels)] == 4
