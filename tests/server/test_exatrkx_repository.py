"""The ExaTrkX model repository: generated configs, the staged chain, and serving it for real.

The served labels must equal the in-process ``Pipeline.run`` labels, for the custom-backend
model (whole pipeline) and for the ensemble of per-stage models.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from sonic_exatrkx.exatrkx import Pipeline, apply_cut
from sonic_exatrkx.exatrkx.stages import TensorSpec, run_chain, run_stage, stage_specs
from sonic_exatrkx.server import ModelConfigError, TritonServer
from sonic_exatrkx.server.batching import batch_events, run_batched, split_labels
from sonic_exatrkx.server.exatrkx_repository import (
    ENSEMBLE_MODEL,
    PIPELINE_MODEL,
    STAGE_MODELS,
    ExaTrkXRepositoryOptions,
    write_exatrkx_repository,
)

from .conftest import MAX_SPACEPOINTS, sim_positions, toy_event


def read_config(repo: Path, model: str) -> model_config_pb2.ModelConfig:
    """``<repo>/<model>/config.pbtxt`` parsed as Triton parses it."""
    text = (repo / model / "config.pbtxt").read_text()
    return text_format.Parse(text, model_config_pb2.ModelConfig())


@pytest.fixture(scope="module")
def pipeline_dir(exatrkx_models: tuple[Path, Pipeline]) -> tuple[Path, Pipeline]:
    return exatrkx_models


def test_generated_configs(pipeline_dir: tuple[Path, Pipeline], tmp_path: Path) -> None:
    model_dir, pipe = pipeline_dir
    opts = ExaTrkXRepositoryOptions(instances=2, num_threads=1, max_spacepoints=5000,
                                    version=3, stage_instances={"graph": 1})
    names = write_exatrkx_repository(tmp_path, model_dir, opts)
    assert names == [PIPELINE_MODEL, *STAGE_MODELS.values(), ENSEMBLE_MODEL]
    width = pipe.config.features.width
    custom = read_config(tmp_path, PIPELINE_MODEL)
    assert [(i.name, list(i.dims), i.optional) for i in custom.input] == [
        ("FEATURES", [-1, width], False), ("ROW_SPLITS", [-1], True)]
    assert custom.input[1].data_type == model_config_pb2.TYPE_INT64
    assert [o.name for o in custom.output] == ["LABELS"]
    assert custom.instance_group[0].count == 2
    assert custom.parameters["MAX_SPACEPOINTS"].string_value == "5000"
    assert custom.parameters["MAX_EVENTS_PER_REQUEST"].string_value == "64"
    assert custom.parameters["TRIM_ABOVE_BYTES"].string_value == str(4 << 20)
    assert "MAX_EVENTS_PER_REQUEST" not in read_config(tmp_path, STAGE_MODELS["gnn"]).parameters
    assert read_config(tmp_path, STAGE_MODELS["graph"]).instance_group[0].count == 1
    assert read_config(tmp_path, STAGE_MODELS["gnn"]).instance_group[0].count == 2
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


def _as_specs(tensors: list) -> list[tuple[str, str, list[int], bool]]:
    return [(t.name, model_config_pb2.DataType.Name(t.data_type), list(t.dims),
             getattr(t, "optional", False)) for t in tensors]  # outputs have no optional


def _contract(specs: dict[str, TensorSpec]) -> list[tuple[str, str, list[int], bool]]:
    return [(s.name, s.config_type, s.triton_dims(), s.optional) for s in specs.values()]


def test_written_configs_parse_back_to_the_contract(pipeline_dir: tuple[Path, Pipeline],
                                                    tmp_path: Path) -> None:
    model_dir, pipe = pipeline_dir
    write_exatrkx_repository(tmp_path, model_dir)
    stage_of = {PIPELINE_MODEL: "batched", ENSEMBLE_MODEL: "pipeline",
                **{model: stage for stage, model in STAGE_MODELS.items()}}
    for model, stage in stage_of.items():
        parsed = read_config(tmp_path, model)
        inputs, outputs = stage_specs(stage, pipe.config)
        assert parsed.name == model
        assert _as_specs(parsed.input) == _contract(inputs), model
        assert _as_specs(parsed.output) == _contract(outputs), model
    steps = read_config(tmp_path, ENSEMBLE_MODEL).ensemble_scheduling.step
    assert [s.model_name for s in steps] == list(STAGE_MODELS.values())
    for step, stage in zip(steps, STAGE_MODELS, strict=True):
        inputs, outputs = stage_specs(stage, pipe.config)
        assert dict(step.input_map) == {n: n for n in inputs}
        assert dict(step.output_map) == {n: n for n in outputs}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"instances": 0}, "instances must be an integer >= 1"),
     ({"num_threads": 0}, "num_threads must be"),
     ({"max_spacepoints": -1}, "max_spacepoints must be"),
     ({"max_events_per_request": 0}, "max_events_per_request must be an integer >= 1"),
     ({"trim_above_bytes": -1}, "trim_above_bytes must be"),
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
    feats = pipe.features(*sim_positions(seed))
    res = pipe.run(feats, return_intermediates=True)
    expected = res.labels
    assert np.unique(expected).size < expected.size  # some hits share a track
    past_cut = int(apply_cut(res.filter_scores, pipe.config.filter.cut).sum())
    assert res.n_edges["filter"] < past_cut  # the degree cap acts on these events
    np.testing.assert_array_equal(run_chain(pipe, feats), expected)


def _infer(server: TritonServer, model: str, feats: np.ndarray) -> np.ndarray:
    import tritonclient.grpc as tg

    inp = tg.InferInput("FEATURES", list(feats.shape), "FP32")
    inp.set_data_from_numpy(np.ascontiguousarray(feats, dtype=np.float32))
    with tg.InferenceServerClient(server.grpc_url) as c:
        return c.infer(model, [inp]).as_numpy("LABELS")


def test_several_events_in_process_equal_one_by_one(pipeline_dir: tuple[Path, Pipeline],
                                                     sim_features: list[np.ndarray]) -> None:
    _, pipe = pipeline_dir
    feats, rs = batch_events(sim_features)
    labels = run_batched(pipe, feats, MAX_SPACEPOINTS, row_splits=rs)
    for got, f in zip(split_labels(labels, rs), sim_features, strict=True):
        np.testing.assert_array_equal(got, pipe.run(f).labels)
    with pytest.raises(ValueError, match="event 1 of 5 in the request: event has"):
        run_batched(pipe, feats, sim_features[1].shape[0] - 1, row_splits=rs)
    with pytest.raises(ValueError, match="ROW_SPLITS must start at 0"):
        run_batched(pipe, feats, row_splits=rs + 1)


def test_stage_input_checks_in_process(pipeline_dir: tuple[Path, Pipeline],
                                       sim_features: list[np.ndarray]) -> None:
    _, pipe = pipeline_dir
    feats = sim_features[0]
    with pytest.raises(ValueError, match=r"stage 'filter' needs inputs \['EDGES'\]"):
        run_stage(pipe, "filter", {"FEATURES": feats})
    with pytest.raises(ValueError, match=r"EDGES must have shape \[2, E\], got \[3, 1\]"):
        run_stage(pipe, "filter", {"FEATURES": feats, "EDGES": np.zeros((3, 1), np.int64)})
    with pytest.raises(ValueError, match="EDGES must be integers"):
        run_stage(pipe, "filter", {"FEATURES": feats, "EDGES": np.zeros((2, 1), np.float32)})
    with pytest.raises(ValueError, match="unknown ExaTrkX stage 'knn'"):
        run_stage(pipe, "knn", {"FEATURES": feats})


@pytest.mark.triton
@pytest.mark.parametrize("model", [PIPELINE_MODEL, ENSEMBLE_MODEL])
def test_served_labels_equal_in_process(exatrkx_server: TritonServer,
                                        pipeline_dir: tuple[Path, Pipeline], model: str) -> None:
    _, pipe = pipeline_dir
    for feats in (pipe.features(*sim_positions(0)), pipe.features(*toy_event(30, 2))):
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
