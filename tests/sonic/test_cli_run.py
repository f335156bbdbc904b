"""`sonic-exatrkx run --inference triton`: the one switch on the main command; with no
--server it starts a local server (thread budget printed) and stops it at the end."""

from __future__ import annotations

import re
import socket

import psutil
import pytest
from typer.testing import CliRunner

from sonic_exatrkx.cli.main import app
from sonic_exatrkx.paths import sample_events_dir

runner = CliRunner()


def track_files(folder):
    return {p.name: p.read_text() for p in sorted((folder / "tracks").glob("*.csv"))}


def tritonservers() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)
            if p.name().startswith("tritonserver")}


@pytest.fixture(scope="module")
def local_run(sonic_models, tmp_path_factory):
    out = tmp_path_factory.mktemp("run-local")
    result = runner.invoke(app, ["run", "--models", str(sonic_models), "--output", str(out),
                                 "--threads", "2"])
    assert result.exit_code == 0, result.output
    assert "triton" not in result.output  # local: unchanged, no client lines
    return out


@pytest.mark.triton
def test_run_triton_starts_and_stops_its_own_server(triton_available, sonic_models, local_run,
                                                    tmp_path):
    before = tritonservers()
    result = runner.invoke(app, ["run", "--inference", "triton", "--models", str(sonic_models),
                                 "--output", str(tmp_path), "--cores", "2"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "thread budget (custom): 2 cores -> job 0 reserved, 1 event-loop thread(s)" in out
    assert "server 2 instance(s) x 1 thread(s) per model; 4 events in flight" in out
    assert "3 events processed, 0 skipped, 0 failed" in out
    assert "triton:exatrkx: 3 requests, 0 retries" in out
    assert "trace: 3 events" in out and "computing in Triton (1 model(s)" in out
    assert "efficiency" in out  # performance from the served labels
    files = track_files(tmp_path)
    assert len(files) == 3 and files == track_files(local_run)
    url = re.search(r"Triton server ready at (127\.0\.0\.1):(\d+)", out)
    assert url and "Triton server stopped" in out
    with pytest.raises(OSError), socket.create_connection((url[1], int(url[2])), timeout=2):
        pass
    assert tritonservers() == before


@pytest.mark.triton
def test_run_on_a_given_server_with_shared_memory_and_s4(exatrkx_server, sonic_models,
                                                         local_run, tmp_path):
    result = runner.invoke(app, ["run", "--inference", "triton", "--server",
                                 exatrkx_server.grpc_url, "--models", str(sonic_models),
                                 "--output", str(tmp_path), "--service-option", "S4",
                                 "--mode", "async", "--in-flight", "3", "--shared-memory",
                                 "--allowed-tries", "2", "--timeout", "60"])
    assert result.exit_code == 0, result.output
    assert "thread budget" not in result.output  # not our server: nothing to split
    assert "triton:exatrkx_ensemble: 3 requests" in result.output
    assert "MB via shared memory" in result.output
    assert track_files(tmp_path) == track_files(local_run)


def test_run_auto_without_server_runs_locally(sonic_models, local_run, tmp_path):
    result = runner.invoke(app, ["run", "--inference", "auto", "--models", str(sonic_models),
                                 "--output", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "running ExaTrkX in this process" in result.output
    assert track_files(tmp_path) == track_files(local_run)


def test_run_rejects_unknown_inference(tmp_path):
    result = runner.invoke(app, ["run", "--inference", "remote", "--output", str(tmp_path)])
    assert result.exit_code == 2  # typer's own message, before any work
    text = " ".join(result.output.replace("│", " ").split())  # unwrap rich's box
    assert "Invalid value for '--inference'" in text
    assert "'remote' is not one of 'local', 'triton', 'auto'" in text
    assert sample_events_dir().is_dir()


def test_continue_on_error_exits_3_with_the_failed_events_listed(tmp_path):
    import shutil

    events = tmp_path / "events"
    shutil.copytree(sample_events_dir(), events)
    bad = events / "event000000001-spacepoint.csv"
    lines = bad.read_text().splitlines()
    lines[2] = lines[2].replace(lines[2].split(",")[4], "abc", 1)  # x of one space point
    bad.write_text("\n".join(lines) + "\n")
    result = runner.invoke(app, ["run", "-i", str(events), "-o", str(tmp_path / "out"),
                                 "--continue-on-error"])
    assert result.exit_code == 3, result.output
    assert "1 events failed (listed in" in result.output and "exit code 3" in result.output
    rows = (tmp_path / "out" / "failed_events.csv").read_text().splitlines()
    assert rows[0] == "event,algorithm,error" and len(rows) == 2
    assert rows[1].startswith("1,CsvEventReader,")
    assert len(list((tmp_path / "out" / "tracks").glob("*.csv"))) == 2
