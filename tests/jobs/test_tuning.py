"""Cut scans (`sonic-exatrkx tune`): the figures of each pair are the pipeline's own with
those cuts, the choice follows its rule, and held-out events are refused."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from sonic_exatrkx.cli import tune as tune_cli
from sonic_exatrkx.cli.main import app
from sonic_exatrkx.exatrkx import Pipeline
from sonic_exatrkx.exatrkx.metrics import merge_events, track_metrics
from sonic_exatrkx.jobs.training import simulate_arrays
from sonic_exatrkx.jobs.tuning import CutScanConfig, run_cut_scan
from sonic_exatrkx.paths import data_dir

MODELS = data_dir() / "models"


@pytest.fixture(scope="module")
def scan(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("tuned")
    config = CutScanConfig(models=MODELS, pileups=(10.0,), sample="hnl", events=2, seed=778,
                           filter_cuts=(0.05, 0.5), gnn_cuts=(0.3, 0.9),
                           track_builders=("best_outgoing", "components"), threads=1)
    return run_cut_scan(config, out, say=lambda _line: None), out


def test_every_pair_is_scanned_and_the_cuts_act_as_cuts(scan):
    result, _ = scan
    pairs = sorted((r.filter_cut, r.gnn_cut, r.track_builder) for r in result.rows)
    assert pairs == [(fc, gc, b) for fc in (0.05, 0.5) for gc in (0.3, 0.9)
                     for b in ("best_outgoing", "components")]
    by = {(r.filter_cut, r.gnn_cut): r for r in result.rows if r.track_builder == "components"}
    # a higher filter cut leaves the GNN fewer edges; a higher GNN cut purer kept edges
    assert by[(0.5, 0.3)].gnn_input_edges < by[(0.05, 0.3)].gnn_input_edges
    for fc in (0.05, 0.5):
        assert by[(fc, 0.9)].edge_purity >= by[(fc, 0.3)].edge_purity
        assert by[(fc, 0.9)].edge_efficiency <= by[(fc, 0.3)].edge_efficiency
    for r in result.rows:
        assert 0.0 < r.efficiency <= 1.0 and 0.0 <= r.fake_rate <= 1.0 and r.gnn_s > 0
        assert 0.0 < r.filter_efficiency <= 1.0
    # the builder only changes the tracks: the edges are the same for both
    outgoing = {(r.filter_cut, r.gnn_cut): r for r in result.rows
                if r.track_builder == "best_outgoing"}
    assert all(outgoing[k].edge_purity == by[k].edge_purity for k in by)
    cfg = Pipeline.from_directory(MODELS).config
    assert result.current == {"filter_cut": cfg.filter.cut, "gnn_cut": cfg.gnn.cut,
                              "track_builder": cfg.track_builder,
                              "filter_max_edges": cfg.filter.max_edges}
    assert {r.pileup for r in result.rows} == {10.0}


def test_the_chosen_pair_follows_the_rule_and_its_figures_are_the_pipelines(scan):
    result, out = scan
    best = result.best
    assert best is not None
    assert best.objective == max(r.objective for r in result.rows)  # one pileup: its own
    # the written folder runs with the chosen cuts and gives the scan's figures exactly
    tuned = Pipeline.from_directory(out, num_threads=1)
    assert (tuned.config.filter.cut, tuned.config.gnn.cut, tuned.config.track_builder) == (
        best.filter_cut, best.gnn_cut, best.track_builder)
    events = list(simulate_arrays(10.0, 778, 2, sample="hnl"))
    labels = [tuned.run(tuned.features(a["x"], a["y"], a["z"])).labels for a in events]
    lab, pid, pt = merge_events(events, labels)
    m = track_metrics(lab, pid, pt=pt, pt_min=1.0)
    row = next(r for r in result.rows
               if (r.filter_cut, r.gnn_cut, r.track_builder) ==
               (best.filter_cut, best.gnn_cut, best.track_builder))
    assert (m.efficiency, m.fake_rate, m.duplicate_rate) == (
        row.efficiency, row.fake_rate, row.duplicate_rate)
    report = json.loads((out / "cut_scan.json").read_text())
    assert report["chosen"]["filter_cut"] == best.filter_cut
    assert len((out / "cut_scan.csv").read_text().splitlines()) == 1 + len(result.rows)
    assert "**chosen**" in "\n".join(result.lines())


def test_over_budget_pairs_are_never_chosen(scan):
    result, _ = scan
    tight = min(r.gnn_input_edges for r in result.rows)
    budget = type(result)(CutScanConfig(models=MODELS, max_gnn_edges=int(np.ceil(tight))),
                          rows=result.rows)
    best = budget.best
    assert best is not None
    assert all(r.gnn_input_edges <= tight for r in result.rows
               if (r.filter_cut, r.gnn_cut, r.track_builder) ==
               (best.filter_cut, best.gnn_cut, best.track_builder))
    none = type(result)(CutScanConfig(models=MODELS, max_gnn_edges=1), rows=result.rows)
    assert none.best is None
    assert "no setting within the GNN input budget" in "\n".join(none.lines())


def test_held_out_events_and_bad_grids_are_refused():
    with pytest.raises(ValueError, match="held-out"):
        CutScanConfig(models=MODELS, seed=12345)
    with pytest.raises(ValueError, match="gnn_cuts"):
        CutScanConfig(models=MODELS, gnn_cuts=(1.5,))
    with pytest.raises(ValueError, match="unknown sample"):
        CutScanConfig(models=MODELS, sample="zprime")
    with pytest.raises(ValueError, match="unknown track builders"):
        CutScanConfig(models=MODELS, track_builders=("walk",))


def test_command_line_defaults_are_the_libraries_and_errors_are_one_line(tmp_path: Path):
    defaults = {f.name: f.default for f in fields(CutScanConfig)}
    assert tuple(tune_cli.FILTER_CUTS) == defaults["filter_cuts"]
    assert tuple(tune_cli.GNN_CUTS) == defaults["gnn_cuts"]
    runner = CliRunner()
    res = runner.invoke(app, ["tune", "--models", str(MODELS), "--seed", "12345"])
    assert res.exit_code == 1
    assert res.output.strip().count("\n") == 0 and "held-out" in res.output
    res = runner.invoke(app, ["tune", "--models", str(MODELS), "--pileup", "0", "--sample",
                              "hnl", "--events", "1", "--filter-cut", "0.1", "--gnn-cut",
                              "0.5", "--pipeline-threads", "1", "-o", str(tmp_path / "t")])
    assert res.exit_code == 0, res.output
    assert "chosen: filter cut 0.1, GNN cut 0.5, best_outgoing" in res.output
    assert (tmp_path / "t" / "config.json").is_file()


def test_one_setting_is_chosen_for_every_pileup_by_its_mean(tmp_path: Path):
    config = CutScanConfig(models=MODELS, pileups=(0.0, 10.0), sample="hnl", events=1,
                           seed=781, filter_cuts=(0.1, 0.6), gnn_cuts=(0.5,),
                           filter_max_edges=300, threads=1)
    result = run_cut_scan(config, tmp_path / "tuned", say=lambda _line: None)
    settings = {(r.filter_cut, r.gnn_cut, r.track_builder) for r in result.rows}
    assert len(result.rows) == 2 * len(settings)  # every setting at both pileups
    mean = {s: np.mean([r.objective for r in result.rows
                        if (r.filter_cut, r.gnn_cut, r.track_builder) == s]) for s in settings}
    best = result.best
    assert best is not None
    assert best.objective == pytest.approx(max(mean.values()))
    assert all(r.gnn_input_edges <= 300 for r in result.rows)  # the budget of max_edges
    tuned = Pipeline.from_directory(tmp_path / "tuned").config
    assert tuned.filter.max_edges == 300 and tuned.filter.cut == best.filter_cut


def test_a_module_map_folder_is_tuned_and_written_with_its_map_on_a_grid(tmp_path: Path):
    from sonic_exatrkx.exatrkx.module_map import MODULE_MAP_FILE, ModuleMap
    from sonic_exatrkx.jobs.training import add_module_map

    mm_models = add_module_map(MODELS, tmp_path / "mm", events=4, pileup=50.0,
                               progress=False)
    config = CutScanConfig(models=mm_models, pileups=(50.0,), events=1, seed=782,
                           filter_cuts=(0.1,), gnn_cuts=(0.5,), threads=1,
                           module_map_range_bits=8)
    result = run_cut_scan(config, tmp_path / "tuned", say=lambda _line: None)
    assert len(result.rows) == 1 and result.rows[0].gnn_input_edges > 0
    before = ModuleMap.load(mm_models / MODULE_MAP_FILE)
    after = ModuleMap.load(tmp_path / "tuned" / MODULE_MAP_FILE)
    assert before.grid is None and after.grid is not None
    assert (after.ranges[:, :, 0] <= before.ranges[:, :, 0]).all()
    assert (tmp_path / "tuned" / MODULE_MAP_FILE).stat().st_size < \
        (mm_models / MODULE_MAP_FILE).stat().st_size
    tuned = Pipeline.from_directory(tmp_path / "tuned")  # the checksums match the new map
    assert tuned.module_map is not None and tuned.module_map.digest() == after.digest()
    with pytest.raises(ValueError, match="has no module map"):
        run_cut_scan(CutScanConfig(models=MODELS, pileups=(0.0,), events=1, seed=783,
                                   module_map_range_bits=8), None, say=lambda _line: None)
