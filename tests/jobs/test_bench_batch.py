"""`bench batch` in a tiny configuration: every row is measured and sane (the figures
themselves are for the closing notes, not assertions: this machine is shared)."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from sonic_exatrkx.cli.main import app


@pytest.mark.triton
def test_bench_batch_tiny(triton_available):
    result = CliRunner().invoke(app, ["bench", "batch", "--events", "4", "--chunk-size", "2",
                                      "--delay-ms", "100"])
    assert result.exit_code == 0, result.output
    rows = {m[1].strip(): float(m[2]) for m in re.finditer(
        r"^(.+?)\s{2,}(-?[\d.]+) \S+$", result.output, re.M)}
    for what in ("job without commits", "job with per-event commits", "dask, 1 worker(s)",
                 "dask, 2 worker(s)", "1 server(s), 4 in flight", "2 server(s), 4 in flight"):
        assert rows[what] > 0, what
    assert rows["restart restoring every event"] > 0
    fast = rows["requests to the fast server (other +100 ms)"]
    slow = rows["requests to the slowed server"]
    assert fast + slow == 40 and fast > slow
