"""The job on a real Dask LocalCluster (worker processes): the same outputs as a plain
run, and a worker killed mid-chunk costs nothing but time: its chunk runs again on
another worker, resuming from its commits, and every event is written exactly once."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from sonic_exatrkx.framework import EventCommits
from sonic_exatrkx.jobs import Manifest, RecoJobConfig
from sonic_exatrkx.jobs.dask_executor import DaskConfig, run_dask_job
from tests.jobs.outputs import assert_same_outputs, assert_same_tracks


def test_dask_job_equals_the_plain_run(batch_events, unsharded, tmp_path):
    cfg = RecoJobConfig(input=batch_events, output=tmp_path / "dask")
    result = run_dask_job(cfg, DaskConfig(workers=2, chunk_size=7), say=lambda _m: None,
                          progress=False)
    assert result.chunks == 4 and result.processed == 24
    assert_same_outputs(unsharded, tmp_path / "dask")
    assert Manifest.read(tmp_path / "dask").done == list(range(24))
    again = run_dask_job(cfg, DaskConfig(workers=2, chunk_size=7), say=lambda _m: None,
                         progress=False)  # every chunk is done: nothing is recomputed
    assert again.processed == 0
    assert_same_outputs(unsharded, tmp_path / "dask")


def test_a_killed_worker_loses_and_doubles_nothing(batch_events, unsharded, tmp_path):
    from distributed import Client, LocalCluster

    out = tmp_path / "dask"
    killed: list[int] = []

    def kill_a_worker_mid_chunk(client: Client) -> None:
        """SIGKILL the worker process running a chunk once that chunk has committed some
        but not all of its events: a real crash, seen by the nanny and the scheduler."""
        deadline = time.monotonic() + 120
        while not killed and time.monotonic() < deadline:
            for chunk in sorted((out / "chunks").glob("chunk*")):
                if not 0 < len(EventCommits(chunk / "commits").events()) < 12:
                    continue
                for address, keys in client.processing().items():
                    if any(chunk.name in str(k) for k in keys):
                        pid = client.run(os.getpid, workers=[address])[address]
                        os.kill(pid, signal.SIGKILL)
                        killed.append(pid)
                        return
            time.sleep(0.01)

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        killer = threading.Thread(target=kill_a_worker_mid_chunk, args=(client,), daemon=True)
        killer.start()
        result = run_dask_job(RecoJobConfig(input=batch_events, output=out, threads=1),
                              DaskConfig(chunk_size=12), say=lambda _m: None,
                              progress=False, client=client)
        killer.join(5)
    assert killed, "no worker was killed mid-chunk"
    assert result.resumed > 0  # the chunk ran again and went on from its commits
    assert result.processed + result.resumed == 24
    assert_same_outputs(unsharded, out)
    assert Manifest.read(out).done == list(range(24))


@pytest.mark.triton
def test_dask_workers_against_two_triton_servers_equal_the_local_run(
        triton_available, batch_events, unsharded, tmp_path):
    """2 worker processes, each a client of a pool of 2 real servers (least-outstanding
    balancing): the merged outputs are the plain local run's."""
    from algorithms.exatrkx_track_finding import TrackFindingConfig, default_model_dir
    from sonic_exatrkx.server import (
        ExaTrkXRepositoryOptions,
        TritonServer,
        write_exatrkx_repository,
    )

    repo = tmp_path / "repo"
    write_exatrkx_repository(repo, default_model_dir(), ExaTrkXRepositoryOptions(
        instances=1, num_threads=1, ensemble=False))
    with TritonServer(repo, env_threads=1, ready_timeout=180) as a, \
            TritonServer(repo, env_threads=1, ready_timeout=180) as b:
        finder = TrackFindingConfig(inference="triton", servers=(a.grpc_url, b.grpc_url))
        result = run_dask_job(RecoJobConfig(input=batch_events, output=tmp_path / "dask",
                                            finder=finder),
                              DaskConfig(workers=2, chunk_size=6), say=lambda _m: None,
                              progress=False)
    assert result.processed == 24
    assert_same_tracks(unsharded, tmp_path / "dask")
    stats = {s["name"]: s for s in Manifest.read(tmp_path / "dask").client_stats}
    assert stats["triton:exatrkx"]["requests"] == 24 and stats["triton:exatrkx"]["failures"] == 0
