"""Fixtures shared across test folders: simulated events and the public reference data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.exatrkx_serving import exatrkx_models, exatrkx_server, sim_features, sonic_models

__all__ = ["exatrkx_models", "exatrkx_server", "sim_features", "sonic_models"]  # fixtures

REFERENCE_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "reference-data"


@pytest.fixture(scope="session")
def reference_data() -> Path:
    """`<repo>/../shared/reference-data`, read in place; skips (naming it) when absent, and
    fails instead when ``SONIC_EXATRKX_REQUIRE_REFERENCE=1`` (CI has it beside the clone,
    so a skip there would hide a moved or broken copy)."""
    if not REFERENCE_DATA.is_dir():
        message = f"public reference data not found at {REFERENCE_DATA}"
        if os.environ.get("SONIC_EXATRKX_REQUIRE_REFERENCE") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return REFERENCE_DATA


@pytest.fixture(scope="session")
def triton_available() -> None:
    """Skip, saying how to install it, when the Triton server or client is missing; fail
    instead when ``SONIC_EXATRKX_REQUIRE_TRITON=1`` (CI installs it, so a skip there would
    hide a broken install)."""
    from sonic_exatrkx.server import TritonEnvironmentError, find_tritonserver_dir

    missing = None
    try:
        find_tritonserver_dir()
        import tritonclient.grpc  # noqa: F401
        import tritonclient.http  # noqa: F401
    except (TritonEnvironmentError, ImportError) as exc:
        missing = f"Triton not usable here: {exc}"
    if missing is None:
        return
    if os.environ.get("SONIC_EXATRKX_REQUIRE_TRITON") == "1":
        pytest.fail(missing)
    pytest.skip(missing)


@pytest.fixture(scope="session")
def tls_certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate and key for 127.0.0.1 (openssl), for TLS tests; fails
    instead of skipping under ``SONIC_EXATRKX_REQUIRE_TRITON=1``."""
    import shutil
    import subprocess

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
    return d / "cert.pem", d / "key.pem"


@pytest.fixture(scope="session")
def sim_events(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four small HNL events (no pileup) in ACTS CSV with full truth."""
    from sonic_exatrkx.sim import SimulationConfig, write_events

    out = tmp_path_factory.mktemp("sim-hnl")
    write_events(SimulationConfig(sample="hnl", pileup=0, seed=7), out, 4, progress=False)
    return out
