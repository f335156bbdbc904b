"""Per-event traces: client prep, round trip and produce per event, and at the end of the
job the round trip set against Triton's queue and compute time (statistics API deltas)."""

from __future__ import annotations

import re

import pytest

from algorithms import CsvEventReader
from algorithms.exatrkx_track_finding import ExaTrkXTrackFinding, TrackFindingConfig
from sonic_exatrkx.sonic import ServerTiming
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
    assert "trace: 4 events; per event client prep" in summary
    m = re.search(
        r"in Triton per event queue ([\d.]+) ms \+ compute ([\d.]+) ms "
        rf"\({models} model\(s\), statistics API\); outside the server \(network, "
        r"client, local stages\) (-?[\d.]+) ms",
        summary,
    )
    assert m, summary
    assert float(m.group(2)) > 0


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
