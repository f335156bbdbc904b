"""Setup errors a user meets: one line naming the file (and line or key), exit code 1,
no traceback; `--debug` shows the traceback for developers."""

from __future__ import annotations

import gzip
import shutil

import pytest
from typer.testing import CliRunner

from sonic_exatrkx.cli.main import app
from sonic_exatrkx.paths import data_dir, sample_events_dir

runner = CliRunner()


def models_copy(tmp_path):
    d = tmp_path / "models"
    shutil.copytree(data_dir() / "models", d)
    return d


def corrupt_pt(tmp_path):
    d = models_copy(tmp_path)
    (d / "gnn.pt").write_bytes(b"junk")
    return ["--models", str(d)], "gnn.pt: not the gnn model config.json was written with"


def bad_json(tmp_path):
    d = models_copy(tmp_path)
    (d / "config.json").write_text("{bad json")
    return ["--models", str(d)], "config.json line 1, column 2: not valid JSON"


def bad_value(tmp_path):
    import json

    d = models_copy(tmp_path)
    cfg = json.loads((d / "config.json").read_text())
    cfg["graph"]["max_k"] = 0
    (d / "config.json").write_text(json.dumps(cfg))
    return ["--models", str(d)], "max_k"


def not_root(tmp_path):
    (tmp_path / "x.root").write_text("hello")
    return ["-i", str(tmp_path / "x.root"), "--input-format", "root"], \
        "x.root: not a readable ROOT file"


def truncated_root(tmp_path):
    data = (sample_events_dir().parent / "spacepoints.root").read_bytes()
    (tmp_path / "t.root").write_bytes(data[: len(data) // 2])
    return ["-i", str(tmp_path / "t.root"), "--input-format", "root"], \
        "t.root: truncated or corrupt ROOT file"


def gzip_csv(tmp_path):
    events = tmp_path / "events"
    shutil.copytree(sample_events_dir(), events)
    path = events / "event000000000-spacepoint.csv"
    path.write_bytes(gzip.compress(path.read_bytes()))
    return ["-i", str(events)], "event000000000-spacepoint.csv: not a text CSV file"


@pytest.mark.parametrize("case", [corrupt_pt, bad_json, bad_value, not_root, truncated_root,
                                  gzip_csv], ids=lambda f: f.__name__)
def test_setup_error_is_one_line_and_exit_1(case, tmp_path):
    args, expected = case(tmp_path)
    result = runner.invoke(app, ["run", *args, "-o", str(tmp_path / "out")])
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and expected in lines[0], result.output
    assert "Traceback" not in result.output


def test_debug_shows_the_traceback(tmp_path, monkeypatch):
    monkeypatch.setenv("SONIC_EXATRKX_DEBUG", "0")  # restored after: --debug sets it
    args, _ = bad_json(tmp_path)
    result = runner.invoke(app, ["--debug", "run", *args, "-o", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert type(result.exception).__name__ == "ExaTrkXConfigError"  # raised, not one line
