"""build_tracks: connected components, label numbering and min_hits."""

from __future__ import annotations

import numpy as np
import pytest

from sonic_exatrkx.exatrkx import UNASSIGNED, build_tracks, renumber_first_appearance


def _union_find_labels(n: int, edges: np.ndarray) -> np.ndarray:
    """Independent reference: union-find, then first-appearance numbering."""
    parent = list(range(n))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a, b in edges.T.tolist():
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    roots = [find(i) for i in range(n)]
    seen: dict[int, int] = {}
    return np.array([seen.setdefault(r, len(seen)) for r in roots], dtype=np.int64)


@pytest.mark.parametrize("seed", range(5))
def test_matches_union_find_on_random_graphs(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 300))
    edges = rng.integers(0, n, size=(2, int(rng.integers(0, 2 * n))))
    keep = rng.random(edges.shape[1]) < 0.7
    got = build_tracks(n, edges, keep)
    assert np.array_equal(got, _union_find_labels(n, edges[:, keep]))


def test_matches_networkx_if_installed() -> None:
    nx = pytest.importorskip("networkx")
    rng = np.random.default_rng(7)
    n = 500
    edges = rng.integers(0, n, size=(2, 400))
    got = build_tracks(n, edges)
    g = nx.Graph()
    g.add_nodes_from(range(n))
    g.add_edges_from(edges.T.tolist())
    for comp in nx.connected_components(g):
        idx = np.fromiter(comp, dtype=np.int64)
        assert np.unique(got[idx]).size == 1
    assert np.unique(got).size == nx.number_connected_components(g)


def test_numbering_singletons_and_direction() -> None:
    edges = np.array([[4, 1], [2, 3]])  # 4->2 and 1->3 (direction does not matter)
    labels = build_tracks(6, edges)
    assert labels.tolist() == [0, 1, 2, 1, 2, 3]  # 0 and 5 are singleton tracks
    assert build_tracks(0, np.zeros((2, 0))).shape == (0,)
    assert build_tracks(1, np.zeros((2, 0))).tolist() == [0]
    assert build_tracks(3, np.array([[1], [0]]), np.array([False])).tolist() == [0, 1, 2]


def test_min_hits_marks_short_tracks_unassigned() -> None:
    edges = np.array([[0, 1, 3], [1, 2, 4]])  # {0,1,2}, {3,4}, {5}
    assert build_tracks(6, edges).tolist() == [0, 0, 0, 1, 1, 2]
    assert build_tracks(6, edges, min_hits=2).tolist() == [0, 0, 0, 1, 1, UNASSIGNED]
    assert build_tracks(6, edges, min_hits=3).tolist() == [0, 0, 0, -1, -1, -1]
    with pytest.raises(ValueError, match="min_hits"):
        build_tracks(6, edges, min_hits=0)


def test_bad_edges() -> None:
    with pytest.raises(ValueError, match="out of range"):
        build_tracks(3, np.array([[0], [3]]))
    with pytest.raises(ValueError, match="keep_mask"):
        build_tracks(3, np.array([[0], [1]]), np.array([True, False]))
    with pytest.raises(ValueError, match=r"\[2, E\]"):
        build_tracks(3, np.array([[0, 1, 2]]))


def test_renumber_first_appearance() -> None:
    assert renumber_first_appearance(np.array([7, 3, 7, -1, 9, 3])).tolist() == [0, 1, 0, -1, 2, 1]


def test_best_edges_keeps_best_out_or_in_edge() -> None:
    from sonic_exatrkx.exatrkx import best_edges

    # 0 -> 1 -> 2 is a chain; 3 -> 1 is a weaker rival into 1, 0 -> 2 a skip edge.
    edges = np.array([[0, 1, 3, 0], [1, 2, 1, 2]])
    scores = np.array([5.0, 4.0, 1.0, 3.0])
    keep = best_edges(edges, scores)
    # 3 -> 1 is 3's only (so best) outgoing edge: kept; 0 -> 2 is neither 0's best out
    # nor 2's best in: dropped.
    assert keep.tolist() == [True, True, True, False]
    assert best_edges(np.zeros((2, 0), np.int64), np.zeros(0)).shape == (0,)
    with pytest.raises(ValueError, match="build_tracks"):
        best_edges(edges, scores[:2])


def test_best_outgoing_keeps_one_successor_per_point() -> None:
    from sonic_exatrkx.exatrkx import Pipeline, PipelineConfig, best_edges

    # two chains 0 -> 1 -> 2 and 3 -> 4 -> 5; 3 -> 1 is a weak cross edge into chain one
    edges = np.array([[0, 1, 3, 3, 4], [1, 2, 1, 4, 5]])
    scores = np.array([5.0, 4.0, 1.0, 3.0, 3.0])
    keep = best_edges(edges, scores, outgoing_only=True)
    assert keep.tolist() == [True, True, False, True, True]  # 3's best successor is 4
    pipe = Pipeline.from_config(PipelineConfig(track_builder="best_outgoing"))
    assert pipe.track_edge_mask(edges, scores).tolist() == keep.tolist()
    labels = pipe.tracks(6, edges, scores)
    assert labels.tolist() == [0, 0, 0, 1, 1, 1]


def test_track_builder_in_pipeline_config() -> None:
    from sonic_exatrkx.exatrkx import Pipeline, PipelineConfig

    cfg = PipelineConfig(track_builder="best_edges")
    assert PipelineConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="track_builder"):
        PipelineConfig(track_builder="walk")
    pipe = Pipeline.from_config(cfg)
    # 0 -> 2 is neither 0's best outgoing nor 2's best incoming edge: two tracks, not one
    edges = np.array([[0, 0, 3], [1, 2, 2]])
    scores = np.array([3.0, 1.0, 4.0])
    assert pipe.tracks(4, edges, scores).tolist() == [0, 0, 1, 1]
    components = Pipeline(pipe.embedding, pipe.filter, pipe.gnn, PipelineConfig())
    assert components.tracks(4, edges, scores).tolist() == [0, 0, 0, 0]


def test_junction_removal_splits_tracks_merged_through_a_fake_edge() -> None:
    from sonic_exatrkx.exatrkx import Pipeline, PipelineConfig, junction_removal

    # Two tracks 0 -> 1 -> 2 -> 3 and 4 -> 5 -> 6 -> 7 (GNN logits 3-5). The last hit of the
    # first track, 3, has a fake continuation 3 -> 6 into the second track (logit 2), and
    # 4 has a fake skip 4 -> 2 into the first (logit 1.5).
    edges = np.array([[0, 1, 2, 4, 5, 6, 3, 4],
                      [1, 2, 3, 5, 6, 7, 6, 2]])
    scores = np.array([5.0, 4.0, 4.5, 3.0, 3.5, 4.0, 2.0, 1.5])
    keep = junction_removal(edges, scores)
    # 6 has two incoming edges (5 -> 6 best), 2 has two (1 -> 2 best), 4 two outgoing
    # (4 -> 5 best): both fakes go; every point keeps one successor and one predecessor
    assert keep.tolist() == [True, True, True, True, True, True, False, False]
    kept = edges[:, keep]
    assert np.bincount(kept[0]).max() == 1 and np.bincount(kept[1]).max() == 1
    # the builders on the same graph: best_outgoing keeps 3 -> 6 (3's only successor)
    # and merges the tracks; junction removal separates them
    by_builder = {}
    for builder in ("components", "best_outgoing", "junction_removal"):
        pipe = Pipeline.from_config(PipelineConfig(track_builder=builder))
        by_builder[builder] = pipe.tracks(8, edges, scores).tolist()
    assert by_builder["components"] == [0] * 8
    assert by_builder["best_outgoing"] == [0] * 8
    assert by_builder["junction_removal"] == [0, 0, 0, 0, 1, 1, 1, 1]
    # ties: the earlier edge stays; empty graphs; mismatched scores
    tie = junction_removal(np.array([[0, 1], [2, 2]]), np.array([1.0, 1.0]))
    assert tie.tolist() == [True, False]
    assert junction_removal(np.zeros((2, 0), np.int64), np.zeros(0)).shape == (0,)
    with pytest.raises(ValueError, match="build_tracks"):
        junction_removal(edges, scores[:3])
