"""Shared fixtures of the I/O tests: the public reference files and small fixtures.

Reference files are read in place from ``<repo>/../shared/reference-data`` (never
copied into the project); tests that need them skip, naming the path, when absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REFERENCE = Path(__file__).resolve().parents[2].parent / "shared" / "reference-data"
CTD_SPACEPOINTS = "exatrkx-cpp-ctd2022/triton_example/data/event000000100-spacepoint.csv"
SINGLE_TRACKS = "traccc/single_tracks"
MOCK_DATA = "traccc/mock_data"
FATRAS = "phoenix/fatras"
TRACKML_PARTICLES_CSV = "phoenix/TrackML/event000001000-particles.csv"


@pytest.fixture(scope="session")
def ref() -> Path:
    """Root of the public reference data; skips the test (naming the path) when it is not
    there, and fails instead with ``SONIC_EXATRKX_REQUIRE_REFERENCE=1`` (CI)."""
    if not REFERENCE.is_dir():
        message = f"reference data not found at {REFERENCE}"
        if os.environ.get("SONIC_EXATRKX_REQUIRE_REFERENCE") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return REFERENCE


@pytest.fixture()
def two_measurement_csv(tmp_path: Path) -> Path:
    """A small current-ACTS space point file: strip (two ids), pixel (empty second id),
    geometry ids above 2**53, a time column and awkward float32 values."""
    text = (
        "measurement_id_1,measurement_id_2,geometry_id_1,geometry_id_2,x,y,z,t,var_r,var_z\n"
        "0,,1224979236083738112,,-37.2052498,-23.0152416,-1497.5,0,0.000833333354,0\n"
        "1,2,1224979236083738113,1224979236083738114,31.5048428,5.16000509,-1502.5,"
        "2.78843093,1e-06,0.0025000001769512892\n"
        "3,4,18446744073709551615,9007199254740993,-92.799400329589844,54.74163818359375,"
        "1.40129846e-45,-0,3.40282347e+38,0.1\n"
        "5,,360288038909116416,,0.1,0.2,0.3,1.5,0.5,0.25\n"
    )
    path = tmp_path / "event000000007-spacepoint.csv"
    path.write_text(text)
    return path


def float32_of(token: str) -> np.float32:
    """Independent reference parse of one decimal token (Python float, then float32)."""
    return np.float32(float(token))


def frame_from_text(text: str) -> pd.DataFrame:
    """Raw strings of a CSV text, for comparing files without our reader."""
    import io

    return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
