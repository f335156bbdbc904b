"""A hung server (SIGSTOP) mid-job: with the default scaled deadline (shortened here) the
requests stuck there time out, the probes mark it down, and the job finishes on the other
server with every event once; the wait is logged while it lasts."""

from __future__ import annotations

import logging
import os
import re
import signal
import time

import numpy as np
import pytest

from algorithms.exatrkx_track_finding import ExaTrkXTrackFinding, TrackFindingConfig
from sonic_exatrkx.framework import ProcessCode, Writer
from sonic_exatrkx.server import TritonServer
from sonic_exatrkx.sonic import TritonOptions
from tests.sonic.conftest import CyclingReader, run_job, write_repo

EVENTS = 16


class HangServer(Writer):
    def __init__(self, server: TritonServer, after: int) -> None:
        super().__init__(name="HangServer")
        self.server, self.after, self.count, self.hung_at = server, after, 0, 0.0

    def execute(self, ctx) -> ProcessCode:
        self.count += 1
        if self.count == self.after:
            os.kill(self.server._process.pid, signal.SIGSTOP)
            self.hung_at = time.monotonic()
        return ProcessCode.SUCCESS


@pytest.mark.triton
def test_a_hung_server_is_timed_out_and_left(exatrkx_server, sonic_models, sim_events,
                                             tmp_path, caplog):
    reference, _ = run_job(CyclingReader(sim_events, EVENTS),
                           ExaTrkXTrackFinding(TrackFindingConfig(models=sonic_models)))
    repo = write_repo(tmp_path / "repo", sonic_models, ensemble=False)
    hung = TritonServer(repo, env_threads=1, ready_timeout=180, exit_timeout=2)
    hung.start()
    hang = HangServer(hung, after=3)
    try:
        alg = ExaTrkXTrackFinding(TrackFindingConfig(
            models=sonic_models, inference="triton",
            servers=[hung.grpc_url, exatrkx_server.grpc_url],
            triton=TritonOptions(deadline_base_s=3.0, slow_log_s=1.0, probe_interval_s=0.5)))
        with caplog.at_level(logging.WARNING, logger="sonic_exatrkx.sonic"):
            out, summary = run_job(CyclingReader(sim_events, EVENTS), alg, threads=2,
                                   in_flight=4, writers=[hang])
        done = time.monotonic()
    finally:
        if hung._process is not None and hung._process.poll() is None:
            os.kill(hung._process.pid, signal.SIGCONT)
        hung.stop()
    assert summary.processed == EVENTS and not summary.failed
    assert all(n == 1 for n in out.write_counts.values())
    for event, labels in reference.labels.items():
        np.testing.assert_array_equal(out.labels[event], labels)
    text = caplog.text
    assert f"server {hung.grpc_url} is not ready" in text  # the probes marked it down
    assert re.search(rf"a request has waited \d+ s at {re.escape(hung.grpc_url)}", text)
    assert alg.stats[0].failovers >= 1 and done - hang.hung_at < 60  # bounded
    print(f"\nhung for the rest of the job; job finished {done - hang.hung_at:.1f} s after "
          f"the hang; {alg.stats[0].retries} retries, {alg.stats[0].failovers} failovers")
