"""System shared memory transport: same outputs as the network path, nothing left in
/dev/shm afterwards (also after failed requests), network fallback for a server that
cannot map our regions."""

from __future__ import annotations

import itertools
import os
import time
from pathlib import Path

import numpy as np
import pytest

from algorithms import CsvEventReader
from algorithms.exatrkx_track_finding import ExaTrkXTrackFinding, TrackFindingConfig
from sonic_exatrkx.framework import ConfigurationError
from sonic_exatrkx.sonic import (
    InferenceError,
    OutputCheckError,
    RequestTimeoutError,
    RetryPolicy,
    TensorSpec,
    TritonClient,
    TritonOptions,
)
from sonic_exatrkx.sonic import shm as shm_module
from sonic_exatrkx.sonic.shm import PREFIX, SharedMemoryPool, layout
from tests.sonic.conftest import BAD_SHAPE_MODEL, run_job
from tests.sonic.proxy import DelayProxy

SHM = Path("/dev/shm")


def leftovers() -> list[str]:
    return sorted(p.name for p in SHM.glob(f"{PREFIX}*")) if SHM.is_dir() else []


@pytest.fixture(scope="module")
def network_labels(exatrkx_server, sim_events, sonic_models):
    alg = ExaTrkXTrackFinding(
        TrackFindingConfig(models=sonic_models, inference="triton", servers=exatrkx_server.grpc_url)
    )
    out, _ = run_job(CsvEventReader(sim_events), alg)
    return out.labels


def test_layout_aligns_slots():
    offsets, total = layout([("a", 10), ("b", 0), ("c", 64)])
    assert offsets == {"a": 0, "b": 64, "c": 128} and total == 192


def test_shared_memory_must_be_a_bool():
    with pytest.raises(ConfigurationError, match="shared_memory must be True or False"):
        TritonClient(
            model="m",
            servers="127.0.0.1:1",
            inputs={},
            outputs={},
            options=TritonOptions(shared_memory="yes"),
        )


@pytest.mark.triton
@pytest.mark.parametrize(
    ("option", "protocol", "mode"),
    [("custom", "grpc", "async"), ("custom", "http", "pseudo-async"), ("S3", "grpc", "async"),
     ("custom-batched", "grpc", "async")],
)
def test_shared_memory_outputs_equal_network(
    exatrkx_server, sim_events, sonic_models, network_labels, option, protocol, mode
):
    before = leftovers()
    url = exatrkx_server.grpc_url if protocol == "grpc" else exatrkx_server.http_url
    alg = ExaTrkXTrackFinding(
        TrackFindingConfig(
            models=sonic_models,
            inference="triton",
            servers=url,
            service_option=option,
            mode=mode,
            triton=TritonOptions(protocol=protocol, shared_memory=True),
        )
    )
    out, summary = run_job(CsvEventReader(sim_events), alg, in_flight=4)
    assert summary.processed == 4
    for event, labels in network_labels.items():
        np.testing.assert_array_equal(out.labels[event], labels, err_msg=f"event {event}")
    remote = [s for s in alg.stats if s.name.startswith("triton:")]
    assert remote and all(s.bytes_shm > 0 and s.failures == 0 for s in remote)
    if option.startswith("custom"):  # every tensor's size is known: nothing over the network
        assert remote[0].bytes_sent == 0 and remote[0].bytes_received == 0
        assert "MB via shared memory" in remote[0].line()
    assert leftovers() == before


@pytest.mark.triton
def test_regions_are_destroyed_after_failed_requests(exatrkx_server):
    features = {"FEATURES": TensorSpec("FEATURES", "FP32", ("N", 3))}
    labels = {"LABELS": TensorSpec("LABELS", "INT64", ("N",))}
    before = leftovers()
    client = TritonClient(
        model=BAD_SHAPE_MODEL,
        servers=exatrkx_server.grpc_url,
        inputs=features,
        outputs=labels,
        options=TritonOptions(shared_memory=True),
    )
    client.check()
    x = np.random.default_rng(0).uniform(0.1, 1, (20, 3)).astype(np.float32)
    futures = [client.infer_async({"FEATURES": x}) for _ in range(3)]
    for fut in futures:
        with pytest.raises(OutputCheckError, match="expected int64"):
            fut.result(60)
    deadline = time.monotonic() + 10  # release runs in the completion callbacks
    while (client._shm.pool.regions or leftovers() != before) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not client._shm.pool.regions  # failed requests' regions are not reused
    assert leftovers() == before
    client.close()


@pytest.mark.triton
def test_server_that_cannot_map_our_memory_gets_the_network(
    exatrkx_server, sim_events, sonic_models, network_labels, monkeypatch, caplog
):
    # The server opens the key it is told: one that does not exist on its node is what a
    # server on another node sees.
    monkeypatch.setattr(shm_module.Region, "key", property(lambda r: f"/{r.name}_elsewhere"))
    before = leftovers()
    alg = ExaTrkXTrackFinding(
        TrackFindingConfig(
            models=sonic_models,
            inference="triton",
            servers=exatrkx_server.grpc_url,
            triton=TritonOptions(shared_memory=True),
        )
    )
    out, _ = run_job(CsvEventReader(sim_events), alg)
    for event, labels in network_labels.items():
        np.testing.assert_array_equal(out.labels[event], labels)
    assert alg.stats[0].bytes_shm == 0 and alg.stats[0].bytes_sent > 0
    warnings = [r.message for r in caplog.records if "cannot use this node's shared" in r.message]
    assert len(warnings) == 1 and exatrkx_server.grpc_url in warnings[0]
    assert leftovers() == before


def test_pool_reuses_and_grows_regions():
    calls: list[tuple[str, str, str]] = []
    pool = SharedMemoryPool(
        "t",
        lambda url, r: calls.append(("reg", url, r.name)),
        lambda url, r: calls.append(("unreg", url, r.name)),
    )
    before = leftovers()
    a = pool.acquire(100)
    pool.ensure_registered("h:1", a)
    pool.ensure_registered("h:1", a)
    pool.release(a)
    assert pool.acquire(50) is a  # reused, registered once
    pool.release(a)
    big = pool.acquire(a.size + 1)  # too small a free region is dropped, not kept
    assert big is not a and pool.regions == [big] and a.handle is None
    assert ("unreg", "h:1", a.name) in calls
    pool.release(big, reuse=False)
    assert pool.regions == []
    pool.close()
    assert leftovers() == before
    assert [c[0] for c in calls].count("reg") == 1


@pytest.mark.triton
def test_regions_that_cannot_be_created_get_the_network_until_they_can(
    exatrkx_server, sim_events, sonic_models, network_labels, monkeypatch, caplog
):
    # /dev/shm refuses the first three regions (their names are taken, as a full or
    # foreign-owned /dev/shm refuses them): the probe's and two requests'. Those go over
    # the network, warned once; later requests get regions again.
    start = 10**9
    monkeypatch.setattr(shm_module, "_ids", itertools.count(start))
    taken = [SHM / f"{PREFIX}_{os.getpid()}_{start + i}" for i in range(3)]
    for path in taken:
        path.write_bytes(b"")
    try:
        before = leftovers()
        alg = ExaTrkXTrackFinding(
            TrackFindingConfig(
                models=sonic_models,
                inference="triton",
                servers=exatrkx_server.grpc_url,
                triton=TritonOptions(shared_memory=True),
            )
        )
        out, summary = run_job(CsvEventReader(sim_events), alg, threads=1, in_flight=1)
        after = leftovers()
    finally:
        for path in taken:
            path.unlink(missing_ok=True)
    assert summary.processed == 4 and not summary.failed
    for event, labels in network_labels.items():
        np.testing.assert_array_equal(out.labels[event], labels, err_msg=f"event {event}")
    stats = alg.stats[0]
    assert stats.bytes_sent > 0 and stats.bytes_shm > 0 and stats.failures == 0
    warnings = [r.message for r in caplog.records if "cannot create a shared memory" in r.message]
    assert len(warnings) == 1, warnings
    assert after == before


def test_an_output_larger_than_its_slot_is_an_error_not_a_short_read():
    pool_calls: list[str] = []
    requests = shm_module.SharedMemoryRequests(
        "t", lambda url, r: pool_calls.append("reg"), lambda url, r: pool_calls.append("unreg"),
        lambda key, msg: None)
    specs_in = {"FEATURES": TensorSpec("FEATURES", "FP32", ("N", 3))}
    specs_out = {"LABELS": TensorSpec("LABELS", "INT64", ("N",))}
    before = leftovers()
    slots = requests.prepare({"FEATURES": np.zeros((10, 3), np.float32)}, specs_in, specs_out)
    assert slots is not None and slots.outputs == {"LABELS": 80}

    class Answer:  # what a response says about an output written into the region
        def __init__(self, n: int) -> None:
            self.n = n

        def get_output(self, name: str) -> dict[str, list[int]]:
            return {"shape": [self.n]}

    assert requests.read_output(slots, Answer(10), "LABELS", specs_out["LABELS"]).shape == (10,)
    with pytest.raises(InferenceError, match=r"output 'LABELS' \[11\] does not fit its "
                                             r"shared memory slot of 80 bytes"):
        requests.read_output(slots, Answer(11), "LABELS", specs_out["LABELS"])
    requests.release(slots, reuse=False)
    requests.close()
    assert leftovers() == before


@pytest.mark.triton
def test_a_timed_out_request_never_lends_its_region_to_the_next(exatrkx_server):
    # A timed-out try may still be running on the server and write its outputs later:
    # its region is destroyed, the next request gets a new one.
    features = {"FEATURES": TensorSpec("FEATURES", "FP32", ("N", 3))}
    labels = {"LABELS": TensorSpec("LABELS", "INT64", ("N",))}
    x = np.random.default_rng(1).uniform(0.1, 1, (20, 3)).astype(np.float32)
    before = leftovers()
    with DelayProxy(exatrkx_server.grpc_url, 0.2) as proxy:
        client = TritonClient(model="exatrkx", servers=proxy.url, inputs=features,
                              outputs=labels, options=TritonOptions(
                                  shared_memory=True, timeout_s=0.05,
                                  retry=RetryPolicy(on_timeout="fail")))
        client.check()
        with pytest.raises(RequestTimeoutError):
            client.infer({"FEATURES": x})
        deadline = time.monotonic() + 10  # unregistering goes through the slow proxy
        while (client._shm.pool.regions or leftovers() != before) \
                and time.monotonic() < deadline:
            time.sleep(0.01)
        assert client._shm.pool.regions == []  # destroyed, not put back for reuse
        assert leftovers() == before
        client.close()
    assert leftovers() == before
