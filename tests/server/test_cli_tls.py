"""TLS and auth from the command line alone: `serve --tls-cert/--tls-key` starts a gRPC
TLS server, `run --tls-root-cert --header` talks to it with the tracks of a local run,
and a plaintext client is refused. The certificate is made here with openssl."""

from __future__ import annotations

import os
import re
import signal

import pytest
from typer.testing import CliRunner

from sonic_exatrkx.cli.main import app

from .test_cli_serve import _serve_cli, _wait_for

runner = CliRunner()


def track_files(folder):
    return {p.name: p.read_bytes() for p in sorted((folder / "tracks").glob("*.csv"))}


@pytest.mark.triton
def test_tls_server_and_client_from_the_command_line(triton_available, tls_certificate,
                                                     tmp_path):
    cert, key = tls_certificate
    local = runner.invoke(app, ["run", "-o", str(tmp_path / "local"), "--no-performance"])
    assert local.exit_code == 0, local.output
    out = tmp_path / "serve.out"
    with _serve_cli(["--tls-cert", str(cert), "--tls-key", str(key)], out) as proc:
        text = _wait_for(out, proc, "Stop with Ctrl-C or SIGTERM.", timeout=150)
        url = re.search(r"gRPC\s+(127\.0\.0\.1:\d+)", text).group(1)
        served = runner.invoke(app, [
            "run", "-o", str(tmp_path / "tls"), "--no-performance", "--inference", "triton",
            "--server", url, "--tls-root-cert", str(cert), "--header", "x-job=test"])
        assert served.exit_code == 0, served.output
        assert "triton:exatrkx: 3 requests" in served.output
        assert track_files(tmp_path / "tls") == track_files(tmp_path / "local")
        plain = runner.invoke(app, ["run", "-o", str(tmp_path / "plain"), "--no-performance",
                                    "--inference", "triton", "--server", url])
        assert plain.exit_code == 1 and "no Triton server answers" in plain.output
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=60) == 0


def test_tls_needs_both_files_and_headers_need_key_value(tmp_path):
    pem = tmp_path / "cert.pem"
    pem.write_text("not checked here")
    result = runner.invoke(app, ["serve", "--tls-cert", str(pem)])
    assert result.exit_code == 2 and "both the certificate and its key" in result.output
    result = runner.invoke(app, ["run", "-o", str(tmp_path / "o"), "--header", "novalue"])
    assert result.exit_code == 2 and "expected KEY=VALUE, got 'novalue'" in result.output
