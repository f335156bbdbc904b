"""An event over the server's MAX_SPACEPOINTS: with --fallback-local it runs in this
process (logged, counted), without it the job names the limit."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from algorithms import CsvEventReader
from algorithms.exatrkx_track_finding import ExaTrkXTrackFinding, TrackFindingConfig
from sonic_exatrkx.framework import AlgorithmError
from sonic_exatrkx.server import ExaTrkXRepositoryOptions, TritonServer, write_exatrkx_repository
from sonic_exatrkx.sonic import TritonOptions
from tests.sonic.conftest import run_job


@pytest.fixture(scope="module")
def small_server(triton_available, sonic_models, tmp_path_factory):
    repo = tmp_path_factory.mktemp("small-repo")
    write_exatrkx_repository(repo, sonic_models, ExaTrkXRepositoryOptions(
        instances=1, num_threads=1, max_spacepoints=100, ensemble=False))
    with TritonServer(repo, env_threads=1, ready_timeout=180, exit_timeout=2) as server:
        yield server


def finder(models, url, fallback):
    return ExaTrkXTrackFinding(TrackFindingConfig(
        models=models, inference="triton", servers=url,
        triton=TritonOptions(fallback_local=fallback)))


@pytest.mark.triton
def test_too_large_events_fall_back_to_local(small_server, sonic_models, sim_events, caplog):
    local, _ = run_job(CsvEventReader(sim_events),
                       ExaTrkXTrackFinding(TrackFindingConfig(models=sonic_models)))
    alg = finder(sonic_models, small_server.grpc_url, fallback=True)
    with caplog.at_level(logging.WARNING, logger="sonic_exatrkx.sonic"):
        out, summary = run_job(CsvEventReader(sim_events), alg)
    assert summary.processed == 4 and not summary.failed
    for event, labels in local.labels.items():
        np.testing.assert_array_equal(out.labels[event], labels)
    remote = alg.stats[0]
    assert remote.fallbacks == 4 and remote.failures == 0 and remote.retries == 0
    assert "the servers refused the event as too large; running on the local fallback" \
        in caplog.text


@pytest.mark.triton
def test_too_large_without_fallback_names_the_limit(small_server, sonic_models, sim_events):
    with pytest.raises(AlgorithmError, match="MAX_SPACEPOINTS=100"):
        run_job(CsvEventReader(sim_events), finder(sonic_models, small_server.grpc_url,
                                                   fallback=False))
