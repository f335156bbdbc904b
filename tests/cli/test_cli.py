"""The `sonic-exatrkx` command line, run in-process on the shipped sample data."""

from __future__ import annotations

import csv

import pytest
from typer.testing import CliRunner

from sonic_exatrkx.cli.main import app
from sonic_exatrkx.io import acts_root
from sonic_exatrkx.paths import data_dir

runner = CliRunner()


def test_run_default_job_on_shipped_sample(tmp_path):
    result = runner.invoke(app, ["run", "--output", str(tmp_path), "--threads", "2"])
    assert result.exit_code == 0, result.output
    assert "3 events processed, 0 skipped, 0 failed" in result.output
    events = acts_root.read_spacepoints_root(tmp_path / "spacepoints.root")
    assert sorted(events) == [0, 1, 2]
    with (tmp_path / "timing.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert {r["identifier"] for r in rows} == {"CsvEventReader", "RootSpacePointWriter"}


@pytest.mark.parametrize(
    ("args", "expected_columns"),
    [
        (["--input", "sample/csv-single"], ["measurement_id", "x", "y", "z", "var_r", "var_z"]),
        (["--input", "sample/spacepoints.root", "--input-format", "root"], None),
    ],
)
def test_run_reads_every_shipped_variant(tmp_path, args, expected_columns):
    args = [args[0], str(data_dir() / args[1]), *args[2:]]
    result = runner.invoke(app, ["run", *args, "--output", str(tmp_path), "--csv-output",
                                 "--events", "2", "--skip", "1"])
    assert result.exit_code == 0, result.output
    events = acts_root.read_spacepoints_root(tmp_path / "spacepoints.root")
    assert sorted(events) == [1, 2]
    if expected_columns:
        assert list(events[1].columns) == expected_columns
    assert sorted(p.name for p in (tmp_path / "csv").iterdir()) == [
        "event000000001-spacepoint.csv", "event000000002-spacepoint.csv"]


def test_run_on_a_wrong_directory_fails_clearly(tmp_path):
    result = runner.invoke(app, ["run", "--input", str(tmp_path / "missing"), "--output",
                                 str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "missing" in result.output
    assert "error:" in result.output


def test_run_with_bad_event_fails_or_skips(tmp_path):
    import shutil

    src = data_dir() / "sample" / "csv"
    shutil.copytree(src, tmp_path / "in")
    bad = tmp_path / "in" / "event000000001-spacepoint.csv"
    bad.write_text(bad.read_text().replace("measurement_id_1", "measurment_id_1", 1))
    result = runner.invoke(app, ["run", "-i", str(tmp_path / "in"), "-o", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert "failed on event 1" in result.output
    assert "measurement_id_1" in result.output  # names the missing column
    result = runner.invoke(app, ["run", "-i", str(tmp_path / "in"), "-o", str(tmp_path / "o2"),
                                 "--skip-bad-events"])
    assert result.exit_code == 0, result.output
    assert "2 events processed, 1 skipped" in result.output


@pytest.mark.parametrize(("command", "issue"), [("train", 5), ("serve", 6)])
def test_commands_of_later_issues_say_so(command, issue):
    result = runner.invoke(app, [command])
    assert result.exit_code == 2
    assert f"issue #{issue}" in result.output
