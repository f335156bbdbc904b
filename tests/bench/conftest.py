"""The bench studies run against the session's ExaTrkX server (``exatrkx_server``, see
:mod:`tests.exatrkx_serving`: the small untrained models, custom backend, its dynamically
batched twin, stage models and ensemble, one instance each), so that studies cost seconds."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image
import pytest


@pytest.fixture(scope="session")
def served_settings(exatrkx_server, sonic_models) -> dict:
    """BenchSettings fields of a tiny study on the session server."""
    return {"models": sonic_models, "events": 3, "trials": 2, "server": exatrkx_server.grpc_url}


def check_folder(folder: Path, pngs: list[str]) -> None:
    """The study folder holds its raw CSV, JSON, summary and plots that open headless."""
    for name in ("raw.csv", "result.json", "summary.md", *pngs):
        assert (folder / name).is_file(), name
    for name in pngs:
        image = matplotlib.image.imread(folder / name)
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100, name
