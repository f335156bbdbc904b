"""`sonic-exatrkx run` on what users bring: TrackML events with truth (performance, truth
weights in the TrackML score), the public ACTS-Fatras event with NaN hits
(``--nonfinite``), ACTS output without space points (``--spacepoints-from``) and one event
file given as ``-i``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from sonic_exatrkx.cli.main import app
from sonic_exatrkx.exatrkx.metrics import trackml_score
from sonic_exatrkx.io import acts_csv
from sonic_exatrkx.paths import sample_events_dir

from .conftest import FATRAS

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, ["run", *args])


def tracks(folder: Path, event: int) -> np.ndarray:
    return acts_csv.read_tracks_csv(acts_csv.event_path(folder / "tracks", event, "tracks"))


def test_fatras_trackml_event_nan_hits_error_or_dropped_and_counted(ref: Path, tmp_path):
    fatras = ref / FATRAS
    refused = run("--input-format", "trackml", "-i", str(fatras), "-o", str(tmp_path / "a"))
    assert refused.exit_code == 1
    assert ("event000000000-hits.csv line 96, column 'x': non-finite value nan, expected a "
            "finite float32 (--nonfinite drop goes on without such rows)") in refused.output
    # One event file as -i, and the drop asked for: the performance is measured too.
    dropped = run("--input-format", "trackml", "-i", str(fatras / "event000000000-hits.csv"),
                  "-o", str(tmp_path / "b"), "--nonfinite", "drop")
    assert dropped.exit_code == 0, dropped.output
    assert "input (1 events read): 75 hits with non-finite positions dropped " \
           "(--nonfinite drop)" in dropped.output
    summary = json.loads((tmp_path / "b" / "performance.json").read_text())
    assert (summary["events"], summary["spacepoints"]) == (1, 555)
    assert summary["trackml_score_weights"] == "uniform (1 per hit of a particle)"
    assert len(tracks(tmp_path / "b", 0)) == 555
    assert run("--input-format", "trackml", "-i", str(fatras), "-o", str(tmp_path / "c"),
               "--nonfinite", "keep").exit_code == 2  # typer's own refusal of a choice


def _trackml_from_acts(src: Path, dst: Path, event: int, seed: int) -> np.ndarray:
    """The ACTS sample event as a Kaggle TrackML event (hits, truth with weights,
    particles); returns the weight per hit (0 for noise, as Kaggle's)."""
    tables = acts_csv.read_event(src, event, ["spacepoint", "hits", "measurement-simhit-map",
                                              "particles"])
    sp, particles = tables["spacepoint"], tables["particles"]
    pids = acts_csv.attach_truth(sp, tables["measurement-simhit-map"], tables["hits"])
    n = len(sp)
    weight = np.random.default_rng(seed).exponential(size=n).astype(np.float32)
    weight[pids == 0] = 0
    weight /= weight.sum()
    dst.mkdir(parents=True, exist_ok=True)
    hit_id = np.arange(1, n + 1)
    pd.DataFrame({"hit_id": hit_id, "x": sp["x"], "y": sp["y"], "z": sp["z"],
                  "volume_id": 8, "layer_id": 2, "module_id": 1}).to_csv(
        dst / f"event{event:09d}-hits.csv", index=False)
    pd.DataFrame({"hit_id": hit_id, "particle_id": pids, "tx": sp["x"], "ty": sp["y"],
                  "tz": sp["z"], "tpx": 0.0, "tpy": 0.0, "tpz": 0.0, "weight": weight}).to_csv(
        dst / f"event{event:09d}-truth.csv", index=False)
    trackml_particles = particles[["particle_id", "vx", "vy", "vz", "px", "py", "pz"]].copy()
    trackml_particles["q"] = particles["q"].astype(int)
    trackml_particles.to_csv(dst / f"event{event:09d}-particles.csv", index=False)
    return weight


def test_trackml_with_truth_gets_the_performance_and_a_weighted_score(tmp_path):
    weights = _trackml_from_acts(sample_events_dir(), tmp_path / "trackml", 1, seed=3)
    result = run("--input-format", "trackml", "-i", str(tmp_path / "trackml"), "-o",
                 str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert "TrackML score:" in result.output and "edges per stage" in result.output
    summary = json.loads((tmp_path / "out" / "performance.json").read_text())
    assert summary["trackml_score_weights"] == "truth weight column"
    truth = pd.read_csv(tmp_path / "trackml" / "event000000001-truth.csv")
    labels = tracks(tmp_path / "out", 1)
    pids = truth["particle_id"].to_numpy(np.uint64)
    expected = trackml_score(labels, pids, weights)
    assert summary["trackml_score"] == pytest.approx(expected, rel=1e-6)
    assert summary["trackml_score_per_event_mean"] == pytest.approx(expected, rel=1e-6)
    assert expected != pytest.approx(trackml_score(labels, pids), rel=1e-3)  # weights count
    assert summary["all_pt"]["n_particles"] > 0  # the particles file gave pT and eta
    assert summary["efficiency_vs_pt"]["n_particles"] != [0] * len(
        summary["efficiency_vs_pt"]["n_particles"])


def test_acts_output_without_spacepoints(tmp_path):
    events = tmp_path / "events"
    shutil.copytree(sample_events_dir(), events)
    for path in events.glob("event*-spacepoint.csv"):
        path.unlink()
    refused = run("-i", str(events), "-o", str(tmp_path / "a"))
    assert refused.exit_code == 1
    assert "but no space points: --spacepoints-from measurements builds them" in refused.output
    built = run("-i", str(events / "event000000002-measurements.csv"), "-o",
                str(tmp_path / "b"), "--spacepoints-from", "measurements")
    assert built.exit_code == 0, built.output
    tables = acts_csv.read_event(events, 2, ["measurements", "measurement-simhit-map"])
    placed = tables["measurements"]["measurement_id"].isin(
        tables["measurement-simhit-map"]["measurement_id"])
    assert len(tracks(tmp_path / "b", 2)) == int(placed.sum())
    assert sorted(p.name for p in (tmp_path / "b" / "tracks").iterdir()) == [
        "event000000002-tracks.csv"]
    assert f"{int((~placed).sum())} measurements without a simulated hit left out" \
        in built.output
    summary = json.loads((tmp_path / "b" / "performance.json").read_text())
    assert summary["spacepoints"] == int(placed.sum())
    assert summary["all_pt"]["efficiency"] > 0.5  # true positions: a sane physics answer
    from_hits = run("-i", str(events), "-o", str(tmp_path / "c"), "--spacepoints-from",
                    "hits", "-n", "1", "--no-performance")
    assert from_hits.exit_code == 0, from_hits.output
    hits = acts_csv.read_hits(acts_csv.event_path(events, 0, "hits"))
    assert len(tracks(tmp_path / "c", 0)) == len(hits)
    wrong = run("--input-format", "trackml", "-i", str(events), "-o", str(tmp_path / "d"),
                "--spacepoints-from", "hits")
    assert wrong.exit_code == 1 and "builds space points from ACTS CSV files" in wrong.output


def test_one_event_file_or_a_root_file_as_input(tmp_path):
    one = run("-i", str(acts_csv.event_path(sample_events_dir(), 1, "spacepoint")), "-o",
              str(tmp_path / "a"))
    assert one.exit_code == 0, one.output
    assert "1 events processed" in one.output
    assert sorted(p.name for p in (tmp_path / "a" / "tracks").iterdir()) == [
        "event000000001-tracks.csv"]
    assert json.loads((tmp_path / "a" / "performance.json").read_text())["events"] == 1
    whole = run("-o", str(tmp_path / "b"), "-n", "2")
    assert whole.exit_code == 0
    assert tracks(tmp_path / "a", 1).tolist() == tracks(tmp_path / "b", 1).tolist()
    root = sample_events_dir().parent / "spacepoints.root"
    not_csv = run("-i", str(root), "-o", str(tmp_path / "c"))
    assert not_csv.exit_code == 1 and "(a ROOT file: --input-format root)" in not_csv.output
    folder = run("--input-format", "root", "-i", str(sample_events_dir()), "-o",
                 str(tmp_path / "d"))
    assert folder.exit_code == 1 and "is a folder; ROOT input is one .root file" \
        in folder.output
