"""The `sonic-exatrkx` command line, run in-process on the shipped sample data."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from sonic_exatrkx.cli.main import app
from sonic_exatrkx.io import acts_csv, acts_root
from sonic_exatrkx.paths import data_dir, sample_events_dir

runner = CliRunner()


def test_run_default_job_finds_tracks_on_shipped_sample(tmp_path):
    result = runner.invoke(app, ["run", "--output", str(tmp_path), "--threads", "2"])
    assert result.exit_code == 0, result.output
    assert "3 events processed, 0 skipped, 0 failed" in result.output
    assert "efficiency" in result.output and "fake rate" in result.output
    tracks = acts_root.read_tracks_root(tmp_path / "tracks.root")
    assert sorted(tracks) == [0, 1, 2]
    for event, labels in tracks.items():
        sp = acts_csv.read_spacepoints(acts_csv.event_path(sample_events_dir(), event,
                                                           "spacepoint"))
        assert labels.shape == (len(sp),)
        csv_labels = acts_csv.read_tracks_csv(acts_csv.event_path(tmp_path / "tracks", event,
                                                                  "tracks"))
        np.testing.assert_array_equal(csv_labels, labels)
    summary = json.loads((tmp_path / "performance.json").read_text())
    assert summary["events"] == 3
    assert summary["pt>1"]["efficiency"] > 0.5  # the shipped models find most tracks
    with (tmp_path / "timing.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert {"CsvEventReader", "ExaTrkXTrackFinding", "TrackFindingPerformance"} <= {
        r["identifier"] for r in rows}


def test_run_convert_only(tmp_path):
    result = runner.invoke(app, ["run", "--convert-only", "--output", str(tmp_path)])
    assert result.exit_code == 0, result.output
    events = acts_root.read_spacepoints_root(tmp_path / "spacepoints.root")
    assert sorted(events) == [0, 1, 2]


@pytest.mark.parametrize(
    ("args", "expected_columns"),
    [
        (["--input", "sample/csv-single"], ["measurement_id", "x", "y", "z", "var_r", "var_z"]),
        (["--input", "sample/spacepoints.root", "--input-format", "root"], None),
    ],
)
def test_run_reads_every_shipped_variant(tmp_path, args, expected_columns):
    args = [args[0], str(data_dir() / args[1]), *args[2:]]
    result = runner.invoke(app, ["run", "--convert-only", *args, "--output", str(tmp_path),
                                 "--csv-output",
                                 "--events", "2", "--skip", "1"])
    assert result.exit_code == 0, result.output
    events = acts_root.read_spacepoints_root(tmp_path / "spacepoints.root")
    assert sorted(events) == [1, 2]
    if expected_columns:
        assert list(events[1].columns) == expected_columns
    assert sorted(p.name for p in (tmp_path / "csv").iterdir()) == [
        "event000000001-spacepoint.csv", "event000000002-spacepoint.csv"]


def test_run_on_a_wrong_directory_fails_clearly(tmp_path):
    result = runner.invoke(app, ["run", "--convert-only", "--input", str(tmp_path / "missing"),
                                 "--output", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "missing" in result.output
    assert "error:" in result.output


def test_run_with_bad_event_fails_or_skips(tmp_path):
    import shutil

    src = data_dir() / "sample" / "csv"
    shutil.copytree(src, tmp_path / "in")
    bad = tmp_path / "in" / "event000000001-spacepoint.csv"
    bad.write_text(bad.read_text().replace("measurement_id_1", "measurment_id_1", 1))
    result = runner.invoke(app, ["run", "--convert-only", "-i", str(tmp_path / "in"), "-o",
                                 str(tmp_path / "o")])
    assert result.exit_code == 1
    assert "failed on event 1" in result.output
    assert "measurement_id_1" in result.output  # names the missing column
    result = runner.invoke(app, ["run", "--convert-only", "-i", str(tmp_path / "in"), "-o",
                                 str(tmp_path / "o2"), "--skip-bad-events"])
    assert result.exit_code == 0, result.output
    assert "2 events processed, 1 skipped" in result.output


def test_train_writes_a_loadable_model_set(tmp_path):
    from sonic_exatrkx.exatrkx import Pipeline

    out = tmp_path / "models"
    result = runner.invoke(app, ["train", "--output", str(out), "--events", "2",
                                 "--pileup", "0", "--pileup", "5", "--pileup-events", "1",
                                 "--sectors", "4", "--pt-min", "0.5",
                                 "--embedding-epochs", "1", "--filter-epochs", "1",
                                 "--gnn-epochs", "1", "--pipeline-threads", "1",
                                 "--neighbour-budget", "123456", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert {"embedding.pt", "filter.pt", "gnn.pt", "config.json", "training.json",
            "loss_curves.png"} <= {p.name for p in out.iterdir()}
    summary = json.loads((out / "training.json").read_text())
    assert summary["events_mu0"] == 2 and summary["epochs"] == [1, 1, 1]
    assert summary["sectors_per_pileup_event"] == 4 and summary["pt_min"] == 0.5
    assert summary["kernels"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert summary["kernels"]["torch"] == torch.__version__
    # 2 events at mu=0 plus one mu=5 event cut into 4 wedges
    assert "(6 events)" in result.output
    pipe = Pipeline.from_directory(out)
    assert pipe.config.graph.neighbour_budget == 123456
    sp = acts_csv.read_spacepoints(acts_csv.event_path(sample_events_dir(), 0, "spacepoint"))
    labels = pipe(sp["x"].to_numpy(), sp["y"].to_numpy(), sp["z"].to_numpy())
    assert labels.shape == (len(sp),) and labels.dtype == np.int64


def test_kernel_provenance_names_the_kernel_settings(monkeypatch):
    from sonic_exatrkx.jobs.training import kernel_provenance

    monkeypatch.delenv("ATEN_CPU_CAPABILITY", raising=False)
    monkeypatch.setenv("MKL_ENABLE_INSTRUCTIONS", "AVX2")
    info = kernel_provenance()
    assert info["MKL_ENABLE_INSTRUCTIONS"] == "AVX2" and "ATEN_CPU_CAPABILITY" not in info
    assert info["cpu_capability"] == torch.backends.cpu.get_cpu_capability()


def test_train_rejects_bad_options(tmp_path):
    result = runner.invoke(app, ["train", "--output", str(tmp_path), "--events", "0"])
    assert result.exit_code == 2
    assert "--events" in result.output
    result = runner.invoke(app, ["train", "--output", str(tmp_path), "--sectors", "0"])
    assert result.exit_code == 2
    assert "--sectors" in result.output


@pytest.mark.parametrize("workers", [1, 2])
def test_bench_pipeline_prints_speed_and_physics(workers):
    result = runner.invoke(app, ["bench", "pipeline", "--events", "2", "--pileup", "0",
                                 "--in-flight", str(workers)])
    assert result.exit_code == 0, result.output
    assert f"1 thread(s) x {workers} worker(s)" in result.output
    from sonic_exatrkx.exatrkx.allocator import keep_freed_memory

    malloc = "kept in the heap" if keep_freed_memory() else "left to the environment"
    assert f"freed memory {malloc};" in result.output
    rows = [line for line in result.output.splitlines() if line.startswith("| 0 | 2 |")]
    assert len(rows) == 1  # the timing row of the mu=0 block, 2 events
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    assert cells[3] == "32"  # neighbours searched: mu=0 is far below the budget
    assert float(cells[11]) > 0  # events/s
    effs = [line for line in result.output.splitlines()
            if line.startswith("| 0 | ") and "(" in line]
    assert len(effs) == 1 and float(effs[0].split("|")[2].split()[0]) >= 0.8  # eff. pT>1


def test_bench_pipeline_max_k_override_caps_the_graph():
    base = runner.invoke(app, ["bench", "pipeline", "--events", "2", "--pileup", "0"])
    capped = runner.invoke(app, ["bench", "pipeline", "--events", "2", "--pileup", "0",
                                 "--max-k", "2"])
    assert base.exit_code == 0 and capped.exit_code == 0, capped.output
    assert "graph max_k 32," in base.output and "graph max_k 2," in capped.output

    def graph_edges(output: str) -> float:
        row = next(line for line in output.splitlines() if line.startswith("| 0 | graph |"))
        return float(row.split("|")[3])

    timing = next(line for line in capped.output.splitlines() if line.startswith("| 0 | 2 |"))
    space_points = float(timing.split("|")[3])
    # each space point keeps at most two neighbours: at most 2 N edges, fewer than uncapped
    assert graph_edges(capped.output) <= 2 * space_points
    assert graph_edges(capped.output) < graph_edges(base.output)
    assert timing.split("|")[4].strip() == "2"
    result = runner.invoke(app, ["bench", "pipeline", "--max-k", "0"])
    assert result.exit_code == 2 and "--max-k" in result.output


def test_bench_pipeline_neighbour_budget_override_lowers_k():
    out = runner.invoke(app, ["bench", "pipeline", "--events", "2", "--pileup", "0",
                              "--neighbour-budget", "1"])
    assert out.exit_code == 0, out.output
    assert "neighbour budget 1," in out.output
    timing = next(line for line in out.output.splitlines() if line.startswith("| 0 | 2 |"))
    assert timing.split("|")[4].strip() == "1"  # budget / N rounds down to 0: one neighbour
    result = runner.invoke(app, ["bench", "pipeline", "--neighbour-budget", "-1"])
    assert result.exit_code == 2 and "--neighbour-budget" in result.output


def test_bench_pipeline_filter_triplets_override():
    """``--filter-triplets`` / ``--no-filter-triplets`` switch the pileup set's budget
    ranking; either way the GNN gets exactly the budget, and the settings line says which."""
    args = ["bench", "pipeline", "--models", str(data_dir() / "models-pileup"), "--sample",
            "ttbar-like", "--events", "1", "--pileup", "50", "--filter-max-edges", "5000"]
    outputs = {}
    for flag in ("--filter-triplets", "--no-filter-triplets"):
        out = runner.invoke(app, [*args, flag])
        assert out.exit_code == 0, out.output
        outputs[flag] = out.output
        row = next(line for line in out.output.splitlines()
                   if line.startswith("| 50 | filter |"))
        assert float(row.split("|")[3]) == 5000
    assert "max_edges 5000 by triplet support;" in outputs["--filter-triplets"]
    assert "max_edges 5000 by filter score;" in outputs["--no-filter-triplets"]


def test_bench_pipeline_filter_max_degree_override():
    """``--filter-max-degree 1``: the GNN's input keeps one edge per space point and
    direction, so at most N edges, fewer than with the shipped config."""
    args = ["bench", "pipeline", "--events", "2", "--pileup", "0"]
    base = runner.invoke(app, args)
    capped = runner.invoke(app, [*args, "--filter-max-degree", "1"])
    assert base.exit_code == 0 and capped.exit_code == 0, capped.output
    assert "filter max_degree 0, max_edges off;" in base.output
    assert "filter max_degree 1, max_edges off;" in capped.output

    def filter_edges(output: str) -> float:
        row = next(line for line in output.splitlines() if line.startswith("| 0 | filter |"))
        return float(row.split("|")[3])

    timing = next(line for line in capped.output.splitlines() if line.startswith("| 0 | 2 |"))
    assert filter_edges(capped.output) <= float(timing.split("|")[3])
    assert filter_edges(capped.output) < filter_edges(base.output)
    result = runner.invoke(app, [*args, "--filter-max-degree", "-1"])
    assert result.exit_code == 2 and "--filter-max-degree" in result.output
    # --filter-max-edges: at most that many GNN input edges per event
    budget = runner.invoke(app, [*args, "--filter-max-edges", "200"])
    assert budget.exit_code == 0, budget.output
    assert "max_edges 200 by filter score;" in budget.output
    assert filter_edges(budget.output) == 200


def test_bench_pipeline_rejects_bad_in_flight():
    result = runner.invoke(app, ["bench", "pipeline", "--in-flight", "0"])
    assert result.exit_code == 2 and "--in-flight" in result.output


def test_train_old_threads_name_still_works_with_a_warning(tmp_path):
    """`--threads` means event-loop workers in `run`; in `train` it is the hidden old name
    of --pipeline-threads (refused values are still refused by typer)."""
    result = runner.invoke(app, ["train", "--output", str(tmp_path), "--threads", "0"])
    assert result.exit_code == 2 and "--threads" in result.output
    result = runner.invoke(app, ["train", "--help"], terminal_width=200,
                           env={"COLUMNS": "200"})
    assert "--pipeline-threads" in result.output
    assert "--threads" not in result.output.replace("--pipeline-threads", "")
