"""Transport options (off by default): gRPC over TLS to a real server."""

from __future__ import annotations

import numpy as np
import pytest

from algorithms import CsvEventReader
from algorithms.exatrkx_track_finding import ExaTrkXTrackFinding, TrackFindingConfig
from sonic_exatrkx.server import TritonServer
from sonic_exatrkx.sonic import ServerUnavailableError, TritonOptions
from tests.sonic.conftest import run_job, write_repo


@pytest.fixture(scope="module")
def tls_server(triton_available, sonic_models, tls_certificate, tmp_path_factory):
    cert, key = tls_certificate
    repo = write_repo(tmp_path_factory.mktemp("tls-repo"), sonic_models, ensemble=False)
    tls = ["--grpc-use-ssl=true", f"--grpc-server-cert={cert}", f"--grpc-server-key={key}"]
    with TritonServer(repo, env_threads=1, ready_timeout=180, exit_timeout=2,
                      extra_args=tls) as server:
        yield server, cert


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
