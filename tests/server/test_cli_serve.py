"""`sonic-exatrkx serve`: --check, argument errors, and serving until SIGTERM / Ctrl-C."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from sonic_exatrkx.cli.serve import serve
from sonic_exatrkx.server import stubs_of
from sonic_exatrkx.server.cleanup import SHM_DIR, process_running
from sonic_exatrkx.server.foreground import default_models

from .conftest import sim_positions, write_scale_repo

runner = CliRunner()
# What main.py does: app.command("serve")(serve); a second command keeps the subcommand name.
app = typer.Typer()
app.command("serve")(serve)
app.command("other")(lambda: None)


@pytest.mark.triton
def test_check_reports_ok_here(triton_available: None) -> None:
    result = runner.invoke(app, ["serve", "--check"])
    assert result.exit_code == 0, result.output
    assert "FAIL" not in result.output
    for item in ("nvidia-pytriton", "tritonserver binary", "python backend",
                 f"python {sys.version_info.major}.{sys.version_info.minor} stub",
                 "libpython", "tritonclient"):
        assert re.search(rf"^OK\s+{re.escape(item)}", result.output, re.M), item
    assert "Triton serving is usable here." in result.output


def test_without_repository_exits_2_naming_the_option(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SONIC_EXATRKX_DATA", str(tmp_path))  # no shipped models there
    result = runner.invoke(app, ["serve"])
    assert result.exit_code == 2
    assert "needs a model repository" in result.output
    assert "--model-repository" in result.output
    assert "data/models is not there" in result.output


def test_default_models_are_the_shipped_ones(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SONIC_EXATRKX_DATA", str(tmp_path / "missing"))
    assert default_models() is None
    monkeypatch.setenv("SONIC_EXATRKX_DATA", str(tmp_path))
    (tmp_path / "models").mkdir()
    assert default_models() is None  # no config.json: not a trained pipeline
    (tmp_path / "models" / "config.json").write_text("{}")
    assert default_models() == tmp_path / "models"


def test_bad_generation_options_exit_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["serve", "--models", str(tmp_path),
                                 "--threads-per-instance", "0"])
    assert result.exit_code == 2
    assert "--threads-per-instance" in result.output


def test_repository_and_models_are_exclusive(tmp_path: Path) -> None:
    result = runner.invoke(app, ["serve", "--model-repository", str(tmp_path),
                                 "--models", str(tmp_path)])
    assert result.exit_code == 2
    assert "either --model-repository or --models" in result.output


def test_models_without_a_trained_pipeline_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["serve", "--models", str(tmp_path)])
    assert result.exit_code == 2
    assert f"cannot build the ExaTrkX repository from {tmp_path}" in result.output


@contextlib.contextmanager
def _serve_cli(repo: Path | list[str], out: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`serve` in a subprocess, output to ``out``; killed on exit if still running."""
    code = "import typer; from sonic_exatrkx.cli.serve import serve; typer.run(serve)"
    args = ["--model-repository", str(repo)] if isinstance(repo, Path) else repo
    with out.open("wb") as f:
        proc = subprocess.Popen([sys.executable, "-c", code, *args],
                                stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _assert_stopped_cleanly(out: Path, server_pid: int, stubs: list) -> None:
    """No server, stub or stub shared memory left after `serve` exits."""
    assert "Triton server stopped" in out.read_text()
    for pid in (server_pid, *(s.pid for s in stubs)):
        assert not process_running(pid)
    assert not any((SHM_DIR / s.shm_region).exists() for s in stubs)


def _wait_for(out: Path, proc: subprocess.Popen[bytes], text: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        content = out.read_text(errors="replace")
        if text in content:
            return content
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{text!r} not printed (exit {proc.poll()}):\n{content}")
        time.sleep(0.2)


@pytest.mark.triton
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_serve_until_signal_then_clean_exit(triton_available: None, tmp_path: Path,
                                            sig: signal.Signals) -> None:
    import tritonclient.http as th

    repo = write_scale_repo(tmp_path / "repo", instances=1, ensemble=False)
    out = tmp_path / "serve.out"
    with _serve_cli(repo, out) as proc:
        text = _wait_for(out, proc, "Stop with Ctrl-C or SIGTERM.", timeout=90)
        server_pid = int(re.search(r"pid (\d+)", text).group(1))
        http_url = re.search(r"HTTP\s+http://(\S+)", text).group(1)
        assert re.search(r"gRPC\s+127\.0\.0\.1:\d+", text)
        assert re.search(r"metrics\s+http://127\.0\.0\.1:\d+/metrics", text)
        stubs = stubs_of(server_pid)
        assert len(stubs) == 1
        x = np.ones((3, 3), np.float32)
        inp = th.InferInput("INPUT", [3, 3], "FP32")
        inp.set_data_from_numpy(x)
        with th.InferenceServerClient(http_url) as c:
            np.testing.assert_array_equal(c.infer("scale", [inp]).as_numpy("OUTPUT"), 2 * x)
        os.kill(proc.pid, sig)
        assert proc.wait(timeout=40) == 0, out.read_text()
    _assert_stopped_cleanly(out, server_pid, stubs)


@pytest.mark.triton
def test_serve_models_dir_until_sigterm(triton_available: None, exatrkx_models,
                                        tmp_path: Path) -> None:
    """``serve --models DIR``: generated repository with the options, labels equal to the
    in-process pipeline, and after SIGTERM no server, stub, shared memory or repository."""
    import tritonclient.grpc as tg

    model_dir, pipe = exatrkx_models
    out = tmp_path / "serve.out"
    with _serve_cli(["--models", str(model_dir), "--instances", "1",
                     "--threads-per-instance", "1", "--max-spacepoints", "1234"], out) as proc:
        text = _wait_for(out, proc, "Stop with Ctrl-C or SIGTERM.", timeout=150)
        repo = Path(re.search(r"generated ExaTrkX repository in (\S+):", text).group(1))
        assert repo.is_dir()
        server_pid = int(re.search(r"pid (\d+)", text).group(1))
        grpc_url = re.search(r"gRPC\s+(127\.0\.0\.1:\d+)", text).group(1)
        stubs = stubs_of(server_pid)
        assert len(stubs) == 6  # exatrkx + 5 stage models, one instance each
        feats = pipe.features(*sim_positions(0))
        inp = tg.InferInput("FEATURES", list(feats.shape), "FP32")
        inp.set_data_from_numpy(feats)
        with tg.InferenceServerClient(grpc_url) as c:
            np.testing.assert_array_equal(c.infer("exatrkx", [inp]).as_numpy("LABELS"),
                                          pipe.run(feats).labels)
            params = c.get_model_config("exatrkx", as_json=True)["config"]["parameters"]
        assert params["MAX_SPACEPOINTS"]["string_value"] == "1234"
        assert params["NUM_THREADS"]["string_value"] == "1"
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, out.read_text()
    _assert_stopped_cleanly(out, server_pid, stubs)
    assert not repo.exists()
