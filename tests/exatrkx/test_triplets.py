"""Triplet support and the budget ranking it gives (``exatrkx/triplets.py``)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from sonic_exatrkx.exatrkx import FeatureConfig, FilterConfig, PipelineConfig, cut_and_cap
from sonic_exatrkx.exatrkx.errors import ExaTrkXConfigError
from sonic_exatrkx.exatrkx.graph import GraphConfig
from sonic_exatrkx.exatrkx.triplets import (
    NO_SUPPORT,
    TripletRanking,
    budget_mask,
    filter_selection,
    triplet_support,
)

RANKING = TripletRanking(dtheta=0.015, dphi_slope=1e-4)


def _points() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """r, phi, z of six space points: 0-1-2 on one straight track (phi 0.1, z = r);
    3 a kinked continuation of 1 (its z far off the line); 4-5 a lone doublet."""
    r = np.array([100.0, 200.0, 300.0, 300.0, 100.0, 200.0])
    phi = np.array([0.1, 0.1, 0.1, 0.1, 2.0, 2.0])
    z = np.array([100.0, 200.0, 300.0, 500.0, -50.0, -60.0])
    return r, phi, z


# edges inner -> outer: 0->1, 1->2 (the track), 1->3 (kinked), 4->5 (alone)
EDGES = np.array([[0, 1, 1, 4], [1, 2, 3, 5]])


def test_support_is_the_best_compatible_neighbours_logit() -> None:
    r, phi, z = _points()
    logits = np.array([1.0, 2.0, 5.0, 3.0])
    support = triplet_support(EDGES, logits, r, phi, z, RANKING)
    # 0->1 and 1->2 support each other; 1->3 bends by ~0.3 rad in theta: no support for it
    # or from it (although its logit is the highest); 4->5 has no neighbour at all
    assert support.tolist() == [2.0, 1.0, NO_SUPPORT, NO_SUPPORT]
    wide = TripletRanking(dtheta=1.0, dphi_slope=1e-4)
    assert triplet_support(EDGES, logits, r, phi, z, wide).tolist() == [5.0, 1.0, 1.0,
                                                                         NO_SUPPORT]
    # edges in any order (not sorted by source): the same support per edge
    perm = np.array([3, 2, 0, 1])
    shuffled = triplet_support(EDGES[:, perm], logits[perm], r, phi, z, wide)
    assert shuffled.tolist() == [NO_SUPPORT, 1.0, 5.0, 1.0]


def test_phi_slope_window_separates_bends_in_the_transverse_plane() -> None:
    r, phi, z = _points()
    phi = phi.copy()
    phi[2] = 0.1 + 100.0 * 5e-4  # 1->2 turns at 5e-4 rad/mm where 0->1 runs straight
    support = triplet_support(EDGES, np.zeros(4), r, phi, z, RANKING)
    assert support[0] == NO_SUPPORT and support[1] == NO_SUPPORT


def test_the_budget_prefers_supported_edges_and_leaves_small_events_alone() -> None:
    r, phi, z = _points()
    logits = np.array([1.0, 2.0, 5.0, 3.0])
    keep = np.ones(4, dtype=bool)
    # two of four edges: by logit alone 1->3 and 4->5; with support the track's doublets
    plain = cut_and_cap(EDGES, logits, 0.0, 0, 2)
    assert np.flatnonzero(plain).tolist() == [2, 3]
    ranked = budget_mask(EDGES, logits, keep, 2, r, phi, z, RANKING)
    assert np.flatnonzero(ranked).tolist() == [0, 1]
    assert budget_mask(EDGES, logits, keep, 4, r, phi, z, RANKING) is keep
    # only the candidates (1 x budget: the two best logits) compete: neither is supported
    # among them, so the logits decide
    narrow = replace(RANKING, candidates=1.0)
    assert np.flatnonzero(budget_mask(EDGES, logits, keep, 2, r, phi, z, narrow)).tolist() \
        == [2, 3]


def test_top_k_mask_picks_as_a_stable_sort_does() -> None:
    from sonic_exatrkx.exatrkx.graph import top_k_mask

    rng = np.random.default_rng(7)
    for _ in range(200):
        values = rng.integers(0, 5, size=int(rng.integers(1, 40))).astype(np.float32)
        k = int(rng.integers(0, values.size + 2))
        expected = np.zeros(values.size, dtype=bool)
        expected[np.argsort(-values, kind="stable")[:k]] = True
        np.testing.assert_array_equal(top_k_mask(values, k), expected)


def test_filter_selection_is_cut_and_cap_without_triplets() -> None:
    features = FeatureConfig()
    r, phi, z = _points()
    feats = np.stack([r / 1000.0, phi / np.pi, z / 1000.0], axis=1).astype(np.float32)
    logits = np.array([1.0, 2.0, 5.0, 3.0])
    for max_edges in (0, 2, 3):
        cfg = FilterConfig(cut=0.5, max_edges=max_edges)
        np.testing.assert_array_equal(filter_selection(EDGES, logits, feats, features, cfg),
                                      cut_and_cap(EDGES, logits, 0.5, 0, max_edges))
    ranked = FilterConfig(cut=0.5, max_edges=2, triplets=RANKING)
    assert np.flatnonzero(filter_selection(EDGES, logits, feats, features, ranked)).tolist() \
        == [0, 1]
    # the cut comes first: an edge below it is never kept, supported or not
    below = np.array([-5.0, 2.0, 5.0, 3.0])
    assert not filter_selection(EDGES, below, feats, features, ranked)[0]


def test_ranking_config_round_trips_and_is_checked() -> None:
    cfg = FilterConfig(max_edges=10, triplets={"dtheta": 0.02})
    assert cfg.triplets == replace(TripletRanking(), dtheta=0.02)
    assert FilterConfig.from_dict(cfg.to_dict()) == cfg
    assert "triplets" not in FilterConfig().to_dict()  # folders without it stay as they were
    with pytest.raises(ExaTrkXConfigError, match="dphi_slope"):
        TripletRanking(dphi_slope=0.0)
    with pytest.raises(ExaTrkXConfigError, match="candidates"):
        TripletRanking(candidates=0.5)
    with pytest.raises(ExaTrkXConfigError, match="unexpected keyword"):
        FilterConfig(triplets={"dtheta_max": 0.1})
    with pytest.raises(ExaTrkXConfigError, match="inner_outer"):
        PipelineConfig(graph=GraphConfig(orientation="reference"), filter=cfg)
