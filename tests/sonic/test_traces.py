"""Per-event traces: client prep, round trip and produce per event, and at the end of the
job the round trip set against Triton's queue and compute time (statistics API deltas),
split only when Triton's counts are the job's and never into a negative time."""

from __future__ import annotations

import re

import pytest

from algorithms import CsvEventReader
from algorithms.exatrkx_track_finding import ExaTrkXTrackFinding, TrackFindingConfig
from sonic_exatrkx.sonic import ClientStats, ServerTiming
from sonic_exatrkx.sonic.stats import round_trip_split
from tests.sonic.conftest import run_job


@pytest.mark.triton
@pytest.mark.parametrize(("option", "models"), [("custom", 1), ("S3", 5)])
def test_trace_summary_splits_round_trip(exatrkx_server, sim_events, sonic_models, option,
                                         models):
    alg = ExaTrkXTrackFinding(
        TrackFindingConfig(
            models=sonic_models,
            inference="triton",
            servers=exatrkx_server.grpc_url,
            service_option=option,
        )
    )
    run_job(CsvEventReader(sim_events), alg)
    assert len(alg.traces) == 4
    assert all(prep >= 0 and wait > 0 and done >= 0 for _, prep, wait, done in alg.traces)
    timings = alg.server_timings()
    assert len(timings) == models and all(t.inferences == 4 for t in timings)
    assert all(t.compute_ms > 0 and t.total_ms >= t.compute_ms for t in timings)
    summary = alg.stats_summary()
    assert "trace: 4 events; per event, median (p90): inputs prepared" in summary
    m = re.search(
        r"of the mean ([\d.]+) ms from dispatch to answer per event, ([\d.]+) ms queued and "
        rf"([\d.]+) ms computing in Triton \({models} model\(s\), statistics API\)"
        r"(, [\d.]+ ms outside the server|; outside the server: too small to measure)",
        summary,
    )
    assert m, summary
    assert float(m.group(3)) > 0
    assert "-" not in m.group(0)  # never a negative time


def test_local_trace_summary_has_no_server_part(sim_events, sonic_models):
    alg = ExaTrkXTrackFinding(TrackFindingConfig(models=sonic_models))
    run_job(CsvEventReader(sim_events), alg)
    lines = alg.trace_summary()
    assert len(lines) == 1 and "trace: 4 events" in lines[0]
    assert alg.server_timings() == []


def test_server_timing_line():
    t = ServerTiming("triton:m", "h:1", "m", 3, 0.5, 2.25, 3.0)
    assert t.line() == (
        "triton:m on h:1: 3 inferences; per request queue 0.50 ms, "
        "compute 2.25 ms, total in server 3.00 ms"
    )


def _answered(name: str, n: int, **counts: int) -> ClientStats:
    stats = ClientStats(name)
    stats.add(requests=n, **counts)
    return stats


def test_round_trip_split_leaves_the_rest_outside_the_server():
    t = ServerTiming("triton:m", "h:1", "m", 3, 1.0, 6.0, 7.5)
    line = round_trip_split("alg trace", 10.0, [t], [_answered("triton:m", 3)])
    assert line == ("alg trace: of the mean 10.00 ms from dispatch to answer per event, "
                    "1.00 ms queued and 6.00 ms computing in Triton (1 model(s), statistics "
                    "API), 3.00 ms outside the server (network, client, stages run here)")


def test_round_trip_split_never_gives_a_negative_time():
    t = ServerTiming("triton:m", "h:1", "m", 3, 2.0, 11.91, 14.0)
    line = round_trip_split("alg trace", 10.0, [t], [_answered("triton:m", 3)])
    assert "outside the server: too small to measure" in line and "by 3.91 ms" in line
    assert "-3.91" not in line


def test_round_trip_split_refuses_counts_that_are_not_the_jobs():
    """A server shared with other clients counts their inferences too; a fallback's events
    never reach it: the rest would be another job's (or nobody's) time."""
    shared = ServerTiming("triton:m", "h:1", "m", 7, 2.0, 20.0, 23.0)
    line = round_trip_split("alg trace", 10.0, [shared], [_answered("triton:m", 3)])
    assert "not this job's to split (triton:m: 7 inferences counted for 3 answered" in line
    assert "outside the server (" not in line
    served = ServerTiming("triton:m", "h:1", "m", 2, 1.0, 4.0, 5.0)
    line = round_trip_split("alg trace", 10.0, [served],
                            [_answered("triton:m", 3, fallbacks=1)])
    assert "outside the server (network" in line  # 3 requests - 1 fallback = 2 counted


def test_local_client_line_has_no_service_words():
    stats = ClientStats("local:graph", local=True)
    stats.add(requests=2)
    stats.record_latency(0.002)
    line = stats.line()
    assert line.startswith("local:graph (in this process): 2 calls; time per call p50 2.0 ms")
    for word in ("round trip", "retries", "MB sent", "failover"):
        assert word not in line
