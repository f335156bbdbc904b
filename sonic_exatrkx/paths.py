"""Where the shipped sample data and models live."""

from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path:
    """The project's `data/` folder (override with SONIC_EXATRKX_DATA).

    Sample events and models are not packaged into wheels (they are for the job
    examples and tests), so an editable install or a checkout finds them here.
    """
    override = os.environ.get("SONIC_EXATRKX_DATA")
    path = Path(override) if override else Path(__file__).resolve().parents[1] / "data"
    if not path.is_dir():
        raise FileNotFoundError(
            f"sample data folder {path} not found: run from a checkout of sonic-exatrkx "
            "(pip install -e .) or set SONIC_EXATRKX_DATA"
        )
    return path


def sample_events_dir() -> Path:
    """ACTS CSV sample events (two-measurement space points, full truth)."""
    return data_dir() / "sample" / "csv"
