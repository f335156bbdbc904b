"""The SONIC job configs run end to end against the test server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sonic_exatrkx.server import free_ports

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run(script, *args, timeout=240):
    return subprocess.run([sys.executable, str(EXAMPLES / script), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, check=False)


@pytest.mark.triton
def test_reco_triton_on_a_given_server(exatrkx_server, sim_events, sonic_models, tmp_path):
    metrics = tmp_path / "client.prom"
    result = run("reco_triton.py", "--input", sim_events, "--models", sonic_models,
                 "--server", exatrkx_server.grpc_url, "--output", tmp_path, "--events", 4,
                 "--in-flight", 4, "--metrics-file", metrics,
                 "--trace-file", tmp_path / "trace.csv", "--shared-memory")
    assert result.returncode == 0, result.stderr
    assert "4 events processed" in result.stdout
    assert "MB via shared memory" in result.stdout
    assert "triton:exatrkx: 4 requests, 0 retries" in result.stdout
    assert f"triton:exatrkx on {exatrkx_server.grpc_url}: 4 inferences; per request queue" \
        in result.stdout
    assert len(list((tmp_path / "tracks").glob("*-tracks.csv"))) == 4
    assert "sonic_client_requests_total" in metrics.read_text()
    trace = (tmp_path / "trace.csv").read_text().splitlines()
    assert trace[0] == "event,prep_ms,round_trip_ms,produce_ms"
    assert [int(row.split(",")[0]) for row in trace[1:]] == [0, 1, 2, 3]
    assert all(float(row.split(",")[2]) > 0 for row in trace[1:])


def test_reco_triton_without_a_server_exits_non_zero(sim_events, sonic_models, tmp_path):
    url = f"127.0.0.1:{free_ports('127.0.0.1', 1)[0]}"
    result = run("reco_triton.py", "--input", sim_events, "--models", sonic_models,
                 "--server", url, "--output", tmp_path, "--events", 2)
    assert result.returncode == 2
    assert f"no Triton server answers (grpc) - {url}" in result.stderr
    assert not list(tmp_path.glob("tracks/*.csv"))


@pytest.mark.triton
def test_service_options_table(exatrkx_server, sim_events, sonic_models):
    result = run("reco_service_options.py", "--input", sim_events, "--models", sonic_models,
                 "--server", exatrkx_server.grpc_url, "--events", 2, "--in-flight", 2)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [ln.split() for ln in result.stdout.splitlines() if ln[:2] in
             ("S0", "S1", "S2", "S3", "S4", "cu")]
    assert [ln[0] for ln in lines] == ["S0", "S1", "S2", "S3", "S4", "custom"]
    assert all(ln[-1] == "identical" for ln in lines)
    assert [float(ln[4]) for ln in lines] == [0.0, 3.0, 4.0, 5.0, 1.0, 1.0]
