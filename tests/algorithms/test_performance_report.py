"""What a physicist reads: the performance summary in physics words, the definitions in
performance.txt, error bars that do not vanish at 100 %, and plots that name their sample,
events, selection and cuts."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import beta

from algorithms.performance import (
    DEFINITIONS_HEADING,
    TrackFindingPerformance,
    sample_label,
    served_edge_note,
)
from algorithms.performance_plots import (
    edge_scores_figure,
    efficiency_figure,
    efficiency_intervals,
    plot_edge_scores,
)
from sonic_exatrkx.framework import ConfigurationError
from sonic_exatrkx.paths import sample_events_dir
from tests.algorithms.test_track_finding import TruthTracks, perf_job


def test_summary_in_physics_words(sim_events, tmp_path):
    perf = perf_job(sim_events, tmp_path, TruthTracks(split_above=8), plots=False,
                    sample=sample_label(sim_events), edge_note=served_edge_note("custom"))
    text = perf.summary_text()
    s = json.loads((tmp_path / "performance.json").read_text())
    every, hi = s["all_pt"], s["pt>1"]
    assert f"4 events ({sim_events.name})" in text
    assert (f"all particles:  efficiency 100.0% ({every['n_matched']}/{every['n_particles']} "
            f"particles), fake rate 0.0% (0/{every['n_tracks']} tracks), duplicate rate") in text
    assert f"({every['n_duplicated']}/{every['n_found']} found particles)" in text
    assert f"pT > 1 GeV:     efficiency 100.0% ({hi['n_matched']}/{hi['n_particles']}" in text
    # The pT > 1 GeV fake rate counts the tracks of the selection, not every track again.
    assert 0 < hi["n_tracks"] < every["n_tracks"]
    assert f"(0/{hi['n_tracks']} tracks)" in text
    for code_word in ("all_pt", "pt>1"):
        assert code_word not in text
    assert "edge efficiency and purity per stage: not measured in a served run" in text
    report = (tmp_path / "performance.txt").read_text()
    summary, definitions = report.split(f"\n\n{DEFINITIONS_HEADING}\n")
    assert summary == text
    for words in ("double majority", "more than half", ">= 3 space points", "leading particle",
                  "found particles", "duplicate rate =", "fake rate =", "efficiency ="):
        assert words in " ".join(definitions.split()), words
    assert perf.written == ["performance.txt", "performance.json"]


def test_sample_label_names_the_input():
    assert sample_label(sample_events_dir()) == "the shipped sample"
    assert sample_label("/data/ttbar_mu200/") == "ttbar_mu200"


@pytest.mark.parametrize(("k", "n"), [(5, 5), (0, 5), (1, 1), (37, 40)])
def test_clopper_pearson_intervals(k, n):
    eff, lo, hi = efficiency_intervals(np.array([k]), np.array([n]))
    assert eff[0] == k / n
    assert lo[0] < eff[0] or k == 0
    assert hi[0] > eff[0] or k == n
    assert hi[0] - lo[0] > 0  # never a zero error, at 0 and 100 % included
    alpha = 1 - 0.6827  # the exact (beta quantile) interval
    expected_lo = beta.ppf(alpha / 2, k, n - k + 1) if k > 0 else 0.0
    expected_hi = beta.ppf(1 - alpha / 2, k + 1, n - k) if k < n else 1.0
    assert (lo[0], hi[0]) == pytest.approx((expected_lo, expected_hi), rel=1e-6)


def test_intervals_of_an_empty_bin_are_nan():
    eff, lo, hi = efficiency_intervals(np.array([0, 3]), np.array([0, 4]))
    assert np.isnan([eff[0], lo[0], hi[0]]).all() and eff[1] == 0.75
    assert lo[1] < 0.75 < hi[1]


def test_plots_name_sample_events_selection_and_cuts():
    summary = {"sample": "ttbar", "events": 12, "min_hits": 3, "cuts": {"filter": 0.1,
                                                                       "gnn": 0.5},
               "efficiency_vs_pt": {"bin_edges": [0.0, 1.0, 10.0], "n_particles": [4, 2],
                                    "n_matched": [3, 2]}}
    fig = efficiency_figure(summary, "pt")
    ax = fig.axes[0]
    assert ax.get_title() == r"ttbar, 12 events; particles with $\geq$ 3 space points, all $p_T$"
    _, _, bar_collections = ax.containers[0].lines
    (y_bars,) = [c for c in bar_collections  # the vertical bars: one x per segment
                 if all(seg[0, 0] == seg[1, 0] for seg in c.get_segments())]
    lower, upper = y_bars.get_segments()[1][:, 1]
    assert lower < 1.0 == upper  # the 2/2 bin: an error bar reaching below 100 %
    rng = np.random.default_rng(0)
    scores = {stage: [(rng.random(50), rng.random(50) > 0.5)] for stage in ("filter", "gnn")}
    fig = edge_scores_figure(scores, summary)
    assert fig is not None
    cut_lines = {ax.get_xlabel(): [line.get_xdata()[0] for line in ax.get_lines()]
                 for ax in fig.axes}
    assert cut_lines == {"filter edge score (sigmoid)": [0.1], "GNN edge score (sigmoid)": [0.5]}
    assert all(ax.get_title().startswith("ttbar, 12 events; ") for ax in fig.axes)


def test_eta_plot_adds_the_particles_above_the_pt_cut():
    binned = {"bin_edges": [-1.0, 0.0, 1.0], "n_particles": [10, 10], "n_matched": [2, 3]}
    above = {"bin_edges": [-1.0, 0.0, 1.0], "n_particles": [4, 5], "n_matched": [4, 4]}
    summary = {"sample": "ttbar", "events": 2, "efficiency_vs_eta": binned,
               "efficiency_vs_eta_pt>1": above}
    ax = efficiency_figure(summary, "eta").axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["all $p_T$, double majority", "$p_T$ > 1 GeV, double majority"]
    heights = [c.lines[0].get_ydata().tolist() for c in ax.containers]
    assert heights == [[0.2, 0.3], [1.0, 0.8]]
    assert ax.get_title() == r"ttbar, 2 events; particles with $\geq$ 3 space points"


def test_no_scores_no_edge_plot(tmp_path):
    assert plot_edge_scores({"filter": [], "gnn": []}, tmp_path / "edge_scores.png") is None
    assert not (tmp_path / "edge_scores.png").exists()


def test_cuts_are_checked(tmp_path):
    with pytest.raises(ConfigurationError, match="filter_cut"):
        TrackFindingPerformance(tmp_path, filter_cut=-0.1)
