"""Every job config in examples/ runs as a script (`--help`), and the I/O one end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sonic_exatrkx.io import acts_root

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.py"))


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_example_has_help(script):
    result = subprocess.run([sys.executable, str(script), "--help"], capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert "--input" in result.stdout
    assert "--events" in result.stdout


def test_convert_example_runs_on_the_sample(tmp_path):
    script = next(p for p in EXAMPLES if p.name == "convert_events.py")
    result = subprocess.run([sys.executable, str(script), "--output", str(tmp_path),
                             "--with-truth", "--events", "2"], capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    assert "2 events processed" in result.stdout
    assert sorted(acts_root.read_spacepoints_root(tmp_path / "spacepoints.root")) == [0, 1]
    assert len(list((tmp_path / "csv").glob("event000000001-*.csv"))) == 5
