"""build_edges, apply_cut and degree_cap on hand-made and random inputs."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from sonic_exatrkx.exatrkx import (
    GraphConfig,
    PipelineConfig,
    apply_cut,
    build_edges,
    cut_and_cap,
    degree_cap,
    sigmoid,
)
from sonic_exatrkx.exatrkx.graph import unique_edges


def _brute_force_pairs(emb: np.ndarray, radius: float) -> set[tuple[int, int]]:
    d = np.linalg.norm(emb[:, None, :].astype(np.float64) - emb[None, :, :], axis=2)
    i, j = np.nonzero((d < radius) & (np.arange(len(emb))[:, None] > np.arange(len(emb))))
    return set(zip(i.tolist(), j.tolist(), strict=True))


@pytest.mark.parametrize("n", [0, 1])
def test_no_pairs_for_tiny_inputs(n: int) -> None:
    out = build_edges(np.zeros((n, 8), np.float32), 1.0, 10)
    assert out.shape == (2, 0) and out.dtype == np.int64


def test_two_points() -> None:
    near = np.array([[0, 0], [0.5, 0]], np.float32)
    assert build_edges(near, 1.0, 10).tolist() == [[1], [0]]
    far = np.array([[0, 0], [2.0, 0]], np.float32)
    assert build_edges(far, 1.0, 10).shape == (2, 0)
    same = np.zeros((2, 3), np.float32)  # identical points are still two space points
    assert build_edges(same, 1.0, 10).tolist() == [[1], [0]]


def test_radius_is_strict() -> None:
    emb = np.array([[0.0], [1.0], [2.5]], np.float32)
    assert build_edges(emb, 1.0, 10).shape == (2, 0)  # distance exactly 1.0 is out
    assert build_edges(emb, 1.0 + 1e-6, 10).tolist() == [[1], [0]]


@pytest.mark.parametrize("index", ["flat", "kdtree", "auto"])
def test_matches_brute_force(index: str) -> None:
    emb = np.random.default_rng(1).normal(size=(400, 4)).astype(np.float32)
    out = build_edges(emb, 1.0, 1000, index=index)
    assert set(zip(out[0].tolist(), out[1].tolist(), strict=True)) == _brute_force_pairs(emb, 1.0)
    assert np.all(out[0] > out[1])
    assert np.array_equal(np.lexsort((out[1], out[0])), np.arange(out.shape[1]))


def test_ivf_finds_almost_all_pairs_of_a_large_event() -> None:
    rng = np.random.default_rng(2)
    centres = rng.normal(scale=6.0, size=(600, 8))
    emb = (np.repeat(centres, 10, axis=0) + rng.normal(scale=0.3, size=(6000, 8))).astype(
        np.float32
    )
    exact = build_edges(emb, 1.0, 64, index="kdtree")
    ivf = build_edges(emb, 1.0, 64, index="ivf")
    auto = build_edges(emb, 1.0, 64, config=GraphConfig(1.0, 64, flat_max_nodes=1000))
    assert np.array_equal(auto, ivf)  # auto switches to IVF above flat_max_nodes
    e_set = set(zip(*exact.tolist(), strict=True))
    i_set = set(zip(*ivf.tolist(), strict=True))
    assert i_set <= e_set and len(i_set) >= 0.99 * len(e_set)


def test_orientation_inner_outer() -> None:
    emb = np.zeros((3, 2), np.float32)  # all within the radius
    r = np.array([0.5, 0.1, 0.5])
    out = build_edges(emb, 1.0, 10, orientation="inner_outer", r=r)
    # src has the smaller r; equal r: lower index is src. Sorted by src, then dst.
    assert out.tolist() == [[0, 1, 1], [2, 0, 2]]
    with pytest.raises(ValueError, match="needs r"):
        build_edges(emb, 1.0, 10, orientation="inner_outer")


def test_max_k_keeps_nearest_first() -> None:
    # Point 0 at the origin, points 1..4 at increasing distance along a line.
    emb = np.array([[0.0], [0.1], [0.2], [0.3], [5.0]], np.float32)
    out = build_edges(emb, 1.0, 1)
    # Each point keeps its nearest neighbour (ties -> lower index); union of both ends.
    # 0->1, 1->0 (0.1 each; lower index), 2->1 (0.1 vs 3 at 0.1: lower index 1), 3->2.
    assert out.tolist() == [[1, 2, 3], [0, 1, 2]]
    full = build_edges(emb, 1.0, 500)
    assert full.shape[1] == 6


def test_neighbour_budget_lowers_k_only_for_dense_events() -> None:
    emb = np.random.default_rng(11).normal(size=(400, 4)).astype(np.float32)
    r = np.random.default_rng(12).uniform(size=400)
    base = dict(radius=10.0, orientation="inner_outer", index="kdtree", search="knn")
    full = build_edges(emb, r=r, config=GraphConfig(max_k=20, **base))
    # 400 x 20 = 8000 entries: a budget of 8000 does not bind, 2000 gives k = 5
    loose = GraphConfig(max_k=20, neighbour_budget=8000, **base)
    tight = GraphConfig(max_k=20, neighbour_budget=2000, **base)
    assert loose.max_k_for(400) == 20 and tight.max_k_for(400) == 5
    assert tight.max_k_for(100) == 20 and tight.max_k_for(5000) == 1  # at least one
    assert np.array_equal(build_edges(emb, r=r, config=loose), full)
    five = build_edges(emb, r=r, config=GraphConfig(max_k=5, **base))
    assert np.array_equal(build_edges(emb, r=r, config=tight), five)
    assert five.shape[1] < full.shape[1]
    for bad in (-1, 2.5):
        with pytest.raises(ValueError, match="neighbour_budget"):
            GraphConfig(neighbour_budget=bad)  # type: ignore[arg-type]


def test_neighbour_budget_is_logged_once_at_info(monkeypatch, caplog) -> None:
    from sonic_exatrkx.exatrkx import graph

    monkeypatch.setattr(graph, "_budget_seen", False)
    emb = np.random.default_rng(5).normal(size=(100, 3)).astype(np.float32)
    cfg = GraphConfig(radius=5.0, max_k=20, neighbour_budget=500, index="kdtree", search="knn")
    with caplog.at_level(logging.DEBUG, logger=graph.__name__):
        build_edges(emb, config=cfg)
        build_edges(emb, config=cfg)
        build_edges(emb, config=GraphConfig(radius=5.0, max_k=20, neighbour_budget=10_000))
    levels = [r.levelno for r in caplog.records if "neighbour_budget 500" in r.getMessage()]
    assert levels == [logging.INFO, logging.DEBUG]  # not binding: nothing said
    assert "100 space points search 5 neighbours" in caplog.records[0].getMessage()


def test_deterministic_and_bad_input() -> None:
    emb = np.random.default_rng(3).normal(size=(300, 8)).astype(np.float32)
    a = build_edges(emb, 2.0, 20)
    b = build_edges(emb.copy(), 2.0, 20)
    assert np.array_equal(a, b)
    emb[7, 2] = np.nan
    with pytest.raises(ValueError, match=r"build_edges.*row 7"):
        build_edges(emb, 2.0, 20)
    with pytest.raises(ValueError, match="radius"):
        GraphConfig(radius=-1.0)
    with pytest.raises(ValueError, match="orientation"):
        GraphConfig(orientation="outside_in")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_k"):
        GraphConfig(max_k=0)


def test_apply_cut_is_strict_and_keeps_order() -> None:
    logits = np.array([-3.0, 0.0, 0.5, 3.0], np.float32)
    assert apply_cut(logits, 0.5).tolist() == [False, False, True, True]  # sigmoid(0) = 0.5
    probs = sigmoid(logits)
    assert apply_cut(probs, 0.5, on="score").tolist() == [False, False, True, True]
    assert apply_cut(np.zeros(0), 0.2).shape == (0,)
    with pytest.raises(ValueError):
        apply_cut(logits, 1.5)


def test_degree_cap_keeps_each_space_points_best_edges() -> None:
    # node 0 sends to 1, 2, 3; node 4 receives from 1, 2, 3
    edges = np.array([[0, 0, 0, 1, 2, 3], [1, 2, 3, 4, 4, 4]])
    scores = np.array([0.9, 0.5, 0.7, 0.2, 0.8, 0.6], np.float32)
    assert degree_cap(edges, scores, 2).tolist() == [True, False, True, False, True, True]
    assert degree_cap(edges, scores, 1).tolist() == [True, False, False, False, True, False]
    assert degree_cap(edges, scores, 0).all() and degree_cap(edges, scores, 3).all()
    ties = degree_cap(np.array([[0, 0, 0], [1, 2, 3]]), np.ones(3), 2)
    assert ties.tolist() == [True, True, False]  # equal scores: the earlier edge first
    assert degree_cap(np.zeros((2, 0), np.int64), np.zeros(0), 2).shape == (0,)
    with pytest.raises(ValueError, match="max_degree"):
        degree_cap(edges, scores, -1)
    with pytest.raises(ValueError, match="E scores"):
        degree_cap(edges, scores[:3], 2)


def test_max_edges_keeps_the_best_scored_edges_past_the_cut() -> None:
    edges = np.array([[0, 0, 1, 1, 2, 3], [1, 2, 2, 3, 3, 4]])
    logits = np.array([2.0, -5.0, 1.0, 3.0, 1.0, 0.5], np.float32)  # edge 1 fails the cut
    assert cut_and_cap(edges, logits, 0.1).tolist() == [True, False, True, True, True, True]
    # three of the five passing: the highest logits (3, 2, then the earlier of the two 1s)
    assert cut_and_cap(edges, logits, 0.1, max_edges=3).tolist() == [
        True, False, True, True, False, False]
    assert cut_and_cap(edges, logits, 0.1, max_edges=10).sum() == 5  # under budget: all
    assert cut_and_cap(edges, logits, 0.1, max_edges=0).sum() == 5  # 0: off
    # after the degree cap (node 1 keeps its best outgoing edge only)
    assert cut_and_cap(edges, logits, 0.1, max_degree=1, max_edges=2).tolist() == [
        True, False, False, True, False, False]
    # in config.json; a config from before the setting reads as off
    cfg = PipelineConfig()
    d = cfg.to_dict()
    assert d["filter"]["max_edges"] == 0
    del d["filter"]["max_edges"]
    assert PipelineConfig.from_dict(d).filter.max_edges == 0
    with pytest.raises(ValueError, match="max_edges"):
        PipelineConfig.from_dict({**cfg.to_dict(), "filter": {**cfg.to_dict()["filter"],
                                                              "max_edges": -1}})


@pytest.mark.parametrize("seed", range(4))
def test_degree_cap_matches_a_per_node_count(seed: int) -> None:
    """Cross-check on random multigraphs against ranking each space point's edges one by
    one (ties impossible: distinct scores)."""
    rng = np.random.default_rng(seed)
    n, e, k = 40, 400, int(rng.integers(1, 6))
    edges = rng.integers(0, n, size=(2, e))
    scores = rng.permutation(e).astype(np.float32)
    want = np.ones(e, bool)
    for side in (0, 1):
        for node in range(n):
            mine = np.flatnonzero(edges[side] == node)
            want[mine[np.argsort(-scores[mine])][k:]] = False
    got = degree_cap(edges, scores, k)
    assert np.array_equal(got, want)
    for side in (0, 1):
        assert np.bincount(edges[side][got], minlength=n).max() <= k


@pytest.mark.parametrize("index", ["flat", "kdtree"])
def test_knn_search_matches_range_search(index: str) -> None:
    rng = np.random.default_rng(5)
    centres = rng.normal(scale=4.0, size=(60, 6))
    emb = (np.repeat(centres, 12, axis=0) + rng.normal(scale=0.4, size=(720, 6))).astype(
        np.float32
    )
    for max_k in (3, 8, 1000):
        by_range = build_edges(emb, config=GraphConfig(1.0, max_k, index=index))
        by_knn = build_edges(emb, config=GraphConfig(1.0, max_k, index=index, search="knn"))
        assert np.array_equal(by_range, by_knn), max_k


def test_knn_search_with_ivf_and_tiny_inputs() -> None:
    cfg = GraphConfig(1.0, 4, index="ivf", search="knn")
    for n in (0, 1, 2, 3):
        out = build_edges(np.zeros((n, 4), np.float32), config=cfg)
        assert out.shape == (2, n * (n - 1) // 2 if n <= 5 else 0)
    emb = np.random.default_rng(6).normal(size=(3000, 4)).astype(np.float32)
    exact = set(zip(*build_edges(emb, config=GraphConfig(0.5, 4, index="kdtree")).tolist(),
                    strict=True))
    ivf = set(zip(*build_edges(emb, config=cfg.__class__(0.5, 4, index="ivf", search="knn"))
                  .tolist(), strict=True))
    assert ivf <= exact and len(ivf) >= 0.97 * len(exact)
    with pytest.raises(ValueError, match="search"):
        GraphConfig(search="ball")


@pytest.mark.parametrize(("n", "m"), [(1, 1), (5, 40), (300, 5000), (70_000, 200_000)])
def test_unique_edges_are_the_sorted_distinct_pairs(n: int, m: int) -> None:
    """The CSR de-duplication gives what sorting one key per pair gives (np.unique)."""
    rng = np.random.default_rng(n)
    src, dst = rng.integers(0, n, m), rng.integers(0, n, m)
    src, dst = np.concatenate([src, src[: m // 2]]), np.concatenate([dst, dst[: m // 2]])
    key = np.unique(src * n + dst)
    out = unique_edges(src, dst, n)
    assert out.dtype == np.int64 and out.shape == (2, key.size)
    assert np.array_equal(out, np.stack([key // n, key % n]))
    assert unique_edges(src[:0], dst[:0], n).shape == (2, 0)
