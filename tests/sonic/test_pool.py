"""A pool of Triton servers: requests go to the least loaded server, health probes take a
server out and bring it back, and a server that does not serve the model is skipped;
tracks stay those of the local run, and statistics are reported per server."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from algorithms import CsvEventReader
from algorithms.exatrkx_track_finding import ExaTrkXTrackFinding, TrackFindingConfig
from sonic_exatrkx.exatrkx import Pipeline
from sonic_exatrkx.server import TritonServer, free_ports
from sonic_exatrkx.sonic import RetryPolicy, TritonClient, TritonOptions
from sonic_exatrkx.sonic.exatrkx_service import stage_specs
from tests.sonic.conftest import CyclingReader, run_job, write_repo
from tests.sonic.proxy import DelayProxy

EVENTS = 24


@pytest.fixture(scope="module")
def local_labels(sim_events, sonic_models):
    out, _ = run_job(CyclingReader(sim_events, EVENTS),
                     ExaTrkXTrackFinding(TrackFindingConfig(models=sonic_models)))
    return out.labels


def served(sim_events, sonic_models, servers, triton):
    alg = ExaTrkXTrackFinding(TrackFindingConfig(
        models=sonic_models, inference="triton", servers=servers, mode="async",
        triton=triton))
    out, summary = run_job(CyclingReader(sim_events, EVENTS), alg, threads=1, in_flight=4)
    assert summary.processed == EVENTS and not summary.failed
    return alg, out


def pipeline_client(models, servers, options):
    config = Pipeline.from_directory(models).config
    inputs, outputs = stage_specs("pipeline", config)
    return TritonClient(model="exatrkx", servers=servers, inputs=inputs, outputs=outputs,
                        options=options), config


def load(client, x, requests=40, window=4):
    """``requests`` requests with at most ``window`` in flight: a new one as soon as any
    returns (a load generator; a job's in-order writers would hold slots back)."""
    slots = threading.Semaphore(window)
    futures = []
    for _ in range(requests):
        slots.acquire()
        future = client.infer_async({"FEATURES": x})
        future.add_done_callback(lambda _f: slots.release())
        futures.append(future)
    return [f.result(120)["LABELS"] for f in futures]


@pytest.mark.triton
def test_least_outstanding_sends_more_to_the_fast_server(exatrkx_server, sonic_models):
    fast = exatrkx_server.grpc_url
    with DelayProxy(fast, one_way_s=0.1) as slow:  # the same server, 200 ms further away
        client, config = pipeline_client(sonic_models, [slow.url, fast], TritonOptions())
        try:
            client.check()
            x = np.random.default_rng(1).uniform(0.1, 1, (200, config.features.width))
            expected = Pipeline.from_directory(sonic_models).run(x.astype(np.float32)).labels
            for labels in load(client, x.astype(np.float32)):
                np.testing.assert_array_equal(labels, expected)
        finally:
            client.close()
    counts = {u: s.requests for u, s in client.server_requests.items()}
    assert counts[fast] + counts[slow.url] == 40
    assert counts[fast] >= 3 * counts[slow.url], counts  # listed first, but slower
    lines = [s.line() for s in client.per_server_stats()]
    assert any(line.startswith(f"triton:exatrkx on {fast}: {counts[fast]} requests")
               for line in lines)


@pytest.mark.triton
def test_failover_balance_keeps_the_list_order(exatrkx_server, sim_events, sonic_models):
    fast = exatrkx_server.grpc_url
    with DelayProxy(fast, one_way_s=0.01) as slow:
        alg, _ = served(sim_events, sonic_models, [slow.url, fast],
                        TritonOptions(balance="failover"))
    assert alg.client.server_requests[slow.url].requests == EVENTS


@pytest.mark.triton
def test_a_server_without_the_model_is_skipped(exatrkx_server, sonic_models, sim_events,
                                               tmp_path):
    """A pool member with another repository (no ensemble): the ensemble's requests all go
    to the server that has it, and the job still starts."""
    repo = write_repo(tmp_path / "repo", sonic_models, ensemble=False)
    with TritonServer(repo, env_threads=1, ready_timeout=180, exit_timeout=2) as other:
        alg = ExaTrkXTrackFinding(TrackFindingConfig(
            models=sonic_models, inference="triton", service_option="S4",
            servers=[other.grpc_url, exatrkx_server.grpc_url]))
        out, summary = run_job(CsvEventReader(sim_events), alg)
    assert summary.processed == 4
    requests = {u: s.requests for u, s in alg.client.server_requests.items()}
    assert requests == {other.grpc_url: 0, exatrkx_server.grpc_url: 4}


@pytest.mark.triton
def test_probes_bring_a_server_back_as_soon_as_it_is_ready(exatrkx_server, sonic_models,
                                                           tmp_path):
    port = free_ports("127.0.0.1", 1)[0]
    later = f"127.0.0.1:{port}"
    client, config = pipeline_client(sonic_models, [later, exatrkx_server.grpc_url],
                                     TritonOptions(probe_interval_s=0.2,
                                                   retry=RetryPolicy(down_s=600)))
    try:
        client.check()  # the first server is not there yet: down for 10 minutes
        assert later not in client._order()
        repo = write_repo(tmp_path / "repo", sonic_models, ensemble=False)
        with TritonServer(repo, env_threads=1, ready_timeout=180, exit_timeout=2,
                          grpc_port=port) as server:
            assert server.grpc_url == later
            deadline = time.monotonic() + 30
            while later not in client._order() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert later in client._order()  # back long before down_s
            width = config.features.width
            x = np.random.default_rng(0).uniform(0.1, 1, (50, width)).astype(np.float32)
            load(client, x, requests=8)
            assert client.server_requests[later].requests > 0
    finally:
        client.close()


@pytest.mark.triton
def test_a_failed_server_is_skipped_for_down_s_then_let_back_in(exatrkx_server,
                                                                 sonic_models):
    dead = f"127.0.0.1:{free_ports('127.0.0.1', 1)[0]}"
    client, _ = pipeline_client(sonic_models, [dead, exatrkx_server.grpc_url], TritonOptions(
        probe_interval_s=0, retry=RetryPolicy(down_s=0.5)))  # no probes: the timer alone
    try:
        client.check()  # the dead one does not answer: down for 0.5 s
        assert client._order() == [exatrkx_server.grpc_url]
        time.sleep(0.6)
        assert dead in client._order()  # tried again after down_s
    finally:
        client.close()


@pytest.mark.triton
def test_a_served_model_without_an_expected_output_is_refused(exatrkx_server, sonic_models):
    from sonic_exatrkx.framework import ConfigurationError
    from sonic_exatrkx.sonic import TensorSpec

    config = Pipeline.from_directory(sonic_models).config
    inputs, outputs = stage_specs("pipeline", config)
    client = TritonClient(model="exatrkx", servers=exatrkx_server.grpc_url, inputs=inputs,
                          outputs={**outputs, "SCORES": TensorSpec("SCORES", "FP32", ("N",))})
    try:
        with pytest.raises(ConfigurationError, match=r"model 'exatrkx' at .* has no output "
                                                     r"'SCORES' \(outputs: LABELS\)"):
            client.check()
    finally:
        client.close()


@pytest.mark.triton
def test_a_server_with_other_models_is_refused(exatrkx_server, sim_events, tmp_path):
    """Identical tracks need identical models: the served models' checksum (published
    in the model config) must be the job's."""
    from sonic_exatrkx.exatrkx import GraphConfig, PipelineConfig
    from sonic_exatrkx.sonic import UnknownModelError

    other = tmp_path / "other-models"
    Pipeline.from_config(PipelineConfig(graph=GraphConfig(radius=0.05, max_k=8)),
                         seed=4).save(other)
    alg = ExaTrkXTrackFinding(TrackFindingConfig(
        models=other, inference="triton", servers=exatrkx_server.grpc_url))
    with pytest.raises(UnknownModelError, match=r"serves 'exatrkx' from other models than "
                                                r"this job's \(checksum [0-9a-f]{12}\.\.\. "):
        run_job(CsvEventReader(sim_events), alg)
