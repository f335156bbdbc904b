"""Pipeline composition, save/load, threads, determinism and bad input."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import faiss
import numpy as np
import pytest
import torch

from sonic_exatrkx.exatrkx import (
    EmbeddingConfig,
    FeatureConfig,
    FilterConfig,
    GNNConfig,
    GraphConfig,
    Pipeline,
    PipelineConfig,
    load_models,
)
from tests.exatrkx.helpers import toy_event

SMALL = PipelineConfig(
    embedding=EmbeddingConfig(hidden=16, n_layers=2),
    filter=FilterConfig(hidden=16, n_layers=2, cut=0.3),
    gnn=GNNConfig(hidden=8, n_layers=1, n_iterations=2, cut=0.45),
    graph=GraphConfig(radius=1.5, max_k=16, orientation="inner_outer"),
)


@pytest.fixture(scope="module")
def pipe() -> Pipeline:
    return Pipeline.from_config(SMALL, seed=0)


@pytest.fixture(scope="module")
def event() -> dict[str, np.ndarray]:
    return toy_event(n_tracks=30, seed=5, noise=20)


def test_run_with_intermediates(pipe: Pipeline, event: dict[str, np.ndarray]) -> None:
    feats = pipe.features(event["x"], event["y"], event["z"])
    res = pipe.run(feats, return_intermediates=True)
    n = feats.shape[0]
    assert res.labels.shape == (n,) and res.labels.dtype == np.int64
    stages = {"embedding", "build_edges", "filter", "gnn", "build_tracks", "total"}
    assert set(res.timings) == stages
    assert all(t >= 0 for t in res.timings.values())
    assert res.embedding is not None and res.embedding.shape == (n, 8)
    e, fe, te = res.edges, res.filtered_edges, res.track_edges
    assert e is not None and fe is not None and te is not None
    assert res.filter_scores is not None and res.filter_scores.shape == (e.shape[1],)
    assert res.gnn_scores is not None and res.gnn_scores.shape == (fe.shape[1],)
    assert res.n_edges == {"graph": e.shape[1], "filter": fe.shape[1], "gnn": te.shape[1]}
    r = feats[:, 0]
    assert np.all(r[e[0]] <= r[e[1]])  # inner -> outer orientation
    assert np.array_equal(pipe(event["x"], event["y"], event["z"]), res.labels)
    lean = pipe.run(feats)
    assert lean.edges is None and np.array_equal(lean.labels, res.labels)


def test_deterministic(pipe: Pipeline, event: dict[str, np.ndarray]) -> None:
    feats = pipe.features(event["x"], event["y"], event["z"])
    a = pipe.run(feats, return_intermediates=True)
    b = pipe.run(feats.copy(), return_intermediates=True)
    assert np.array_equal(a.labels, b.labels)
    assert np.array_equal(a.gnn_scores, b.gnn_scores)  # type: ignore[arg-type]


def test_save_and_load_identical(
    pipe: Pipeline, event: dict[str, np.ndarray], tmp_path: Path
) -> None:
    pipe.save(tmp_path)
    files = {p.name for p in tmp_path.iterdir()}
    assert files >= {"embedding.pt", "filter.pt", "gnn.pt", "config.json"}
    loaded = Pipeline.from_directory(tmp_path)
    assert loaded.config == pipe.config
    feats = pipe.features(event["x"], event["y"], event["z"])
    a = pipe.run(feats, return_intermediates=True)
    b = loaded.run(feats, return_intermediates=True)
    for name in ("labels", "embedding", "edges", "filter_scores", "gnn_scores"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    tuned = Pipeline.from_directory(tmp_path, num_threads=None)
    assert tuned.config.num_threads is None


def test_yaml_config(pipe: Pipeline, tmp_path: Path) -> None:
    yaml = pytest.importorskip("yaml")
    pipe.save(tmp_path)
    cfg = (tmp_path / "config.json").read_text()
    (tmp_path / "config.json").unlink()
    import json

    (tmp_path / "config.yaml").write_text(yaml.safe_dump(json.loads(cfg)))
    assert load_models(tmp_path)[3] == pipe.config


def test_cuts_are_tunable(pipe: Pipeline, event: dict[str, np.ndarray]) -> None:
    feats = pipe.features(event["x"], event["y"], event["z"])
    loose = Pipeline(pipe.embedding, pipe.filter, pipe.gnn, SMALL.with_cuts(0.0, 0.0))
    tight = Pipeline(pipe.embedding, pipe.filter, pipe.gnn, SMALL.with_cuts(1.0, 1.0))
    rl, rt = loose.run(feats), tight.run(feats)
    assert rl.n_edges["filter"] == rl.n_edges["graph"] and rl.n_edges["gnn"] == rl.n_edges["graph"]
    assert rt.n_edges["filter"] == 0 and rt.n_tracks == feats.shape[0]


def test_num_threads_sets_torch_and_faiss(pipe: Pipeline, event: dict[str, np.ndarray]) -> None:
    feats = pipe.features(event["x"], event["y"], event["z"])
    two = Pipeline(pipe.embedding, pipe.filter, pipe.gnn, replace(SMALL, num_threads=2))
    try:
        two.run(feats)
        assert torch.get_num_threads() == 2 and faiss.omp_get_max_threads() == 2
        pipe.run(feats)
        assert torch.get_num_threads() == 1 and faiss.omp_get_max_threads() == 1
    finally:
        torch.set_num_threads(1)
        faiss.omp_set_num_threads(1)


@pytest.mark.parametrize("n", [0, 1, 2])
def test_tiny_events(pipe: Pipeline, n: int) -> None:
    x = np.array([30.0, 31.0])[:n]
    y = np.array([0.0, 0.5])[:n]
    z = np.array([10.0, 10.5])[:n]
    labels = pipe(x, y, z)
    assert labels.shape == (n,) and labels.dtype == np.int64
    if n:
        assert labels[0] == 0 and labels.max() < n
    if n == 2:
        res = pipe.run(pipe.features(x, y, z), return_intermediates=True)
        assert res.edges is not None and res.edges.shape == (2, 1)  # two close points
        assert res.edges.tolist() == [[0], [1]]  # inner (r=30) -> outer


def test_nan_features_name_stage_and_row(pipe: Pipeline) -> None:
    feats = np.zeros((10, 3), np.float32)
    feats[6, 1] = np.nan
    with pytest.raises(ValueError, match=r"stage 'embedding'.*NaN.*row 6"):
        pipe.run(feats)
    with pytest.raises(ValueError, match=r"stage 'features'.*row 1"):
        pipe([1.0, np.inf], [0.0, 0.0], [0.0, 0.0])


def test_wrong_width_is_caught_before_torch(event: dict[str, np.ndarray]) -> None:
    calls = []

    class Spy(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            calls.append(x.shape)
            return x

    base = Pipeline.from_config(SMALL)
    spy = Pipeline(Spy(), base.filter, base.gnn, SMALL)
    with pytest.raises(ValueError, match=r"stage 'embedding'.*\[N, 3\].*\(5, 4\)"):
        spy.run(np.zeros((5, 4), np.float32))
    with pytest.raises(ValueError, match=r"stage 'embedding'.*\[N, 3\]"):
        spy.run(np.zeros(5, np.float32))
    assert calls == []


def test_model_width_must_match_config() -> None:
    wide = Pipeline.from_config(
        replace(
            SMALL,
            features=FeatureConfig(("r", "phi", "z", "eta"), (1000.0, 3.14159, 1000.0, 1.0)),
            embedding=replace(SMALL.embedding, in_features=4),
            filter=replace(SMALL.filter, in_features=4),
            gnn=replace(SMALL.gnn, in_features=4),
        )
    )
    base = Pipeline.from_config(SMALL)
    with pytest.raises(ValueError, match="stage 'filter': model expects 4 features, config says 3"):
        Pipeline(base.embedding, wide.filter, base.gnn, SMALL)


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="stage 'filter' expects 4"):
        PipelineConfig(filter=FilterConfig(in_features=4))
    with pytest.raises(ValueError, match="inner_outer"):
        PipelineConfig(
            features=FeatureConfig(names=("x", "y", "z"), scales=(1.0, 1.0, 1.0)),
        )
    ok = PipelineConfig(
        features=FeatureConfig(names=("x", "y", "z"), scales=(1.0, 1.0, 1.0)),
        graph=GraphConfig(orientation="reference"),
    )
    assert PipelineConfig.from_dict(ok.to_dict()) == ok
    with pytest.raises(ValueError, match="unknown key 'radius'"):
        PipelineConfig.from_dict({**ok.to_dict(), "radius": 1.0})
    with pytest.raises(ValueError, match="num_threads"):
        PipelineConfig(num_threads=0)


def test_missing_files_name_the_path(pipe: Pipeline, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere"):
        Pipeline.from_directory(tmp_path / "nowhere")
    pipe.save(tmp_path)
    (tmp_path / "gnn.pt").unlink()
    with pytest.raises(FileNotFoundError, match=r"stage 'gnn'.*gnn\.pt"):
        Pipeline.from_directory(tmp_path)
    (tmp_path / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"config\.json"):
        Pipeline.from_directory(tmp_path)


def test_stage_methods_compose_to_run(pipe: Pipeline, event: dict[str, np.ndarray]) -> None:
    feats = pipe.prepare(pipe.features(event["x"], event["y"], event["z"]))
    emb = pipe.embed(feats)
    edges = pipe.graph(emb, feats)
    f_edges = edges[:, pipe.filter_edge_mask(edges, pipe.score_filter(feats, edges), feats)]
    labels = pipe.tracks(feats.shape[0], f_edges, pipe.score_gnn(feats, f_edges))
    res = pipe.run(feats, return_intermediates=True)
    assert np.array_equal(emb, res.embedding) and np.array_equal(edges, res.edges)
    assert np.array_equal(f_edges, res.filtered_edges)
    assert np.array_equal(labels, res.labels)


def test_filter_degree_cap(pipe: Pipeline, event: dict[str, np.ndarray]) -> None:
    """``filter.max_degree``: the GNN sees each space point's best few filtered edges, a
    subset of those past the cut, in the same order."""
    feats = pipe.features(event["x"], event["y"], event["z"])
    whole = pipe.run(feats, return_intermediates=True)
    assert whole.filtered_edges is not None and whole.edges is not None
    out_degree = np.bincount(whole.filtered_edges[0]).max()
    assert out_degree > 2  # else the cap below would not act
    cfg = replace(SMALL, filter=replace(SMALL.filter, max_degree=2))
    capped = Pipeline(pipe.embedding, pipe.filter, pipe.gnn, cfg).run(feats, True)
    fe = capped.filtered_edges
    assert fe is not None and 0 < fe.shape[1] < whole.filtered_edges.shape[1]
    for side in (0, 1):
        assert np.bincount(fe[side]).max() <= 2
    passed = {tuple(c) for c in whole.filtered_edges.T.tolist()}
    assert {tuple(c) for c in fe.T.tolist()} <= passed
    keys = fe[0] * feats.shape[0] + fe[1]
    assert np.all(np.diff(keys) > 0)  # still sorted by src, then dst
    with pytest.raises(ValueError, match="max_degree"):
        FilterConfig(max_degree=-1)
    assert PipelineConfig.from_dict(cfg.to_dict()) == cfg


def test_configuration_problems_have_their_own_error_type(tmp_path) -> None:
    from sonic_exatrkx.exatrkx import ExaTrkXConfigError, GraphConfig, MissingModelFileError
    from sonic_exatrkx.exatrkx.pipeline import load_models

    with pytest.raises(ExaTrkXConfigError, match="GraphConfig: max_k must be an integer >= 1"):
        GraphConfig(max_k=0)
    with pytest.raises(ExaTrkXConfigError, match="unknown key 'nonsense'"):
        PipelineConfig.from_dict({"nonsense": 1})
    with pytest.raises(MissingModelFileError, match="model directory not found") as err:
        load_models(tmp_path / "nowhere")
    # still the standard types, for callers written against them
    assert isinstance(err.value, FileNotFoundError) and isinstance(err.value, ValueError)
