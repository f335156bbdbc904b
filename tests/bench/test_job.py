"""`bench job` in a tiny configuration: both sides run on the same events and the files
hold sane values (no timing is asserted)."""

from __future__ import annotations

import csv
import json

from typer.testing import CliRunner

from sonic_exatrkx.cli.main import app


def test_bench_job_tiny_run_writes_sane_values(tmp_path):
    out = tmp_path / "study"
    result = CliRunner().invoke(app, ["bench", "job", "--events", "3", "--repeats", "2",
                                      "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "job / pipeline = " in result.output and "| job-inline |" in result.output
    assert "| job-threads |" in result.output
    rows = list(csv.DictReader((out / "job.csv").read_text().splitlines()))
    assert [(r["mode"], r["trial"]) for r in rows] == [
        (m, str(t)) for t in range(2)
        for m in ("pipeline", "job", "job-threads", "job-inline")]
    assert all(r["events"] == "3" and float(r["events_per_s"]) > 0
               and float(r["cpu_ms_per_event"]) > 0 for r in rows)
    report = json.loads((out / "job.json").read_text())
    assert report["study"] == "job" and report["goal"] == 0.85
    assert report["settings"]["events"] == 3 and report["machine"]["cores"] >= 1
    assert report["spacepoints_per_event"] > 100
    modes = report["modes"]
    assert report["ratio"] == modes["job"]["ratio_to_pipeline"] > 0
    assert modes["job"]["ratio_to_pipeline"] == modes["job"]["events_per_s"] / \
        modes["pipeline"]["events_per_s"]
    for m in modes.values():
        assert m["min_events_per_s"] <= m["events_per_s"] <= m["max_events_per_s"]


def test_bench_job_without_truth_runs_the_data_job(tmp_path):
    out = tmp_path / "study"
    result = CliRunner().invoke(app, ["bench", "job", "--events", "2", "--repeats", "1",
                                      "--no-performance", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "job without truth" in result.output
    report = json.loads((out / "job.json").read_text())
    assert report["settings"]["performance"] is False
    assert report["modes"]["job"]["events_per_s"] > 0
