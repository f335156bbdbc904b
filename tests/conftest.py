"""Fixtures shared across test folders: simulated events and the public reference data."""

from __future__ import annotations

from pathlib import Path

import pytest

REFERENCE_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "reference-data"


@pytest.fixture(scope="session")
def reference_data() -> Path:
    """`<repo>/../shared/reference-data`, read in place; skips (naming it) when absent."""
    if not REFERENCE_DATA.is_dir():
        pytest.skip(f"public reference data not found at {REFERENCE_DATA}")
    return REFERENCE_DATA


@pytest.fixture(scope="session")
def sim_events(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four small HNL events (no pileup) in ACTS CSV with full truth."""
    from sonic_exatrkx.sim import SimulationConfig, write_events

    out = tmp_path_factory.mktemp("sim-hnl")
    write_events(SimulationConfig(sample="hnl", pileup=0, seed=7), out, 4, progress=False)
    return out
