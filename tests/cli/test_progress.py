"""Long commands write no progress-bar frames into a redirected log: bars only on a terminal
(tqdm ``disable=None``), so a batch log holds lines, not carriage-return frames."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_captured(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "sonic_exatrkx", *args], cwd=ROOT,
                            capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr
    return result


def test_simulate_redirected_has_no_progress_frames(tmp_path):
    result = run_captured("simulate", "--events", "3", "-o", str(tmp_path))
    assert "\r" not in result.stdout and "\r" not in result.stderr
    assert "wrote 3 hnl events" in result.stdout
    assert len(list(tmp_path.glob("event*-spacepoint.csv"))) == 3


def test_simulate_progress_forced_on_still_works(tmp_path):
    """--progress asks for the bar even when redirected (a user's choice)."""
    result = run_captured("simulate", "--events", "2", "-o", str(tmp_path), "--progress")
    assert "simulate hnl" in result.stderr


def test_train_redirected_has_no_progress_frames(tmp_path):
    result = run_captured("train", "-o", str(tmp_path / "models"), "--events", "2",
                          "--pileup", "0", "--embedding-epochs", "1", "--filter-epochs",
                          "1", "--gnn-epochs", "1")
    assert "\r" not in result.stdout and "\r" not in result.stderr
    assert (tmp_path / "models" / "config.json").is_file()
    log = result.stdout + result.stderr  # lines instead of bars: one per stage here
    for stage in ("embedding", "filter", "gnn"):
        assert re.search(rf"{stage}\S*: epoch 1/1, mean loss \S+ \(\d+ s\)", log), log
