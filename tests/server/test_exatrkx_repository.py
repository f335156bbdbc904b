"""The ExaTrkX model repository: generated configs, the staged chain, and serving it for real.

The served labels must equal the in-process ``Pipeline.run`` labels, for the custom-backend
model (whole pipeline) and for the ensemble of per-stage models.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from sonic_exatrkx.exatrkx import Pipeline, PipelineConfig, sigmoid
from sonic_exatrkx.server import ModelConfigError, TritonServer
from sonic_exatrkx.server.exatrkx_repository import (
    ENSEMBLE_MODEL,
    PIPELINE_MODEL,
    STAGE_MODELS,
    ExaTrkXRepositoryOptions,
    write_exatrkx_repository,
)
from sonic_exatrkx.server.exatrkx_stages import run_chain

MAX_SPACEPOINTS = 1000


def _event(n_tracks: int, seed: int) -> np.ndarray:
    """Positions (mm) of toy tracks crossing barrel layers, plus a little noise."""
    rng = np.random.default_rng(seed)
    layers = np.array([32.0, 72.0, 116.0, 172.0, 260.0, 360.0, 500.0, 660.0])
    phi0 = rng.uniform(-3.0, 3.0, n_tracks)
    eta = rng.uniform(-2.0, 2.0, n_tracks)
    r = np.tile(layers, n_tracks) + rng.normal(0, 0.5, n_tracks * layers.size)
    phi = np.repeat(phi0, layers.size) + 1e-4 * r
    z = r * np.sinh(np.repeat(eta, layers.size))
    return np.stack([r * np.cos(phi), r * np.sin(phi), z])


@pytest.fixture(scope="module")
def pipeline_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Pipeline]:
    """An untrained (seeded) pipeline whose GNN cut keeps ~1% of edges: non-trivial tracks."""
    torch.set_num_threads(1)
    pipe = Pipeline.from_config(PipelineConfig().with_cuts(filter_cut=0.5), seed=1)
    x, y, z = _event(12, seed=0)
    scores = pipe.run(pipe.features(x, y, z), return_intermediates=True).gnn_scores
    cut = float(np.quantile(sigmoid(scores), 0.99))
    pipe = Pipeline(pipe.embedding, pipe.filter, pipe.gnn, pipe.config.with_cuts(gnn_cut=cut))
    out = tmp_path_factory.mktemp("exatrkx-models")
    pipe.save(out)
    (out / "training-log.txt").write_text("not served")
    return out, Pipeline.from_directory(out)


def test_generated_configs(pipeline_dir: tuple[Path, Pipeline], tmp_path: Path) -> None:
    model_dir, pipe = pipeline_dir
    opts = ExaTrkXRepositoryOptions(instances=2, num_threads=1, max_spacepoints=5000,
                                    version=3, stage_instances={"graph": 1})
    names = write_exatrkx_repository(tmp_path, model_dir, opts)
    assert names == [PIPELINE_MODEL, *STAGE_MODELS.values(), ENSEMBLE_MODEL]
    width = pipe.config.features.width
    custom = (tmp_path / PIPELINE_MODEL / "config.pbtxt").read_text()
    assert f"dims: [ -1, {width} ]" in custom and 'name: "LABELS"' in custom
    assert "count: 2" in custom and 'string_value: "5000"' in custom
    assert "count: 1" in (tmp_path / STAGE_MODELS["graph"] / "config.pbtxt").read_text()
    assert "count: 2" in (tmp_path / STAGE_MODELS["gnn"] / "config.pbtxt").read_text()
    version = tmp_path / PIPELINE_MODEL / "3"
    assert "from sonic_exatrkx.server.triton_models.pipeline_model import" in \
        (version / "model.py").read_text()
    assert sorted(p.name for p in (version / "pipeline").iterdir()) == [
        "config.json", "embedding.pt", "filter.pt", "gnn.pt"]  # not the training log
    ensemble = (tmp_path / ENSEMBLE_MODEL / "config.pbtxt").read_text()
    assert 'platform: "ensemble"' in ensemble
    assert [line.split('"')[1] for line in ensemble.splitlines() if "model_name" in line] == \
        list(STAGE_MODELS.values())
    assert (tmp_path / ENSEMBLE_MODEL / "3").is_dir()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"instances": 0}, "instances must be an integer >= 1"),
     ({"num_threads": 0}, "num_threads must be"),
     ({"max_spacepoints": -1}, "max_spacepoints must be"),
     ({"stage_instances": {"knn": 2}}, "unknown stages ['knn']"),
     ({"pipeline": False, "ensemble": False}, "nothing to write")],
)
def test_bad_options(kwargs: dict, message: str) -> None:
    with pytest.raises(ModelConfigError) as err:
        ExaTrkXRepositoryOptions(**kwargs)
    assert message in str(err.value)


def test_missing_model_dir_fails_before_writing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_exatrkx_repository(tmp_path / "repo", tmp_path / "no-models")
    assert not (tmp_path / "repo").exists()


@pytest.mark.parametrize("seed", [0, 1])
def test_staged_chain_equals_pipeline_run(pipeline_dir: tuple[Path, Pipeline], seed: int) -> None:
    _, pipe = pipeline_dir
    feats = pipe.features(*_event(10, seed))
    expected = pipe.run(feats).labels
    assert np.unique(expected).size < expected.size  # some hits share a track
    np.testing.assert_array_equal(run_chain(pipe, feats), expected)


@pytest.fixture(scope="module")
def exatrkx_server(triton_available: None, pipeline_dir: tuple[Path, Pipeline],
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    repo = tmp_path_factory.mktemp("exatrkx-repo")
    write_exatrkx_repository(repo, pipeline_dir[0],
                             ExaTrkXRepositoryOptions(max_spacepoints=MAX_SPACEPOINTS))
    server = TritonServer(repo, env_threads=1, ready_timeout=120)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _infer(server: TritonServer, model: str, feats: np.ndarray) -> np.ndarray:
    import tritonclient.grpc as tg

    inp = tg.InferInput("FEATURES", list(feats.shape), "FP32")
    inp.set_data_from_numpy(np.ascontiguousarray(feats, dtype=np.float32))
    with tg.InferenceServerClient(server.grpc_url) as c:
        return c.infer(model, [inp]).as_numpy("LABELS")


@pytest.mark.triton
@pytest.mark.parametrize("model", [PIPELINE_MODEL, ENSEMBLE_MODEL])
def test_served_labels_equal_in_process(exatrkx_server: TritonServer,
                                        pipeline_dir: tuple[Path, Pipeline], model: str) -> None:
    _, pipe = pipeline_dir
    for seed, n_tracks in ((0, 10), (2, 30)):
        feats = pipe.features(*_event(n_tracks, seed))
        labels = _infer(exatrkx_server, model, feats)
        assert labels.dtype == np.int64 and labels.shape == (feats.shape[0],)
        np.testing.assert_array_equal(labels, pipe.run(feats).labels)
    assert _infer(exatrkx_server, model, np.zeros((0, 3), np.float32)).shape == (0,)


@pytest.mark.triton
@pytest.mark.parametrize("model", [PIPELINE_MODEL, ENSEMBLE_MODEL])
def test_event_over_max_size_is_refused(exatrkx_server: TritonServer, model: str) -> None:
    from tritonclient.utils import InferenceServerException

    feats = np.random.default_rng(0).uniform(0.1, 1, (MAX_SPACEPOINTS + 1, 3)).astype(np.float32)
    with pytest.raises(InferenceServerException) as err:
        _infer(exatrkx_server, model, feats)
    assert f"{MAX_SPACEPOINTS + 1} space points, more than" in err.value.message()
    assert f"MAX_SPACEPOINTS={MAX_SPACEPOINTS}" in err.value.message()
    assert _infer(exatrkx_server, model, feats[:5]).shape == (5,)  # still serving
