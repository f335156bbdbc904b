"""The shipped models (``data/models``): physics on held-out simulated events, TorchScript
round trip, and bad input handled with a clear error or an empty result.

The bars here are below the benchmark figures (``docs/models.md``) because five events
hold only ~80 particles with pT > 1 GeV; the full figures come from
``sonic-exatrkx bench pipeline``.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from sonic_exatrkx.exatrkx import Pipeline, apply_cut
from sonic_exatrkx.exatrkx.metrics import (
    stage_edge_metrics,
    sum_edge_metrics,
    track_metrics,
)
from sonic_exatrkx.jobs.training import simulate_arrays
from sonic_exatrkx.paths import data_dir

MODELS = data_dir() / "models"
TEST_SEED = 4242  # not a training seed (training uses 1000 + k)


@pytest.fixture(scope="module")
def shipped() -> Pipeline:
    return Pipeline.from_directory(MODELS)


@pytest.fixture(scope="module")
def held_out() -> list[dict[str, np.ndarray]]:
    return list(simulate_arrays(0.0, TEST_SEED, 5))


def _merged_track_metrics(
    pipe: Pipeline, events: list[dict[str, np.ndarray]]
) -> tuple[object, object, list]:
    from sonic_exatrkx.exatrkx.metrics import merge_events

    labels, gnn_edges = [], []
    for a in events:
        feats = pipe.features(a["x"], a["y"], a["z"])
        res = pipe.run(feats, return_intermediates=True)
        labels.append(res.labels)
        r = feats[:, pipe.config.features.index("r")]
        kept = res.filtered_edges[:, apply_cut(res.gnn_scores, pipe.config.gnn.cut)]
        gnn_edges.append(stage_edge_metrics(kept, a["particle_id"], r))
    lab, pid, pt = merge_events(events, labels)
    hi = track_metrics(lab, pid, pt=pt, pt_min=1.0)
    every = track_metrics(lab, pid)
    return hi, every, gnn_edges


def test_shipped_files_are_small() -> None:
    files = {p.name: p.stat().st_size for p in MODELS.iterdir() if p.is_file()}
    for name in ("embedding.pt", "filter.pt", "gnn.pt", "config.json", "README.md"):
        assert name in files, f"{name} missing from {MODELS}"
    assert sum(files.values()) < 5_000_000


def test_physics_on_held_out_events(shipped: Pipeline, held_out: list) -> None:
    hi, every, gnn_edges = _merged_track_metrics(shipped, held_out)
    assert hi.n_particles >= 30
    # measured on these events: 0.988 / 0.017 / 0.0 (pT > 1) and 0.031 (all pT)
    assert hi.efficiency >= 0.90, hi
    assert every.fake_rate <= 0.05, every
    assert hi.duplicate_rate <= 0.05, hi
    # below 0.4 GeV a chain sometimes breaks at a pair missing from the graph (models
    # README), so over all pT the bar is looser (0.053 with graph radius 0.7)
    assert every.duplicate_rate <= 0.06, every
    m = sum_edge_metrics(gnn_edges)  # edges passing the GNN cut, as the benchmark's "gnn"
    # measured: 0.934 / 0.957 here (0.959 / 0.973 on the 20 benchmark events)
    assert m.efficiency >= 0.90, m
    assert m.purity >= 0.90, m


def test_neighbour_budget_binds_only_at_high_pileup(shipped: Pipeline, held_out: list) -> None:
    """The shipped operating point (docs/models.md): k = 32 for every event up to 50k
    space points (mu=0, mu=50), 16 at 100k (mu=200)."""
    g = shipped.config.graph
    assert g.max_k == 32 and g.max_k_for(50_000) == 32 and g.max_k_for(100_000) == 16
    assert all(g.max_k_for(a["x"].size) == 32 for a in held_out)
    # where it binds, the whole pipeline runs as with the lowered max_k
    a = held_out[0]
    feats = shipped.features(a["x"], a["y"], a["z"])
    n = feats.shape[0]

    def with_graph(**kw: int) -> Pipeline:
        cfg = replace(shipped.config, graph=replace(g, **kw))
        return Pipeline(shipped.embedding, shipped.filter, shipped.gnn, cfg)

    budget = with_graph(neighbour_budget=8 * n + 7).run(feats, return_intermediates=True)
    eight = with_graph(max_k=8, neighbour_budget=0).run(feats, return_intermediates=True)
    full = shipped.run(feats, return_intermediates=True)
    assert budget.edges.shape[1] < full.edges.shape[1]
    for key in ("edges", "gnn_scores", "labels"):
        assert np.array_equal(getattr(budget, key), getattr(eight, key)), key


def test_torchscript_export_reloads_identical(
    shipped: Pipeline, held_out: list, tmp_path: Path
) -> None:
    a = held_out[0]
    feats = shipped.features(a["x"], a["y"], a["z"])
    before = shipped.run(feats, return_intermediates=True)
    shipped.save(tmp_path / "copy")
    again = Pipeline.from_directory(tmp_path / "copy").run(feats, return_intermediates=True)
    assert np.array_equal(before.embedding, again.embedding)
    assert np.array_equal(before.edges, again.edges)
    assert np.array_equal(before.filter_scores, again.filter_scores)
    assert np.array_equal(before.gnn_scores, again.gnn_scores)
    assert np.array_equal(before.labels, again.labels)


def test_shipped_files_match_the_model_code(shipped: Pipeline, held_out: list) -> None:
    """The .pt files carry their own TorchScript code: rebuilt from today's models.py with
    the shipped weights, the pipeline must give the same bits (else re-export them)."""
    from sonic_exatrkx.exatrkx.models import Embedding, Filter, InteractionNetwork

    cfg = shipped.config
    rebuilt = []
    for cls, name, c in ((Embedding, "embedding", cfg.embedding), (Filter, "filter", cfg.filter),
                         (InteractionNetwork, "gnn", cfg.gnn)):
        m = cls(c)
        m.load_state_dict(getattr(shipped, name).state_dict())
        rebuilt.append(m.eval())
    fresh = Pipeline(*rebuilt, cfg)
    a = held_out[1]
    feats = shipped.features(a["x"], a["y"], a["z"])
    want = shipped.run(feats, return_intermediates=True)
    got = fresh.run(feats, return_intermediates=True)
    for key in ("embedding", "edges", "filter_scores", "gnn_scores", "labels"):
        assert np.array_equal(getattr(want, key), getattr(got, key)), key


@pytest.mark.parametrize("n", [0, 1, 2])
def test_tiny_events(shipped: Pipeline, n: int) -> None:
    xyz = np.array([[40.0, 5.0, 10.0], [75.0, 9.0, 20.0]])[:n]
    labels = shipped(xyz[:, 0], xyz[:, 1], xyz[:, 2])
    assert labels.shape == (n,)
    assert labels.dtype == np.int64


def test_all_noise_event_gives_no_real_tracks(shipped: Pipeline) -> None:
    rng = np.random.default_rng(3)
    layers = np.array([32.0, 72.0, 116.0, 172.0, 260.0, 360.0, 500.0, 660.0, 820.0, 1020.0])
    r = rng.choice(layers, 400)
    phi = rng.uniform(-np.pi, np.pi, 400)
    z = rng.uniform(-1000.0, 1000.0, 400)
    labels = shipped(r * np.cos(phi), r * np.sin(phi), z)
    assert labels.shape == (400,)
    sizes = np.bincount(labels[labels >= 0])
    # random points may pair up now and then, but no long chains are invented
    assert (sizes >= 3).sum() <= 20


def test_duplicated_space_points(shipped: Pipeline, held_out: list) -> None:
    a = held_out[1]
    x, y, z = (np.concatenate([a[k], a[k][:50]]) for k in ("x", "y", "z"))
    res = shipped.run(shipped.features(x, y, z), return_intermediates=True)
    n = a["x"].size
    assert res.labels.shape == (n + 50,)
    assert np.all((res.edges >= 0) & (res.edges < n + 50))
    assert not np.any(res.edges[0] == res.edges[1])  # no self loops


def test_nan_features_name_the_stage(shipped: Pipeline, held_out: list) -> None:
    a = held_out[0]
    feats = shipped.features(a["x"], a["y"], a["z"])
    feats[7, 1] = np.nan
    with pytest.raises(ValueError, match="stage 'embedding'.*row 7"):
        shipped.run(feats)
    with pytest.raises(ValueError, match="stage 'features'"):
        shipped.features(np.array([1.0, np.nan]), np.zeros(2), np.zeros(2))


def test_missing_model_file_names_the_stage(tmp_path: Path) -> None:
    d = tmp_path / "models"
    shutil.copytree(MODELS, d)
    (d / "gnn.pt").unlink()
    with pytest.raises(FileNotFoundError, match="stage 'gnn'"):
        Pipeline.from_directory(d)
    with pytest.raises(FileNotFoundError, match="model directory not found"):
        Pipeline.from_directory(tmp_path / "nowhere")


def test_wrong_input_width_names_the_stage(tmp_path: Path, shipped: Pipeline) -> None:
    d = tmp_path / "models"
    shutil.copytree(MODELS, d)
    cfg = json.loads((d / "config.json").read_text())
    # keep the first three scales: models with geometric inputs check them against the config
    scales = cfg["features"]["scales"][:3] + [1.0]
    cfg["features"] = {"names": ["r", "phi", "z", "eta"], "scales": scales}
    for stage in ("embedding", "filter", "gnn"):
        cfg[stage]["in_features"] = 4
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="stage 'embedding'.*expects 3 features"):
        Pipeline.from_directory(d)
    with pytest.raises(ValueError, match="stage 'embedding'.*shape"):
        shipped.run(np.zeros((10, 4), dtype=np.float32))


def test_cuts_apply_to_logits(shipped: Pipeline, held_out: list) -> None:
    a = held_out[2]
    res = shipped.run(shipped.features(a["x"], a["y"], a["z"]), return_intermediates=True)
    keep = apply_cut(res.gnn_scores, shipped.config.gnn.cut)
    mask = shipped.track_edge_mask(res.filtered_edges, res.gnn_scores)
    assert not np.any(mask & ~keep)  # the track builder only ever drops edges past the cut
    assert np.array_equal(res.track_edges, res.filtered_edges[:, mask])


def test_a_model_file_replaced_by_another_stage_is_refused(tmp_path: Path) -> None:
    """gnn.pt copied over filter.pt used to load and run (fake rate 0.3 -> 5.9 %)."""
    d = tmp_path / "models"
    shutil.copytree(MODELS, d)
    shutil.copyfile(d / "gnn.pt", d / "filter.pt")
    with pytest.raises(ValueError) as err:
        Pipeline.from_directory(d)
    message = str(err.value)
    assert message.startswith(f"{d / 'filter.pt'}: not the filter model config.json was "
                              "written with (sha256 ")
    record = json.loads((MODELS / "config.json").read_text())["model_files"]
    assert {f: e["stage"] for f, e in record.items()} == {
        "embedding.pt": "embedding", "filter.pt": "filter", "gnn.pt": "gnn"}
