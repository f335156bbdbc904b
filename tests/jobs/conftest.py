"""Events for the batch-job tests: enough that a job can be killed in the middle."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def batch_events(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 small HNL events (no pileup) in ACTS CSV with truth."""
    from sonic_exatrkx.sim import SimulationConfig, write_events

    out = tmp_path_factory.mktemp("batch-hnl")
    write_events(SimulationConfig(sample="hnl", pileup=0, seed=11), out, 24, progress=False)
    return out


@pytest.fixture(scope="session")
def unsharded(batch_events: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference: one uninterrupted, unsharded run over the batch events."""
    from sonic_exatrkx.jobs import RecoJobConfig, run_reco_job

    out = tmp_path_factory.mktemp("unsharded")
    result = run_reco_job(RecoJobConfig(input=batch_events, output=out, threads=2),
                          say=lambda _m: None)
    assert result.summary.processed == 24
    return out
