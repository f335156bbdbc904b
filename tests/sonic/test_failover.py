"""A server killed (SIGKILL) mid-job: failover to a second server or local fallback loses
and duplicates no event; without either, the failed events are named and not written."""

from __future__ import annotations

import numpy as np
import pytest

from algorithms import CsvTrackWriter
from algorithms.exatrkx_track_finding import ExaTrkXTrackFinding, TrackFindingConfig
from sonic_exatrkx.framework import AlgorithmError, ProcessCode, Writer
from sonic_exatrkx.sonic import RetryPolicy, TritonOptions
from tests.sonic.conftest import CyclingReader, run_job, start_server, write_repo

EVENTS = 12
KILL_AFTER = 3  # events written before the kill


@pytest.fixture(scope="module")
def custom_repo(sonic_models, tmp_path_factory):
    return write_repo(tmp_path_factory.mktemp("custom-repo"), sonic_models, ensemble=False)


@pytest.fixture
def doomed_server(triton_available, custom_repo, tmp_path):
    server = start_server(custom_repo, tmp_path)
    try:
        yield server
    finally:
        server.stop()  # reaps what SIGKILL left (stubs, shared memory)


@pytest.fixture(scope="module")
def reference(sim_events, sonic_models):
    out, _ = run_job(
        CyclingReader(sim_events, EVENTS),
        ExaTrkXTrackFinding(TrackFindingConfig(models=sonic_models)),
    )
    return out.labels


class KillServer(Writer):
    """SIGKILLs the server once `after` events are written (writers run in event order,
    so later events are in flight or not yet sent)."""

    def __init__(self, server, after: int) -> None:
        super().__init__(name="KillServer")
        self.server = server
        self.after = after
        self.count = 0

    def execute(self, ctx) -> ProcessCode:
        self.count += 1
        if self.count == self.after:
            self.server._process.kill()
            self.server._process.wait(10)
        return ProcessCode.SUCCESS


def job(sim_events, sonic_models, server, servers, protocol="grpc", fallback_local=False):
    triton = TritonOptions(protocol=protocol, fallback_local=fallback_local,
                           retry=RetryPolicy(allowed_tries=2))
    alg = ExaTrkXTrackFinding(TrackFindingConfig(
        models=sonic_models, inference="triton", servers=servers, mode="async", triton=triton))
    return alg, *run_job(
        CyclingReader(sim_events, EVENTS),
        alg,
        threads=2,
        in_flight=4,
        writers=[KillServer(server, KILL_AFTER)],
    )


def assert_exactly_once_and_equal(out, reference):
    assert out.write_counts == dict.fromkeys(range(EVENTS), 1)
    for e in range(EVENTS):
        np.testing.assert_array_equal(out.labels[e], reference[e], err_msg=f"event {e}")


@pytest.mark.triton
@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_failover_to_second_server(
    doomed_server, exatrkx_server, sim_events, sonic_models, reference, protocol
):
    urls = [getattr(s, f"{protocol}_url") for s in (doomed_server, exatrkx_server)]
    alg, out, summary = job(sim_events, sonic_models, doomed_server, urls, protocol=protocol)
    assert summary.processed == EVENTS and not summary.failed
    assert_exactly_once_and_equal(out, reference)
    stats = alg.stats[0]
    assert stats.failovers >= 1 and stats.failures == 0
    # Every event answered exactly once over the two servers: the doomed one at most for
    # the events written or in flight when it died, the survivor for all the others.
    answered = {u: s.requests - s.failures for u, s in alg.client.server_requests.items()}
    assert sum(answered.values()) == EVENTS
    assert answered[urls[0]] <= KILL_AFTER + 4 and answered[urls[1]] >= EVENTS - KILL_AFTER - 4
    summary_text = alg.stats_summary()
    print("\n" + summary_text)
    assert f"on {urls[1]}: " in summary_text  # server-side queue/compute of the survivor


@pytest.mark.triton
def test_fallback_to_local(doomed_server, sim_events, sonic_models, reference):
    alg, out, summary = job(
        sim_events, sonic_models, doomed_server, doomed_server.grpc_url, fallback_local=True
    )
    assert summary.processed == EVENTS
    assert_exactly_once_and_equal(out, reference)
    remote, local = alg.stats
    assert remote.fallbacks >= 1 and remote.failures == 0
    assert local.requests == remote.fallbacks


@pytest.mark.triton
def test_no_fallback_names_failed_events_and_writes_nothing_for_them(
    doomed_server, sim_events, sonic_models, reference, tmp_path
):
    alg = ExaTrkXTrackFinding(
        TrackFindingConfig(
            models=sonic_models,
            inference="triton",
            mode="async",
            servers=doomed_server.grpc_url,  # no retry budget: fail once the tries are spent
            triton=TritonOptions(retry=RetryPolicy(allowed_tries=2, budget_s=0)),
        )
    )
    out, summary = run_job(
        CyclingReader(sim_events, EVENTS),
        alg,
        threads=2,
        in_flight=4,
        writers=[KillServer(doomed_server, KILL_AFTER), CsvTrackWriter(tmp_path / "tracks")],
        continue_on_error=True,
    )
    failed = sorted(f.event for f in summary.failed)
    assert failed and set(failed) | set(out.labels) == set(range(EVENTS))
    assert not set(failed) & set(out.labels)
    assert all(
        f.algorithm == "ExaTrkXTrackFinding" and "every server failed" in f.error
        for f in summary.failed
    )
    written = sorted(int(p.name[5:14]) for p in (tmp_path / "tracks").glob("*-tracks.csv"))
    assert written == sorted(out.labels)
    for e in out.labels:
        np.testing.assert_array_equal(out.labels[e], reference[e])


@pytest.mark.triton
def test_no_fallback_stops_the_job_with_the_event_named(doomed_server, sim_events, sonic_models):
    alg = ExaTrkXTrackFinding(
        TrackFindingConfig(
            models=sonic_models,
            inference="triton",
            servers=doomed_server.grpc_url,
            triton=TritonOptions(retry=RetryPolicy(allowed_tries=1, budget_s=0)),
        )
    )
    with pytest.raises(
        AlgorithmError,
        match=r"'ExaTrkXTrackFinding' failed on event \d+: "
        r"InferenceError.*every server failed",
    ):
        run_job(
            CyclingReader(sim_events, EVENTS),
            alg,
            threads=2,
            in_flight=4,
            writers=[KillServer(doomed_server, KILL_AFTER)],
        )
