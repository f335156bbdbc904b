"""The study commands: thin options over the library; `bench all` writes every study and
an index; wrong options are refused with one line."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from sonic_exatrkx.cli.main import app

runner = CliRunner()


@pytest.mark.triton
def test_bench_all_against_a_given_server(served_settings, tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(app, [
        "bench", "all", "--quick", "--study", "throughput", "--study", "service-options",
        "--models", str(served_settings["models"]), "--server", served_settings["server"],
        "--events", "2", "--trials", "1", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "== throughput ==" in result.output and "== service-options ==" in result.output
    index = (out / "summary.md").read_text()
    assert "## [throughput](throughput/summary.md)" in index
    assert "## [service-options](service-options/summary.md)" in index
    assert "![throughput.png](throughput/throughput.png)" in index
    payload = json.loads((out / "throughput" / "result.json").read_text())
    assert payload["settings"]["config"]["concurrency"] == [1, 2, 4, 8]  # the quick ones
    assert payload["settings"]["settings"]["events"] == 2  # the user's
    assert "best custom events/s" in payload["headline"]


@pytest.mark.triton
def test_one_study_command(served_settings, tmp_path):
    result = runner.invoke(app, [
        "bench", "batching", "--models", str(served_settings["models"]),
        "--server", served_settings["server"], "--events", "2", "--trials", "1",
        "--events-per-request", "1", "--events-per-request", "2", "--concurrency", "1",
        "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "| batching | in flight | events/request | events/s |" in result.output
    assert f"results in {tmp_path / 'batching'}" in result.output


@pytest.mark.parametrize(("args", "message"), [
    (["throughput", "--concurrency", "0"], "--concurrency"),
    (["throughput", "--path", "remote"], "--path"),
    (["latency", "--mode", "later"], "--mode"),
    (["service-options", "--service-option", "S9"], "--service-option"),
    (["all", "--study", "nope"], "--study"),
])
def test_wrong_choices_are_refused_before_any_work(args, message, tmp_path):
    result = runner.invoke(app, ["bench", *args, "-o", str(tmp_path / "out")])
    assert result.exit_code == 2 and message in result.output
    assert not (tmp_path / "out").exists()


def test_settings_errors_are_one_line(tmp_path):
    result = runner.invoke(app, ["bench", "throughput", "--models", str(tmp_path),
                                 "-o", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "no trained pipeline here (config.json missing)" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(app, ["bench", "throughput", "--server", "nohost",
                                 "-o", str(tmp_path / "out")])
    assert result.exit_code == 2 and "server must be host:port" in result.output
    result = runner.invoke(app, ["bench", "compare", str(tmp_path)])
    assert result.exit_code == 2 and "at least two" in result.output
