"""`sonic-exatrkx bench sonic` with tiny settings: the table, the ratios and the latency
test are printed, every run's labels match local, and the server it started is gone."""

from __future__ import annotations

import math
import re

import pytest
from typer.testing import CliRunner

from sonic_exatrkx.bench.sonic import goal_line, hidden_fraction
from sonic_exatrkx.cli.main import app
from tests.sonic.test_cli_run import tritonservers


def test_hidden_fraction():
    assert hidden_fraction(1.0, 2.1, 2.0) == pytest.approx(0.9)
    assert hidden_fraction(1.0, 3.0, 2.0) == pytest.approx(0.0)
    # noise never reads as more than all or less than none of the latency hidden
    assert hidden_fraction(1.0, 1.9, 2.0) == 1.0
    assert hidden_fraction(1.0, 3.5, 2.0) == 0.0
    assert math.isnan(hidden_fraction(0.0, 2.0, 2.0))


def test_goal_line_is_honest():
    assert goal_line(0.93) == "async hides 93 % of it (goal >= 80 %: met)"
    assert goal_line(0.796).endswith("80 % of it (goal >= 80 %: met)")
    assert goal_line(0.42) == "async hides 42 % of it (goal >= 80 %: NOT met)"


@pytest.mark.triton
def test_bench_sonic_tiny(triton_available, sonic_models):
    before = tritonservers()
    result = CliRunner().invoke(app, [
        "bench", "sonic", "--models", str(sonic_models), "--events", "2", "--pileup", "0",
        "--in-flight", "1", "--in-flight", "2", "--service-option", "local",
        "--service-option", "custom", "--service-option", "S4", "--service-option", "S1",
        "--delay-events", "4", "--delay-ms", "20",
        "--cores", "2"])
    out = result.output
    assert result.exit_code == 0, out
    assert "MISMATCH" not in out
    assert re.search(r"mu option\s+if=1\s+if=2", out)
    for option in ("local", "custom", "S4", "S1"):
        assert re.search(rf"^\s+0 {option}\s+[\d.]+\s+[\d.]+\s+identical$", out, re.M), option
    assert re.search(r"^\s+0 custom/local\s+[\d.]+\s+[\d.]+$", out, re.M)
    assert re.search(r"^\s+0 custom/ensemble\s+[\d.]+\s+[\d.]+$", out, re.M)
    assert "added round trip 20 ms" in out
    # the fraction is measured and reported as it is: a share in [0, 100] %, and the
    # verdict follows from that number (no timing assertion: the machine is shared)
    line = re.search(r"blocking calls would add ([\d.]+) s \(sync measured \+(-?[\d.]+) s\); "
                     r"async hides (\d+) % of it \(goal >= 80 %: (met|NOT met)\)", out)
    assert line, out
    assert float(line[1]) == pytest.approx(4 * 0.020)  # events x round trip
    hidden = int(line[3])
    assert 0 <= hidden <= 100
    assert line[4] == ("met" if hidden >= 80 else "NOT met")
    assert "Triton server stopped" in out and tritonservers() == before


def test_mismatches_name_the_events():
    import numpy as np

    from sonic_exatrkx.bench.sonic import mismatched_events

    ref = {0: np.array([0, 1]), 1: np.array([2, 2]), 2: np.array([3])}
    assert mismatched_events({0: np.array([0, 1]), 1: np.array([2, 3])}, ref) == [1, 2]
