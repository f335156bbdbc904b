"""Transport options (off by default): gRPC over TLS to a real server."""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest

from algorithms import CsvEventReader
from algorithms.exatrkx_track_finding import ExaTrkXTrackFinding, TrackFindingConfig
from sonic_exatrkx.server import TritonServer
from sonic_exatrkx.sonic import ServerUnavailableError, TritonOptions
from tests.sonic.conftest import run_job, write_repo


@pytest.fixture(scope="module")
def tls_server(triton_available, sonic_models, tmp_path_factory):
    if shutil.which("openssl") is None:
        message = "openssl not found (needed to make a test certificate)"
        if os.environ.get("SONIC_EXATRKX_REQUIRE_TRITON") == "1":  # CI: never hide it
            pytest.fail(message)
        pytest.skip(message)
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem"), "-days", "1",
                    "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True, timeout=60)
    repo = write_repo(d / "repo", sonic_models, ensemble=False)
    tls = ["--grpc-use-ssl=true", f"--grpc-server-cert={d / 'cert.pem'}",
           f"--grpc-server-key={d / 'key.pem'}"]
    with TritonServer(repo, env_threads=1, ready_timeout=180, exit_timeout=2,
                      extra_args=tls) as server:
        yield server, d / "cert.pem"


@pytest.mark.triton
def test_tls_gives_identical_tracks_and_plaintext_is_refused(tls_server, sim_events,
                                                             sonic_models):
    server, cert = tls_server
    local, _ = run_job(
        CsvEventReader(sim_events), ExaTrkXTrackFinding(TrackFindingConfig(models=sonic_models))
    )
    alg = ExaTrkXTrackFinding(
        TrackFindingConfig(
            models=sonic_models,
            inference="triton",
            servers=server.grpc_url,
            triton=TritonOptions(tls_root_certificates=cert),
        )
    )
    out, _ = run_job(CsvEventReader(sim_events), alg)
    for e, labels in local.labels.items():
        np.testing.assert_array_equal(out.labels[e], labels)
    plain = ExaTrkXTrackFinding(
        TrackFindingConfig(models=sonic_models, inference="triton", servers=server.grpc_url)
    )
    with pytest.raises(ServerUnavailableError, match="no Triton server answers"):
        run_job(CsvEventReader(sim_events), plain)
