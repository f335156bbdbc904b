"""Shards and merge: N shards together are the unsharded job, merged byte for byte; a
merge that would lose or double an event, or mix jobs, says so and writes nothing."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from sonic_exatrkx.cli.main import app
from sonic_exatrkx.jobs import Manifest
from tests.jobs.outputs import assert_same_outputs

runner = CliRunner()


@pytest.fixture(scope="module")
def shards(batch_events, tmp_path_factory):
    root = tmp_path_factory.mktemp("shards")
    folders = []
    for i in range(3):
        out = root / f"shard{i}"
        result = runner.invoke(app, ["run", "-i", str(batch_events), "-o", str(out),
                                     "--shard", f"{i}/3", "--threads", "2"])
        assert result.exit_code == 0, result.output
        folders.append(out)
    return folders


def test_three_shards_merge_into_the_unsharded_run(shards, unsharded, tmp_path):
    planned = [Manifest.read(f).planned for f in shards]
    assert sum(planned, []) == list(range(24)) and [len(p) for p in planned] == [8, 8, 8]
    result = runner.invoke(app, ["merge", *map(str, shards), "-o", str(tmp_path / "merged")])
    assert result.exit_code == 0, result.output
    assert "merged 3 folders (24 events)" in result.output
    assert_same_outputs(unsharded, tmp_path / "merged")
    merged = Manifest.read(tmp_path / "merged")
    assert merged.complete and merged.done == list(range(24))
    reference = Manifest.read(unsharded).outputs
    assert len(merged.outputs) == len(reference) == 24 + 3
    for name, digest in merged.outputs.items():  # ROOT files carry a time and a UUID
        assert name == "tracks.root" or digest == reference[name], name
    timing = (tmp_path / "merged" / "timing.csv").read_text()
    assert "ExaTrkXTrackFinding" in timing


def test_manifest_records_the_job(shards):
    m = json.loads((shards[1] / "manifest.json").read_text())
    assert m["shard"] == "1/3" and m["complete"] and m["done"] == list(range(8, 16))
    assert m["settings"]["performance"] is True and len(m["settings"]["models"]) == 64
    assert {"sonic-exatrkx", "torch", "numpy", "python"} <= set(m["software"])
    assert all(len(v) == 64 for v in m["outputs"].values())
    assert "tracks/event000000008-tracks.csv" in m["outputs"]


def test_merge_names_missing_and_doubled_events(shards, tmp_path):
    copy = tmp_path / "shard0-again"
    shutil.copytree(shards[0], copy)
    result = runner.invoke(app, ["merge", str(shards[0]), str(copy), str(shards[1]),
                                 "-o", str(tmp_path / "merged")])
    assert result.exit_code == 1
    message = result.output
    assert "events in more than one folder: 0 (" in message and "shard0-again" in message
    assert "missing events: 16, 17, 18, 19, 20, 21, 22, 23 (a shard not given?)" in message
    assert not (tmp_path / "merged").exists()


def test_merge_refuses_shards_of_different_jobs(shards, batch_events, tmp_path):
    other = tmp_path / "other"
    result = runner.invoke(app, ["run", "-i", str(batch_events), "-o", str(other),
                                 "--shard", "2/3", "--no-performance"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["merge", str(shards[0]), str(shards[1]), str(other),
                                 "-o", str(tmp_path / "merged")])
    assert result.exit_code == 1
    assert "settings differ" in result.output and "performance: True -> False" in result.output


def test_merge_refuses_a_folder_without_manifest(tmp_path):
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, ["merge", str(tmp_path / "empty"), "-o", str(tmp_path / "m")])
    assert result.exit_code == 1 and "no manifest.json" in result.output
