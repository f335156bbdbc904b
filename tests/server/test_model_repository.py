"""config.pbtxt rendering, validation and repository layout (no server needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from sonic_exatrkx.server import (
    EnsembleStep,
    ModelConfig,
    ModelConfigError,
    TensorSpec,
    triton_dtype,
    write_model,
)


def parse(text: str) -> model_config_pb2.ModelConfig:
    """``config.pbtxt`` text as Triton reads it."""
    return text_format.Parse(text, model_config_pb2.ModelConfig())


IO = {"inputs": [("INPUT", "FP32", (-1, 3))], "outputs": [("OUTPUT", "FP32", (-1, 3))]}


def test_python_model_renders_expected_text() -> None:
    cfg = ModelConfig("embed", inputs=[TensorSpec("INPUT", "TYPE_FP32", (-1, 3))],
                      outputs=[("EMB", np.float32, [-1, 8])], instance_count=2,
                      parameters={"num_threads": 1, "max_spacepoints": 200000, "z": True})
    assert cfg.render() == """\
name: "embed"
input {
  name: "INPUT"
  data_type: TYPE_FP32
  dims: -1
  dims: 3
}
output {
  name: "EMB"
  data_type: TYPE_FP32
  dims: -1
  dims: 8
}
instance_group {
  count: 2
  kind: KIND_CPU
}
parameters {
  key: "max_spacepoints"
  value {
    string_value: "200000"
  }
}
parameters {
  key: "num_threads"
  value {
    string_value: "1"
  }
}
parameters {
  key: "z"
  value {
    string_value: "true"
  }
}
backend: "python"
"""
    assert parse(cfg.render()).max_batch_size == 0  # Triton's default: no batch dimension
    same = ModelConfig("embed", inputs=[("INPUT", "FP32", (-1, 3))],
                       outputs=[("EMB", "FP32", (-1, 8))], instance_count=2,
                       parameters={"z": True, "num_threads": "1", "max_spacepoints": 200000})
    assert same.render() == cfg.render()  # deterministic, independent of dict order


def test_ensemble_renders_steps_and_no_instance_group() -> None:
    cfg = ModelConfig("pipe", inputs=[("INPUT", "FP32", (-1, 3))],
                      outputs=[("EDGES", "INT64", (2, -1))],
                      steps=[EnsembleStep("embed", {"INPUT": "INPUT"}, {"EMB": "emb"}),
                             EnsembleStep("knn", {"EMB": "emb"}, {"EDGES": "EDGES"})])
    text = cfg.render()
    assert 'platform: "ensemble"' in text and "backend" not in text
    assert "instance_group" not in text
    steps = parse(text).ensemble_scheduling.step
    assert dict(steps[1].input_map) == {"EMB": "emb"}
    assert [s.model_name for s in steps] == ["embed", "knn"]
    assert [s.model_version for s in steps] == [-1, -1]


def test_version_policies_and_dynamic_batching() -> None:
    policy = parse(ModelConfig("m", **IO, version_policy="all").render()).version_policy
    assert policy.WhichOneof("policy_choice") == "all"
    policy = parse(ModelConfig("m", **IO, version_policy=(3, 1)).render()).version_policy
    assert list(policy.specific.versions) == [1, 3]
    assert not parse(ModelConfig("m", **IO).render()).HasField("version_policy")
    parsed = parse(ModelConfig("m", **IO, max_batch_size=8, dynamic_batching=True).render())
    assert parsed.max_batch_size == 8 and parsed.HasField("dynamic_batching")
    assert not parse(ModelConfig("m", **IO).render()).HasField("dynamic_batching")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "bad/name"}, "invalid model name 'bad/name'"),
        ({"name": "a b"}, "invalid model name"),
        ({"inputs": [("IN PUT", "FP32", (-1, 3))]}, "invalid tensor name 'IN PUT'"),
        ({"inputs": [("INPUT", "FP32", (0, 3))]}, "must be positive integers or -1"),
        ({"inputs": [("INPUT", "FP32", (-2,))]}, "must be positive integers or -1"),
        ({"inputs": [("INPUT", "FP32", ())]}, "dims must not be empty"),
        ({"inputs": [("INPUT", "FP32", (1.5,))]}, "must be positive integers"),
        ({"inputs": [("INPUT", "FLOAT", (3,))]}, "unknown data type 'FLOAT'"),
        ({"outputs": [("INPUT", "FP32", (3,))]}, "duplicate tensor names ['INPUT']"),
        ({"instance_count": 0}, "instance_count must be an integer >= 1"),
        ({"max_batch_size": -1}, "max_batch_size must be an integer >= 0"),
        ({"dynamic_batching": True}, "dynamic_batching needs max_batch_size > 0"),
        ({"parameters": {"a b": "1"}}, "invalid parameter key 'a b'"),
        ({"version_policy": (0,)}, "version_policy must be"),
        ({"backend": "python", "platform": "ensemble"}, "exactly one of backend"),
        ({"platform": "ensemble"}, "needs at least one step"),
    ],
)
def test_invalid_configs_are_rejected_clearly(kwargs: dict, message: str) -> None:
    args = {"name": "m", **IO, **kwargs}
    with pytest.raises(ModelConfigError) as err:
        ModelConfig(**args)
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ([EnsembleStep("a", {"INPUT": "nowhere"}, {"OUTPUT": "OUTPUT"})],
         "reads ['nowhere'], which are neither ensemble inputs nor outputs of an earlier step"),
        ([EnsembleStep("a", {"INPUT": "INPUT"}, {"OUTPUT": "mid"})],
         "outputs ['OUTPUT'] are not produced by any step"),
        ([EnsembleStep("a", {"INPUT": "INPUT"}, {"OUTPUT": "OUTPUT"}),
          EnsembleStep("b", {"INPUT": "INPUT"}, {"OUTPUT": "OUTPUT"})],
         "tensor 'OUTPUT' is written more than once"),
    ],
)
def test_ensemble_wiring_is_checked(steps: list[EnsembleStep], message: str) -> None:
    with pytest.raises(ModelConfigError) as err:
        ModelConfig("pipe", **IO, steps=steps)
    assert message in str(err.value)


def test_dtype_normalisation() -> None:
    assert triton_dtype("fp32") == triton_dtype("TYPE_FP32") == triton_dtype(np.float32) == "FP32"
    assert triton_dtype("int64") == triton_dtype(np.dtype("int64")) == "INT64"
    with pytest.raises(ModelConfigError):
        triton_dtype(complex)


def test_write_model_layout_and_versions(tmp_path: Path) -> None:
    src = tmp_path / "weights.pt"
    src.write_bytes(b"\x00\x01")
    assets = tmp_path / "assets"
    (assets / "sub").mkdir(parents=True)
    (assets / "sub" / "a.json").write_text("{}")
    cfg = ModelConfig("m", **IO)
    model_dir = write_model(tmp_path / "repo", cfg,
                            {"model.py": "print('v1')\n", "blob.bin": b"\xff",
                             "weights.pt": src, "assets": assets})
    assert model_dir == tmp_path / "repo" / "m"
    assert (model_dir / "config.pbtxt").read_text() == cfg.render()
    assert (model_dir / "1" / "model.py").read_text() == "print('v1')\n"
    assert (model_dir / "1" / "blob.bin").read_bytes() == b"\xff"
    assert (model_dir / "1" / "weights.pt").read_bytes() == b"\x00\x01"
    assert (model_dir / "1" / "assets" / "sub" / "a.json").read_text() == "{}"
    write_model(tmp_path / "repo", cfg, {"model.py": "print('v2')\n"}, version=2)
    assert sorted(p.name for p in model_dir.iterdir()) == ["1", "2", "config.pbtxt"]
    assert (model_dir / "2" / "model.py").read_text() == "print('v2')\n"


@pytest.mark.parametrize("name", ["../evil.py", "/abs.py", ""])
def test_write_model_rejects_paths_outside_the_version(tmp_path: Path, name: str) -> None:
    with pytest.raises(ModelConfigError, match="relative path inside the version directory"):
        write_model(tmp_path, ModelConfig("m", **IO), {name: "x"})


@pytest.mark.parametrize("version", [0, -1, True, "1"])
def test_write_model_rejects_bad_versions(tmp_path: Path, version: object) -> None:
    with pytest.raises(ModelConfigError, match="version must be an integer >= 1"):
        write_model(tmp_path, ModelConfig("m", **IO), version=version)  # type: ignore[arg-type]


def test_optional_input_renders_and_outputs_cannot_be_optional() -> None:
    cfg = ModelConfig("m", inputs=[("INPUT", "FP32", (-1, 3)),
                                   TensorSpec("ROW_SPLITS", "INT64", (-1,), optional=True)],
                      outputs=[("OUTPUT", "FP32", (-1, 3))])
    assert ('input {\n  name: "ROW_SPLITS"\n  data_type: TYPE_INT64\n  dims: -1\n'
            '  optional: true\n}') in cfg.render()
    assert cfg.render().count("optional") == 1
    assert [i.optional for i in parse(cfg.render()).input] == [False, True]
    with pytest.raises(ModelConfigError, match=r"outputs \['OUTPUT'\] cannot be optional"):
        ModelConfig("m", inputs=[("INPUT", "FP32", (-1, 3))],
                    outputs=[TensorSpec("OUTPUT", "FP32", (-1, 3), optional=True)])
