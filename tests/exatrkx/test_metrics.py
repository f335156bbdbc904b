"""Physics metrics on hand-made events with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from sonic_exatrkx.exatrkx.metrics import (
    EdgeTruth,
    StageEdges,
    edge_metrics,
    efficiency_vs,
    performance_summary,
    track_metrics,
    trackml_score,
    true_edges,
)

# Particle 1: 10 hits, particle 2: 6 hits, particle 3: 4 hits, 2 noise hits (id 0).
PID = np.array([1] * 10 + [2] * 6 + [3] * 4 + [0, 0], dtype=np.uint64)
PT = np.array([2.0] * 10 + [0.5] * 6 + [1.5] * 4 + [0.0, 0.0])
PERFECT = np.array([0] * 10 + [1] * 6 + [2] * 4 + [3, 4])


def test_perfect_tracks() -> None:
    m = track_metrics(PERFECT, PID)
    assert (m.n_particles, m.n_matched, m.efficiency) == (3, 3, 1.0)
    assert (m.n_tracks, m.n_fake, m.fake_rate) == (3, 0, 0.0)  # noise singletons: no track
    assert m.duplicate_rate == 0.0
    assert trackml_score(PERFECT, PID) == 1.0


def test_split_track_6_4_is_efficient_and_duplicated() -> None:
    labels = PERFECT.copy()
    labels[6:10] = 9  # particle 1: 6 + 4
    m = track_metrics(labels, PID)
    assert m.efficiency == 1.0 and m.fake_rate == 0.0
    assert m.n_duplicated == 1 and m.duplicate_rate == pytest.approx(1 / 3)
    assert trackml_score(labels, PID) == pytest.approx((6 + 6 + 4) / 20)


def test_split_track_5_5_is_duplicated_and_lost() -> None:
    labels = PERFECT.copy()
    labels[5:10] = 9
    m = track_metrics(labels, PID)
    assert m.n_matched == 2 and m.efficiency == pytest.approx(2 / 3)
    assert m.duplicate_rate == pytest.approx(1 / 3) and m.fake_rate == 0.0


def test_merged_tracks() -> None:
    labels = PERFECT.copy()
    labels[16:20] = 1  # particles 2 (6 hits) and 3 (4 hits) in one track: 6/10 from particle 2
    m = track_metrics(labels, PID)
    assert m.efficiency == pytest.approx(2 / 3) and m.fake_rate == 0.0 and m.n_tracks == 2
    # Two 5-hit particles merged: no majority -> the track is fake, both particles lost.
    pid = np.array([1] * 5 + [2] * 5, dtype=np.uint64)
    m = track_metrics(np.zeros(10, dtype=np.int64), pid)
    assert (m.efficiency, m.fake_rate, m.n_fake) == (0.0, 1.0, 1)
    assert trackml_score(np.zeros(10, dtype=np.int64), pid) == 0.0


def test_noise_track_unassigned_and_selection() -> None:
    labels = PERFECT.copy()
    labels[[18, 19, 20, 21]] = 7  # 2 hits of particle 3 + 2 noise: no majority -> fake
    m = track_metrics(labels, PID)
    assert m.n_fake == 1 and m.efficiency == pytest.approx(2 / 3)
    unassigned = np.full(PID.size, -1)
    m = track_metrics(unassigned, PID)
    assert m.efficiency == 0.0 and m.n_tracks == 0 and np.isnan(m.fake_rate)
    assert trackml_score(unassigned, PID) == 0.0
    # pT > 1 GeV selects particles 1 and 3; min_hits=5 drops particle 3.
    assert track_metrics(PERFECT, PID, pt=PT, pt_min=1.0).n_particles == 2
    assert track_metrics(PERFECT, PID, min_hits=5).n_particles == 2
    with pytest.raises(ValueError, match="pt"):
        track_metrics(PERFECT, PID, pt_min=1.0)


def test_binned_efficiency_and_summary() -> None:
    labels = PERFECT.copy()
    labels[16:20] = 1  # particle 3 (pT 1.5) lost
    b = efficiency_vs(labels, PID, PT, np.array([0.0, 1.0, 1.8, 10.0]))
    assert b.n_particles.tolist() == [1, 1, 1] and b.n_matched.tolist() == [1, 0, 1]
    assert b.efficiency.tolist() == [1.0, 0.0, 1.0]
    s = performance_summary(labels, PID, pt=PT, eta=np.zeros(PID.size))
    assert set(s) == {"all", "pt>1", "eff_vs_pt", "eff_vs_eta"}
    assert s["pt>1"].efficiency == 0.5  # type: ignore[attr-defined]


def test_trackml_weights() -> None:
    w = np.zeros(PID.size)
    w[:10] = 1.0  # only particle 1 counts
    labels = PERFECT.copy()
    labels[10:16] = 5
    labels[16:20] = 5  # particles 2+3 merged: irrelevant with these weights
    assert trackml_score(labels, PID, w) == 1.0
    labels[8:10] = 6
    assert trackml_score(labels, PID, w) == pytest.approx(0.8)


def test_true_edges_and_edge_metrics() -> None:
    pid = np.array([1, 1, 1, 2, 2, 0], dtype=np.uint64)
    r = np.array([3.0, 1.0, 2.0, 5.0, 4.0, 1.0])
    cons = true_edges(pid, r)
    assert cons.tolist() == [[1, 2, 4], [2, 0, 3]]  # ordered by r within each particle
    allp = true_edges(pid, r, mode="all_pairs")
    assert allp.shape == (2, 4)
    assert {tuple(e) for e in allp.T.tolist()} == {(1, 2), (1, 0), (2, 0), (4, 3)}
    assert true_edges(pid, mode="all_pairs").shape == (2, 4)
    pred = np.array([[2, 0, 3, 5], [1, 1, 4, 0]])  # (1,2) reversed, (0,1) skip, (3,4), noise
    m = edge_metrics(pred, pid, r)
    assert (m.n_true, m.n_pred, m.n_true_pred) == (3, 4, 2)
    assert m.efficiency == pytest.approx(2 / 3) and m.purity == 0.5
    m = edge_metrics(pred, pid, mode="all_pairs")
    assert (m.n_true, m.n_true_pred) == (4, 3) and m.purity == 0.75
    empty = edge_metrics(np.zeros((2, 0), np.int64), pid, r)
    assert empty.efficiency == 0.0 and np.isnan(empty.purity)


def test_edge_truth_shared_by_stages_gives_each_stage_its_own_counts() -> None:
    pid = np.array([1, 1, 1, 2, 2, 0], dtype=np.uint64)
    r = np.array([3.0, 1.0, 2.0, 5.0, 4.0, 1.0])
    truth = EdgeTruth.of(pid, r)  # consecutive truth: (1,2), (2,0), (4,3)
    pred = np.array([[2, 0, 3, 5, 1], [1, 1, 4, 0, 2]])  # (1,2) twice, skip, (3,4), noise
    stage = truth.stage(pred)
    # found: (1,2), (3,4); predicted: 4 distinct pairs, 3 of one particle
    assert stage == StageEdges(n_true=3, n_found=2, n_pred=4, n_pure=3)
    # the same figures as the two truth modes of edge_metrics
    cons, allp = edge_metrics(pred, pid, r), edge_metrics(pred, pid, mode="all_pairs")
    assert (stage.n_true, stage.n_found) == (cons.n_true, cons.n_true_pred)
    assert (stage.n_pred, stage.n_pure) == (allp.n_pred, allp.n_true_pred)
    # a second stage from the same truth, and the sum over stages
    kept = truth.stage(pred[:, :1])
    assert kept == StageEdges(3, 1, 1, 1)
    total = stage + kept
    assert total == StageEdges(6, 3, 5, 4)
    assert total.efficiency == 0.5 and total.purity == 0.8
    # pT selection: only particle 1 (pt 2) keeps truth edges
    pt = np.array([2.0, 2.0, 2.0, 0.5, 0.5, 0.0])
    assert EdgeTruth.of(pid, r, pt=pt, pt_min=1.0).stage(pred).n_true == 2
    with pytest.raises(ValueError, match="pt_min needs pt"):
        EdgeTruth.of(pid, r, pt_min=1.0)


def test_pt_selected_fake_rate_is_over_the_tracks_of_the_selection() -> None:
    """pT > 1 GeV: the fake rate's tracks are those whose leading particle (most of their
    space points, noise never leads) has pT > 1 GeV, not every track again."""
    labels = PERFECT.copy()
    labels[[18, 19, 20, 21]] = 7  # fake: 2 hits of particle 3 (pT 1.5) + 2 noise
    every = track_metrics(labels, PID)
    hi = track_metrics(labels, PID, pt=PT, pt_min=1.0)
    assert (every.n_tracks, every.n_fake) == (3, 1)  # particles 1, 2 and the fake
    assert (hi.n_tracks, hi.n_fake, hi.fake_rate) == (2, 1, 0.5)  # particle 1 + the fake
    # The fake's leading particle is soft (particle 2, pT 0.5, ahead of particle 3 on the
    # tie by id): outside the pT > 1 GeV tracks.
    labels = PERFECT.copy()
    labels[[14, 15, 18, 19, 20, 21]] = 7  # 2 of particle 2, 2 of particle 3, 2 noise
    hi = track_metrics(labels, PID, pt=PT, pt_min=1.0)
    assert (hi.n_tracks, hi.n_fake, hi.fake_rate) == (1, 0, 0.0)
    assert track_metrics(labels, PID).n_fake == 1
    # A noise-only track has no leading particle: a fake of "all", in no pT selection.
    pid = np.array([1] * 4 + [0] * 3, dtype=np.uint64)
    lab = np.array([0] * 4 + [1] * 3)
    pt = np.array([2.0] * 4 + [0.0] * 3)
    assert track_metrics(lab, pid).n_fake == 1
    hi = track_metrics(lab, pid, pt=pt, pt_min=1.0)
    assert (hi.n_tracks, hi.n_fake) == (1, 0)


def test_duplicate_rate_counts_found_particles() -> None:
    labels = PERFECT.copy()
    labels[6:10] = 9  # particle 1: 6 + 4, two majority tracks
    m = track_metrics(labels, PID)
    assert (m.n_duplicated, m.n_found) == (1, 3)
    assert m.duplicate_rate == m.n_duplicated / m.n_found
