"""A server restarted on the same address mid-job: with the default settings the job
waits for it (the retry budget) and loses, doubles and changes no event."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from algorithms.exatrkx_track_finding import ExaTrkXTrackFinding, TrackFindingConfig
from sonic_exatrkx.framework import ProcessCode, Writer
from sonic_exatrkx.server import TritonServer, free_ports
from sonic_exatrkx.sonic import TritonOptions
from tests.sonic.conftest import CyclingReader, run_job, write_repo

EVENTS = 16
RESTART_AFTER = 3  # events written before the kill


class RestartServer(Writer):
    """After RESTART_AFTER events: SIGKILL the server and start a new one on the same
    gRPC port, in the background (the job goes on meanwhile)."""

    def __init__(self, server: TritonServer, repo, port: int, log_dir) -> None:
        super().__init__(name="RestartServer")
        self.server, self.repo, self.port, self.log_dir = server, repo, port, log_dir
        self.thread: threading.Thread | None = None
        self.new: TritonServer | None = None
        self.killed_at = self.ready_at = 0.0
        self.on_ready = lambda: None  # called once the new server is up

    def execute(self, ctx) -> ProcessCode:
        if ctx.event == RESTART_AFTER - 1 and self.thread is None:
            self.thread = threading.Thread(target=self.restart, daemon=True)
            self.thread.start()
        return ProcessCode.SUCCESS

    def restart(self) -> None:
        self.server._process.kill()
        self.server._process.wait(10)
        self.killed_at = time.monotonic()
        self.server.stop()  # reaps the stubs and shared memory it left
        self.new = TritonServer(self.repo, env_threads=1, ready_timeout=180, exit_timeout=2,
                                grpc_port=self.port, log_file=self.log_dir / "new.log")
        self.new.start()
        self.ready_at = time.monotonic()
        self.on_ready()


@pytest.mark.triton
@pytest.mark.parametrize("shared_memory", [False, True], ids=["network", "shared-memory"])
def test_a_restarted_server_is_ridden_out_with_default_settings(
        triton_available, sonic_models, sim_events, tmp_path, shared_memory):
    reference, _ = run_job(CyclingReader(sim_events, EVENTS),
                           ExaTrkXTrackFinding(TrackFindingConfig(models=sonic_models)))
    repo = write_repo(tmp_path / "repo", sonic_models, ensemble=False)
    port = free_ports("127.0.0.1", 1)[0]
    first = TritonServer(repo, env_threads=1, ready_timeout=180, exit_timeout=2,
                         grpc_port=port, log_file=tmp_path / "first.log")
    first.start()
    restart = RestartServer(first, repo, port, tmp_path)
    try:
        alg = ExaTrkXTrackFinding(TrackFindingConfig(
            models=sonic_models, inference="triton", servers=first.grpc_url,  # defaults
            triton=TritonOptions(shared_memory=shared_memory)))
        shm_bytes_at_restart: list[int] = []
        restart.on_ready = lambda: shm_bytes_at_restart.append(alg.stats[0].bytes_shm)
        start = time.monotonic()
        out, summary = run_job(CyclingReader(sim_events, EVENTS), alg, threads=2,
                               in_flight=4, writers=[restart])
        done = time.monotonic()
    finally:
        if restart.thread is not None:
            restart.thread.join(200)
        for server in (first, restart.new):
            if server is not None:
                server.stop()
    assert summary.processed == EVENTS and not summary.failed
    assert sorted(out.labels) == list(range(EVENTS))
    assert all(n == 1 for n in out.write_counts.values())
    for event, labels in reference.labels.items():
        np.testing.assert_array_equal(out.labels[event], labels)
    stats = alg.stats[0]
    assert stats.failures == 0 and stats.retries > 0
    if shared_memory:  # the restarted server lost our registrations: registered again,
        # so the events after the restart still went through shared memory
        assert shm_bytes_at_restart and stats.bytes_shm > shm_bytes_at_restart[0] > 0
        assert stats.bytes_sent == 0
    print(f"\nserver down for {restart.ready_at - restart.killed_at:.1f} s; job "
          f"{done - start:.1f} s; {stats.retries} retries")
