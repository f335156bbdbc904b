"""End-to-end training on toy tracks: the trained pipeline must find them."""

from __future__ import annotations

import time
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
from sonic_exatrkx.exatrkx.metrics import track_metrics
from sonic_exatrkx.exatrkx.training import TrainingConfig, TrainingEvent, train_pipeline
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
    t0 = time.perf_counter()
    pipe, hist = train_pipeline(events, CONFIG, TRAINING, output_dir=tmp_path)
    elapsed = time.perf_counter() - t0
    assert elapsed < 45.0, f"training took {elapsed:.1f} s"
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
    print(f"toy efficiency {effs}, fake rate {fakes}, chance {chance}, {elapsed:.1f} s")
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
