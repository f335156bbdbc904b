"""Same tracks whatever runs where: local vs Triton (custom, custom-batched, ensemble,
S1-S3), all modes."""

from __future__ import annotations

import numpy as np
import pytest

from algorithms import CsvEventReader
from algorithms.exatrkx_track_finding import ExaTrkXTrackFinding, TrackFindingConfig
from sonic_exatrkx.sonic import TritonOptions
from tests.sonic.conftest import run_job


@pytest.fixture(scope="module")
def local_labels(sim_events, sonic_models):
    out, summary = run_job(
        CsvEventReader(sim_events), ExaTrkXTrackFinding(TrackFindingConfig(models=sonic_models))
    )
    assert summary.processed == 4
    assert any(np.unique(v).size < v.size for v in out.labels.values())  # real tracks
    return out.labels


def assert_same(labels, expected):
    assert sorted(labels) == sorted(expected)
    for event, want in expected.items():
        assert labels[event].dtype == np.int64
        np.testing.assert_array_equal(labels[event], want, err_msg=f"event {event}")


@pytest.mark.triton
@pytest.mark.parametrize("option", ["custom", "custom-batched", "S4", "S1", "S2", "S3"])
def test_served_tracks_equal_local(exatrkx_server, sim_events, sonic_models, local_labels, option):
    alg = ExaTrkXTrackFinding(
        TrackFindingConfig(
            models=sonic_models,
            inference="triton",
            servers=exatrkx_server.grpc_url,
            service_option=option,
        )
    )
    out, _ = run_job(CsvEventReader(sim_events), alg)
    assert_same(out.labels, local_labels)
    remote = [s for s in alg.stats if s.name.startswith("triton:")]
    assert remote and all(s.requests == 4 and s.failures == 0 for s in remote)


@pytest.mark.triton
def test_custom_batched_computes_concurrent_events_together(exatrkx_server, sim_events,
                                                           sonic_models, local_labels):
    # Four events in flight to exatrkx_dynamic (its batcher waits up to 0.5 s for more):
    # fewer executions than requests on the server, and the local tracks.
    import tritonclient.grpc as tg

    def counts() -> tuple[int, int]:
        with tg.InferenceServerClient(exatrkx_server.grpc_url) as c:
            stats = c.get_inference_statistics("exatrkx_dynamic", as_json=True)
        model = stats["model_stats"][0]
        return int(model.get("inference_count", 0)), int(model.get("execution_count", 0))

    before = counts()
    alg = ExaTrkXTrackFinding(TrackFindingConfig(
        models=sonic_models, inference="triton", servers=exatrkx_server.grpc_url,
        service_option="custom-batched", mode="async"))
    out, _ = run_job(CsvEventReader(sim_events), alg, threads=2, in_flight=4)
    assert_same(out.labels, local_labels)
    inferences, executions = (a - b for a, b in zip(counts(), before, strict=True))
    assert inferences == 4 and 1 <= executions < 4


@pytest.mark.triton
@pytest.mark.parametrize("mode", ["sync", "pseudo-async", "async"])
def test_modes_give_identical_tracks(exatrkx_server, sim_events, sonic_models, local_labels, mode):
    alg = ExaTrkXTrackFinding(
        TrackFindingConfig(
            models=sonic_models, inference="triton", mode=mode, servers=exatrkx_server.grpc_url
        )
    )
    out, _ = run_job(CsvEventReader(sim_events), alg, threads=1, in_flight=4)
    assert_same(out.labels, local_labels)


@pytest.mark.parametrize("mode", ["sync", "pseudo-async", "async"])
def test_local_modes_give_identical_tracks(sim_events, sonic_models, local_labels, mode):
    alg = ExaTrkXTrackFinding(TrackFindingConfig(models=sonic_models, mode=mode, local_threads=2))
    out, _ = run_job(CsvEventReader(sim_events), alg)
    assert_same(out.labels, local_labels)


@pytest.mark.triton
def test_http_gives_identical_tracks(exatrkx_server, sim_events, sonic_models, local_labels):
    alg = ExaTrkXTrackFinding(
        TrackFindingConfig(
            models=sonic_models,
            inference="triton",
            servers=exatrkx_server.http_url,
            triton=TritonOptions(protocol="http"),
        )
    )
    out, _ = run_job(CsvEventReader(sim_events), alg)
    assert_same(out.labels, local_labels)


@pytest.mark.triton
def test_auto_uses_the_server_when_it_answers(
    exatrkx_server, sim_events, sonic_models, local_labels
):
    alg = ExaTrkXTrackFinding(
        TrackFindingConfig(models=sonic_models, inference="auto", servers=exatrkx_server.grpc_url)
    )
    out, _ = run_job(CsvEventReader(sim_events), alg)
    assert alg.stats[0].name == "triton:exatrkx" and alg.stats[0].requests == 4
    assert_same(out.labels, local_labels)


def test_auto_falls_back_to_local_without_a_server(sim_events, sonic_models, local_labels, caplog):
    from sonic_exatrkx.server import free_ports

    alg = ExaTrkXTrackFinding(
        TrackFindingConfig(
            models=sonic_models,
            inference="auto",
            servers=f"127.0.0.1:{free_ports('127.0.0.1', 1)[0]}",
        )
    )
    out, _ = run_job(CsvEventReader(sim_events), alg)
    assert_same(out.labels, local_labels)
    assert alg.client is alg.local and alg.mode == "sync"
    assert sum("no Triton server answers" in r.message for r in caplog.records) == 1


@pytest.mark.triton
def test_compression_and_headers_give_identical_tracks(
    exatrkx_server, sim_events, sonic_models, local_labels
):
    alg = ExaTrkXTrackFinding(
        TrackFindingConfig(
            models=sonic_models,
            inference="triton",
            servers=exatrkx_server.grpc_url,
            triton=TritonOptions(compression="gzip", headers={"x-sonic-job": "test"}),
        )
    )
    out, _ = run_job(CsvEventReader(sim_events), alg)
    assert_same(out.labels, local_labels)


@pytest.mark.triton
def test_custom_batched_falls_back_to_the_local_pipeline(triton_available, sim_events,
                                                         sonic_models, local_labels):
    # No server at the address: with --fallback-local every event runs here, through the
    # batch dimension's local twin, and gets the local tracks.
    from sonic_exatrkx.server import free_ports
    from sonic_exatrkx.sonic import RetryPolicy

    port = free_ports("127.0.0.1", 1)[0]
    alg = ExaTrkXTrackFinding(TrackFindingConfig(
        models=sonic_models, inference="triton", servers=f"127.0.0.1:{port}",
        service_option="custom-batched",
        triton=TritonOptions(fallback_local=True, retry=RetryPolicy(budget_s=0))))
    out, summary = run_job(CsvEventReader(sim_events), alg)
    assert summary.processed == 4 and not summary.failed
    assert_same(out.labels, local_labels)
    remote, local = alg.stats
    assert remote.fallbacks == 4 and local.requests == 4
