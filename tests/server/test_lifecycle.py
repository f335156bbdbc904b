"""Server lifecycle with real processes: failed starts, clean stop, crash cleanup."""

from __future__ import annotations

import http.client
import logging
import os
import signal
import socket
import time
from pathlib import Path

import numpy as np
import pytest

from sonic_exatrkx.server import (
    TritonServer,
    TritonServerError,
    cleanup_orphans,
    list_stub_processes,
    stubs_of,
)
from sonic_exatrkx.server.cleanup import SHM_DIR, process_running

from .conftest import write_scale_repo

pytestmark = pytest.mark.triton


def _gone(pids: list[int], timeout: float = 10.0) -> bool:
    """Whether all ``pids`` are gone (or zombies awaiting their reaper) within ``timeout``."""
    deadline = time.monotonic() + timeout
    while any(process_running(p) for p in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _infer_scale(url: str) -> np.ndarray:
    import tritonclient.grpc as tg

    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    inp = tg.InferInput("INPUT", [2, 3], "FP32")
    inp.set_data_from_numpy(x)
    with tg.InferenceServerClient(url) as c:
        return c.infer("scale", [inp]).as_numpy("OUTPUT")


def test_broken_model_fails_start_with_server_log(triton_available: None, tmp_path: Path) -> None:
    repo = write_scale_repo(tmp_path / "repo", instances=1, ensemble=False, fail="initialize")
    server = TritonServer(repo, ready_timeout=60, log_file=tmp_path / "server.log")
    with pytest.raises(TritonServerError) as err:
        server.start()
    message = str(err.value)
    assert "exited with code 1 before it was ready" in message
    assert "broken on purpose in initialize" in message  # the model's error, from the log
    assert "failed to load" in message
    assert not server.is_running() and server.pid is None
    assert "broken on purpose" in (tmp_path / "server.log").read_text()


def test_not_ready_in_time_is_stopped_and_cleaned(triton_available: None, tmp_path: Path) -> None:
    """A model stuck in initialize: readiness times out and the server is stopped.

    SIGTERM during loading ends tritonserver at once but leaves the stuck stub running;
    the launcher's cleanup kills it and removes its shared memory.
    """
    repo = write_scale_repo(tmp_path / "repo", instances=1, ensemble=False, fail="hang")
    server = TritonServer(repo, ready_timeout=3, stop_timeout=2)
    seen: list = []
    original = server._wait_ready

    def watch(t0: float) -> None:  # remember the stub while it is alive, then go on waiting
        try:
            original(t0)
        finally:
            seen.extend(stubs_of(server.pid))

    server._wait_ready = watch  # type: ignore[method-assign]
    with pytest.raises(TritonServerError, match=r"not ready within [34] s") as err:
        server.start()
    assert "model_lifecycle" in err.value.log_tail or "loading" in err.value.log_tail
    assert seen, "the hanging model's stub should have been running"
    assert _gone([s.pid for s in seen])
    assert not any((SHM_DIR / s.shm_region).exists() for s in seen)
    assert server.last_cleanup is not None


def test_port_race_is_retried_and_stop_leaves_nothing(triton_available: None, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A port we chose but another process took before the server bound it is retried with
    new ports; after stop() no process and no shared memory of the server is left."""
    from sonic_exatrkx.server import launcher

    real_free_ports = launcher.free_ports
    calls = []
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    taken = busy.getsockname()[1]

    def racy_free_ports(host: str, count: int) -> list[int]:
        calls.append(count)
        ports = real_free_ports(host, count)
        return [taken, *ports[1:]] if len(calls) == 1 else ports

    monkeypatch.setattr(launcher, "free_ports", racy_free_ports)
    repo = write_scale_repo(tmp_path / "repo", instances=1, ensemble=False)
    with busy, TritonServer(repo, env_threads=1) as server:
        assert len(calls) == 2 and server.http_port != taken
        pid = server.pid
        assert pid is not None
        stubs = stubs_of(pid)
        assert [s.instance for s in stubs] == ["scale_0_0"]
        regions = [SHM_DIR / s.shm_region for s in stubs]
        assert all(r.exists() for r in regions)
        np.testing.assert_array_equal(_infer_scale(server.grpc_url),
                                      2 * np.arange(6, dtype=np.float32).reshape(2, 3))
        log_dir = server.log_path.parent
    assert server.stop_seconds is not None and server.stop_seconds < 20
    assert _gone([pid, *(s.pid for s in stubs)])
    assert stubs_of(pid) == []
    assert not any(r.exists() for r in regions)
    assert not log_dir.exists()  # default temporary log directory removed
    server.stop()  # idempotent


def test_stop_kills_a_server_that_does_not_exit(triton_available: None, tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    """An idle kept-alive HTTP connection holds Triton for ``exit_timeout``; ``stop_timeout``
    bounds the wait, then SIGKILL, then the stubs are cleaned up."""
    repo = write_scale_repo(tmp_path / "repo", instances=1, ensemble=False)
    server = TritonServer(repo, exit_timeout=60, stop_timeout=1)
    server.start()
    conn = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=10)
    try:
        conn.request("GET", "/v2/health/ready")
        assert conn.getresponse().read() == b""  # response consumed, connection kept alive
        pid, stubs = server.pid, stubs_of(server.pid)
        with caplog.at_level(logging.WARNING, logger="sonic_exatrkx.server.launcher"):
            server.stop()
    finally:
        conn.close()
    assert "did not stop within 1 s; killing it" in caplog.text
    assert server.stop_seconds is not None and server.stop_seconds < 10
    assert _gone([pid, *(s.pid for s in stubs)])
    assert not any((SHM_DIR / s.shm_region).exists() for s in stubs)


def test_cleanup_orphans_after_sigkill(triton_server: TritonServer, tmp_path: Path) -> None:
    """Stubs that outlive a SIGKILLed server (here: stopped, as if stuck) are removed,
    along with their shm files; the other (session) server is left alone."""
    other_stubs = stubs_of(triton_server.pid)
    repo = write_scale_repo(tmp_path / "repo", instances=2, ensemble=False)
    server = TritonServer(repo, env_threads=1)
    server.start()
    try:
        pid = server.pid
        stubs = stubs_of(pid)
        assert len(stubs) == 2
        for s in stubs:
            os.kill(s.pid, signal.SIGSTOP)  # cannot notice that their server died
        os.kill(pid, signal.SIGKILL)
        server._process.wait(timeout=10)  # reap our child; its stubs are orphans now
        assert all(process_running(s.pid) for s in stubs)
        assert {s.pid for s in list_stub_processes()} >= {s.pid for s in stubs}
        assert all((SHM_DIR / s.shm_region).exists() for s in stubs)

        report = cleanup_orphans()
        assert set(report.killed) >= {s.pid for s in stubs}
        assert {p.name for p in report.removed} >= {s.shm_region for s in stubs}
        assert _gone([s.pid for s in stubs])
        assert not any((SHM_DIR / s.shm_region).exists() for s in stubs)
    finally:
        server.stop()
    # The live session server kept its stubs and shared memory, and still serves.
    assert stubs_of(triton_server.pid) == other_stubs
    assert all((SHM_DIR / s.shm_region).exists() for s in other_stubs)
    np.testing.assert_array_equal(_infer_scale(triton_server.grpc_url),
                                  2 * np.arange(6, dtype=np.float32).reshape(2, 3))


def test_stale_region_sweep_removes_only_old_unused_regions_of_ours(
        triton_server: TritonServer) -> None:
    """A region file no live stub names and no process maps (its server and stubs died
    long ago) is removed once older than the grace time; a fresh one (a server starting)
    and one a live process maps are kept; the session server's regions are untouched."""
    import mmap
    import uuid

    from sonic_exatrkx.server.cleanup import SHM_PREFIX

    def region(age_s: float) -> Path:
        path = SHM_DIR / f"{SHM_PREFIX}{uuid.uuid4()}"
        path.write_bytes(b"\0" * 4096)
        os.utime(path, (time.time() - age_s, time.time() - age_s))
        return path

    stale, fresh, mapped = region(3600), region(0), region(3600)
    live = {s.shm_region for s in stubs_of(triton_server.pid)}
    with mapped.open("r+b") as f, mmap.mmap(f.fileno(), 4096) as held:
        try:
            report = cleanup_orphans(grace_s=60)
            assert held[:1] == b"\0"
            removed = {p.name for p in report.removed}
            assert stale.name in removed and not stale.exists()
            assert fresh.exists() and mapped.exists()
            assert not removed & live
            assert all((SHM_DIR / name).exists() for name in live)
        finally:
            for path in (stale, fresh, mapped):
                path.unlink(missing_ok=True)
    np.testing.assert_array_equal(_infer_scale(triton_server.grpc_url),
                                  2 * np.arange(6, dtype=np.float32).reshape(2, 3))


def test_taken_port_given_explicitly_fails_clearly(triton_available: None, tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    repo = write_scale_repo(tmp_path / "repo", instances=1, ensemble=False)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        in_use = f"'127.0.0.1:{taken}' already in use"
        with caplog.at_level(logging.WARNING, logger="sonic_exatrkx.server.launcher"), \
                pytest.raises(TritonServerError, match=in_use) as err:
            TritonServer(repo, grpc_port=taken).start()
        assert err.value.port_conflict == taken
        assert "retrying" not in caplog.text  # the user's own port: retrying cannot help


def test_missing_repository_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="model repository"):
        TritonServer(tmp_path / "nope").start()
