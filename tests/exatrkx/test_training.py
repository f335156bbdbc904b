"""End-to-end training on toy tracks: the trained pipeline must find them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sonic_exatrkx.exatrkx import (
    EmbeddingConfig,
    FilterConfig,
    GNNConfig,
    GraphConfig,
    Pipeline,
    PipelineConfig,
    compute_features,
)
from sonic_exatrkx.exatrkx.errors import ExaTrkXConfigError
from sonic_exatrkx.exatrkx.metrics import track_metrics
from sonic_exatrkx.exatrkx.training import (
    TrainingConfig,
    TrainingEvent,
    phi_sectors,
    train_pipeline,
)
from tests.exatrkx.helpers import toy_event

CONFIG = PipelineConfig(
    embedding=EmbeddingConfig(hidden=64, n_layers=3),
    filter=FilterConfig(hidden=64, n_layers=2),
    # The reference's GNN cut: connected components need purity more than efficiency.
    gnn=GNNConfig(hidden=32, n_layers=2, n_iterations=3, cut=0.75),
    graph=GraphConfig(radius=1.0, max_k=64, orientation="inner_outer"),
)
TRAINING = TrainingConfig(
    embedding_epochs=30,
    filter_epochs=30,
    gnn_epochs=20,
    embedding_lr=1e-2,
    filter_lr=1e-2,
    gnn_lr=3e-3,
    progress=False,
)


def _event(seed: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    toy = toy_event(n_tracks=25, seed=seed, noise=10)
    feats = compute_features(toy["x"], toy["y"], toy["z"], CONFIG.features)
    return {"features": feats, "particle_id": toy["particle_id"], "pt": toy["pt"]}, toy


def test_training_finds_toy_tracks(tmp_path: Path) -> None:
    events = [_event(seed)[0] for seed in range(12)]
    pipe, hist = train_pipeline(events, CONFIG, TRAINING, output_dir=tmp_path)
    # (Training time is a benchmark figure, `sonic-exatrkx train`; not asserted on shared
    # cores.)
    for losses in (hist.embedding_loss, hist.filter_loss, hist.gnn_loss):
        assert losses[-1] < losses[0]
    # Each stage raises the edge purity on the training events.
    pur = [hist.edge_metrics[s].purity for s in ("graph", "filter", "gnn")]
    assert pur[0] <= pur[1] < pur[2] and pur[2] > 0.85
    files = {p.name for p in tmp_path.iterdir()}
    assert {"embedding.pt", "filter.pt", "gnn.pt", "config.json", "loss_curves.png"} <= files

    rng = np.random.default_rng(0)
    loaded = Pipeline.from_directory(tmp_path)
    untrained = Pipeline.from_config(CONFIG, seed=1)
    effs, chance, fakes = [], [], []
    for seed in (100, 101, 102):
        ev, toy = _event(seed)
        labels = pipe.run(ev["features"]).labels
        assert np.array_equal(labels, loaded(toy["x"], toy["y"], toy["z"]))
        m = track_metrics(labels, toy["particle_id"])
        effs.append(m.efficiency)
        fakes.append(m.fake_rate)
        # Chance: the same track sizes, hits assigned at random; and untrained models.
        chance.append(track_metrics(rng.permutation(labels), toy["particle_id"]).efficiency)
        random_models = untrained.run(ev["features"]).labels
        chance.append(track_metrics(random_models, toy["particle_id"]).efficiency)
    print(f"toy efficiency {effs}, fake rate {fakes}, chance {chance}")
    assert max(chance) <= 0.05
    assert np.mean(effs) >= 0.5, effs
    assert np.mean(fakes) <= 0.35, fakes


def test_training_event_validation() -> None:
    with pytest.raises(ValueError, match="do not match"):
        TrainingEvent(np.zeros((3, 3), np.float32), np.zeros(2, np.uint64))
    with pytest.raises(ValueError, match="row 1"):
        TrainingEvent(np.array([[0, 0, 0], [np.nan, 0, 0]], np.float32), np.zeros(2, np.uint64))
    with pytest.raises(ValueError, match="stage 'training'"):
        train_pipeline([{"features": np.zeros((4, 2), np.float32), "particle_id": np.ones(4)}])
    with pytest.raises(ValueError, match="no events"):
        train_pipeline([])
    no_pt = {"features": np.zeros((4, 3), np.float32), "particle_id": np.ones(4)}
    with pytest.raises(ValueError, match="no pt"):
        train_pipeline([no_pt], training=TrainingConfig(pt_min=1.0, progress=False))


def test_phi_sectors_partition_the_event() -> None:
    ev_dict, toy = _event(3)
    ev = TrainingEvent.coerce(ev_dict)
    phi = np.arctan2(toy["y"], toy["x"])
    parts = phi_sectors(ev, 4, phi)
    assert len(parts) == 4
    # every space point lands in exactly one wedge, the one its phi lies in, with its own
    # truth and pT (wedges keep the event's row order)
    wedge = np.floor((phi + np.pi) / (np.pi / 2)).astype(int)
    order = np.argsort(wedge, kind="stable")
    assert [p.particle_id.size for p in parts] == np.bincount(wedge, minlength=4).tolist()
    assert np.array_equal(np.concatenate([p.features for p in parts]), ev.features[order])
    assert np.array_equal(np.concatenate([p.particle_id for p in parts]), ev.particle_id[order])
    assert np.array_equal(np.concatenate([p.pt for p in parts]), ev.pt[order])
    assert phi_sectors(ev, 1, phi) == [ev]
    with pytest.raises(ValueError, match="integer >= 1"):
        phi_sectors(ev, 0, phi)
    with pytest.raises(ValueError, match="phi values"):
        phi_sectors(ev, 2, phi[:-1])


def test_signal_threshold_leaves_low_pt_true_edges_out_of_the_loss() -> None:
    from sonic_exatrkx.exatrkx.training import _edge_weights

    pid = np.array([1, 1, 2, 2, 0], dtype=np.uint64)
    pt = np.array([2.0, 2.0, 0.3, 0.3, 0.0], dtype=np.float32)
    ev = TrainingEvent(np.zeros((5, 3), np.float32), pid, pt)
    # true high-pT, true low-pT, fake (1 -> 2), noise
    edges = np.array([[0, 2, 1, 3], [1, 3, 2, 4]])
    same = np.array([True, True, False, False])
    assert _edge_weights(ev, edges, same, TrainingConfig()).tolist() == [1, 1, 1, 1]
    assert _edge_weights(ev, edges, same, TrainingConfig(pt_min=0.5)).tolist() == [1, 0, 1, 1]
    with pytest.raises(ValueError, match="no pt"):
        _edge_weights(TrainingEvent(ev.features, pid), edges, same, TrainingConfig(pt_min=0.5))


def test_pt_weight_raises_true_high_pt_edges_only() -> None:
    from sonic_exatrkx.exatrkx.training import _edge_weights

    pid = np.array([1, 1, 2, 2, 3, 3, 0], dtype=np.uint64)
    pt = np.array([2.5, 2.5, 0.3, 0.3, 9.0, 9.0, 0.0], dtype=np.float32)
    ev = TrainingEvent(np.zeros((7, 3), np.float32), pid, pt)
    # true 2.5 GeV, true 0.3 GeV, true 9 GeV, fake from a 9 GeV point, noise
    edges = np.array([[0, 2, 4, 5, 3], [1, 3, 5, 0, 6]])
    same = np.array([True, True, True, False, False])
    weighted = TrainingConfig(pt_weight_max=4.0)
    assert _edge_weights(ev, edges, same, weighted).tolist() == [2.5, 1, 4, 1, 1]
    both = TrainingConfig(pt_min=0.5, pt_weight_max=4.0)
    assert _edge_weights(ev, edges, same, both).tolist() == [2.5, 0, 4, 1, 1]
    with pytest.raises(ExaTrkXConfigError, match="pt_weight_max"):
        TrainingConfig(pt_weight_max=0.5)


def test_saved_config_may_change_inference_settings_only(tmp_path: Path) -> None:
    from dataclasses import replace

    quick = TrainingConfig(embedding_epochs=1, filter_epochs=1, gnn_epochs=1, progress=False,
                           plots=False)
    events = [_event(seed)[0] for seed in range(2)]
    wider = replace(CONFIG, graph=replace(CONFIG.graph, radius=1.2), gnn=replace(CONFIG.gnn,
                                                                                 cut=0.5))
    train_pipeline(events, CONFIG, quick, output_dir=tmp_path, saved_config=wider)
    loaded = Pipeline.from_directory(tmp_path).config
    assert loaded.graph.radius == 1.2 and loaded.gnn.cut == 0.5
    other = replace(CONFIG, embedding=replace(CONFIG.embedding, hidden=32))
    with pytest.raises(ValueError, match="another embedding model"):
        train_pipeline(events, CONFIG, quick, output_dir=tmp_path / "x", saved_config=other)


def test_degree_cap_is_an_inference_setting(tmp_path: Path) -> None:
    """``filter.max_degree`` is written for inference, but the GNN trains on every edge past
    the filter cut (training on the capped graphs was measured worse)."""
    from dataclasses import replace

    quick = TrainingConfig(embedding_epochs=1, filter_epochs=1, gnn_epochs=1, progress=False,
                           plots=False)
    events = [_event(seed)[0] for seed in range(2)]
    capped = replace(CONFIG, filter=replace(CONFIG.filter, cut=0.0, max_degree=1))
    _, hist = train_pipeline(events, capped, quick, output_dir=tmp_path)
    n_nodes = sum(ev["features"].shape[0] for ev in events)
    assert hist.edge_metrics["filter"].n_pred == hist.edge_metrics["graph"].n_pred > n_nodes
    assert Pipeline.from_directory(tmp_path).config.filter.max_degree == 1


def test_the_gnn_trains_on_graphs_within_the_edge_budget(tmp_path: Path) -> None:
    """``gnn_input_max_edges`` cuts each training event's GNN input to the best filter
    scores, as ``filter.max_edges`` does at inference (written to config.json)."""
    from dataclasses import replace

    events = [_event(seed)[0] for seed in range(2)]
    budget = 40
    quick = TrainingConfig(embedding_epochs=1, filter_epochs=1, gnn_epochs=1, progress=False,
                           plots=False, gnn_input_max_edges=budget)
    capped = replace(CONFIG, filter=replace(CONFIG.filter, cut=0.0, max_edges=budget * 2))
    _, hist = train_pipeline(events, capped, quick, output_dir=tmp_path)
    assert hist.edge_metrics["graph"].n_pred > len(events) * budget
    assert hist.edge_metrics["filter"].n_pred == len(events) * budget
    assert Pipeline.from_directory(tmp_path).config.filter.max_edges == budget * 2
    with pytest.raises(ValueError, match="gnn_input_max_edges"):
        TrainingConfig(gnn_input_max_edges=-1)


def test_budget_weights_mark_the_ranking_errors_at_the_budget() -> None:
    """False edges among the ``budget`` best scores and true edges below them weigh
    ``factor``; nothing changes where the budget does not bind."""
    import torch

    from sonic_exatrkx.exatrkx.training import budget_weights

    logits = torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0, 0.0])
    y = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 0.0])
    # best three: 5 (true, right), 4 (false: wrong), 3 (true, right); below: 2 (true: wrong)
    assert budget_weights(logits, y, 3, 4.0).tolist() == [1, 4, 1, 4, 1, 1]
    assert budget_weights(logits, y, 6, 4.0) is None  # every edge fits
    assert budget_weights(logits, y, 0, 4.0) is None  # no budget
    assert budget_weights(logits, y, 3, 1.0) is None  # off
    with pytest.raises(ExaTrkXConfigError, match="filter_budget_weight"):
        TrainingConfig(filter_budget_weight=0.5)


def test_budget_weight_changes_only_the_filter_of_events_over_the_budget() -> None:
    """Events within the budget train the filter exactly as without the weight (the
    sparse events' cut is not what the weight is for); events over it train another."""
    import torch

    events = [_event(seed)[0] for seed in range(2)]
    n_graph = min(e.shape[1] for e in _graphs(events))

    def filter_state(budget: int, weight: float) -> dict[str, torch.Tensor]:
        tcfg = TrainingConfig(embedding_epochs=1, filter_epochs=2, gnn_epochs=0,
                              progress=False, plots=False, gnn_input_max_edges=budget,
                              filter_budget_weight=weight)
        pipe, _ = train_pipeline(events, CONFIG, tcfg)
        return pipe.filter.state_dict()

    def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
        return all(torch.equal(a[k], b[k]) for k in a)

    roomy = 10 * n_graph
    assert same(filter_state(roomy, 1.0), filter_state(roomy, 8.0))
    tight = n_graph // 4
    assert not same(filter_state(tight, 1.0), filter_state(tight, 8.0))


def _graphs(events: list[dict[str, np.ndarray]]) -> list[np.ndarray]:
    """The training graphs of ``events`` after one embedding epoch (as the tests train)."""
    from sonic_exatrkx.exatrkx.training import _graph

    tcfg = TrainingConfig(embedding_epochs=1, filter_epochs=0, gnn_epochs=0, progress=False,
                          plots=False)
    pipe, _ = train_pipeline(events, CONFIG, tcfg)
    assert pipe.embedding is not None
    return [_graph(pipe.embedding, TrainingEvent.coerce(e), CONFIG) for e in events]


def test_training_is_deterministic() -> None:
    """Same events and seed: the same weights and losses, bit for bit (the random numbers of
    the shared optimisation loop are drawn in one fixed order)."""
    import torch

    quick = TrainingConfig(embedding_epochs=2, filter_epochs=2, gnn_epochs=1, max_pairs=20,
                           pt_min=0.5, cosine_lr=True, progress=False, plots=False)
    events = [_event(seed)[0] for seed in range(2)]
    runs = [train_pipeline(events, CONFIG, quick) for _ in range(2)]
    (a, hist_a), (b, hist_b) = runs
    assert hist_a.embedding_loss == hist_b.embedding_loss
    assert hist_a.filter_loss == hist_b.filter_loss and hist_a.gnn_loss == hist_b.gnn_loss
    for stage in ("embedding", "filter", "gnn"):
        sa, sb = getattr(a, stage).state_dict(), getattr(b, stage).state_dict()
        assert sa.keys() == sb.keys()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
