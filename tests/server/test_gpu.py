"""GPU-ready without a GPU: the generated GPU model configuration, the one-line errors when
a GPU is asked for and none is usable (in process and served), and the GPU radius search
code run on the CPU, where it must find exactly the CPU index's edges."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from sonic_exatrkx.exatrkx import ExaTrkXConfigError, Pipeline, PipelineConfig
from sonic_exatrkx.exatrkx.device import DeviceUnavailableError, check_device
from sonic_exatrkx.exatrkx.graph import build_edges
from sonic_exatrkx.server import ModelConfig, ModelConfigError, TritonServer, TritonServerError
from sonic_exatrkx.server.exatrkx_repository import (
    DYNAMIC_MODEL,
    ENSEMBLE_MODEL,
    DynamicBatching,
    ExaTrkXRepositoryOptions,
    exatrkx_model_configs,
    write_exatrkx_repository,
)
from sonic_exatrkx.server.foreground import ServeOptions

from .conftest import sim_positions

ROOT = Path(__file__).resolve().parents[2]


def parse(config: ModelConfig) -> model_config_pb2.ModelConfig:
    return text_format.Parse(config.render(), model_config_pb2.ModelConfig())


# --- the generated GPU configuration ---------------------------------------------------------


def test_gpu_instance_groups(exatrkx_models) -> None:
    _, pipe = exatrkx_models
    opts = ExaTrkXRepositoryOptions(instances=2, device="gpu", gpus=(0, 1),
                                    stage_instances={"graph": 1},
                                    dynamic_batching=DynamicBatching())
    configs = exatrkx_model_configs(pipe, opts)
    for config in configs:
        msg = parse(config)
        if config.name == ENSEMBLE_MODEL:
            assert not msg.instance_group  # placement is the step models'
            continue
        group = msg.instance_group[0]
        assert len(msg.instance_group) == 1, config.name
        assert group.kind == model_config_pb2.ModelInstanceGroup.KIND_GPU, config.name
        assert list(group.gpus) == [0, 1]
        assert group.count == (1 if config.name == "exatrkx_graph" else 2)  # per GPU
    text = next(c for c in configs if c.name == DYNAMIC_MODEL).render()
    assert "instance_group {\n  count: 2\n  gpus: 0\n  gpus: 1\n  kind: KIND_GPU\n}" in text
    every_gpu = parse(ModelConfig("m", [("X", "FP32", (-1,))], [("Y", "FP32", (-1,))],
                                  instance_kind="gpu"))
    assert every_gpu.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_GPU
    assert not every_gpu.instance_group[0].gpus  # Triton: every GPU it sees
    cpu = parse(exatrkx_model_configs(pipe, ExaTrkXRepositoryOptions())[0])
    assert cpu.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_CPU


def test_serve_gpus_option(exatrkx_models) -> None:
    base = {"model_repository": None, "models": exatrkx_models[0], "instances": 3,
            "threads_per_instance": 1, "max_spacepoints": 0, "host": "127.0.0.1",
            "http_port": None, "grpc_port": None, "metrics_port": None, "ready_timeout": 60}
    on_gpu = ServeOptions(**base, gpus=(1,)).repository_options()
    assert (on_gpu.device, on_gpu.gpus, on_gpu.instances) == ("gpu", (1,), 3)
    assert ServeOptions(**base).repository_options().device == "cpu"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"gpus": [0]}, "gpus [0] need instance_kind='gpu'"),
     ({"instance_kind": "gpu", "gpus": [0, 0]}, "gpus must be distinct GPU ids >= 0"),
     ({"instance_kind": "gpu", "gpus": [-1]}, "gpus must be distinct GPU ids >= 0"),
     ({"instance_kind": "tpu"}, "instance_kind must be 'cpu' or 'gpu'")],
)
def test_bad_placements(kwargs: dict, message: str) -> None:
    with pytest.raises(ModelConfigError) as err:
        ModelConfig("m", [("X", "FP32", (-1,))], [("Y", "FP32", (-1,))], **kwargs)
    assert message in str(err.value)


def test_bad_repository_devices() -> None:
    with pytest.raises(ModelConfigError, match="device must be 'cpu' or 'gpu'"):
        ExaTrkXRepositoryOptions(device="cuda:0")
    with pytest.raises(ModelConfigError, match=r"gpus \[0\] need device='gpu'"):
        ExaTrkXRepositoryOptions(gpus=(0,))


# --- a GPU asked for, none usable: one clear line, never a CPU run ---------------------------

NO_GPU_CHECK = """
import sys
from sonic_exatrkx.exatrkx import Pipeline
try:
    Pipeline.from_directory(sys.argv[1], device=sys.argv[2])
except Exception as exc:
    print(type(exc).__name__, exc, sep=": ")
else:
    print("no error")
"""


@pytest.mark.parametrize("device", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_without_a_usable_gpu_is_one_clear_error(exatrkx_models, device: str) -> None:
    """In a process that sees no GPU (CUDA_VISIBLE_DEVICES empty: meaningful on a GPU
    machine too), asking for one fails when the pipeline is built."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", NO_GPU_CHECK, str(exatrkx_models[0]), device],
                         capture_output=True, text=True, env=env, timeout=120, check=True)
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1, out.stdout
    assert lines[0].startswith(f"DeviceUnavailableError: device '{device}' was asked for, "
                               "but "), lines[0]
    assert lines[0].endswith("use device 'cpu' or run where a GPU is visible")
    assert "built without CUDA" in lines[0] or "CUDA finds no GPU" in lines[0]


def test_device_names_are_checked_with_the_config() -> None:
    for bad in ("gpu", "cuda:", "cuda:01", "cuda:-1", "CUDA", 0, None):
        with pytest.raises(ExaTrkXConfigError, match="must be 'cpu', 'cuda'"):
            PipelineConfig(device=bad)  # type: ignore[arg-type]
    assert check_device("cuda:12") == "cuda:12"
    config = PipelineConfig(device="cuda:1")  # a name is fine without a GPU ...
    assert "device" not in config.to_dict()  # ... and not written to config.json
    assert PipelineConfig.from_dict({**config.to_dict(), "device": "cuda:1"}) == config


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="a GPU is usable here")
def test_cuda_here_is_refused_in_process(exatrkx_models) -> None:
    with pytest.raises(DeviceUnavailableError, match="use device 'cpu'"):
        Pipeline.from_directory(exatrkx_models[0], device="cuda")
    with pytest.raises(DeviceUnavailableError):
        build_edges(np.zeros((3, 2), np.float32), config=replace(
            PipelineConfig().graph, index="torch", orientation="reference"), device="cuda:0")


@pytest.mark.triton
@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="a GPU is usable here")
def test_gpu_repository_on_a_server_without_gpu_says_so(exatrkx_models, tmp_path: Path
                                                        ) -> None:
    write_exatrkx_repository(tmp_path, exatrkx_models[0], ExaTrkXRepositoryOptions(
        device="gpu", gpus=(0,), ensemble=False))
    with pytest.raises(TritonServerError) as err, TritonServer(tmp_path, ready_timeout=120):
        pass
    first = str(err.value).splitlines()[0]
    assert "model 'exatrkx': " in first and "gpu id 0" in first
    assert "this server sees no usable GPU" in first


# --- the GPU radius search, run on the CPU ---------------------------------------------------


@pytest.mark.parametrize("search", ["range", "knn"])
@pytest.mark.parametrize("max_k", [500, 3])
def test_torch_search_finds_the_flat_index_edges(exatrkx_models, search: str,
                                                 max_k: int) -> None:
    _, pipe = exatrkx_models
    feats = pipe.prepare(pipe.features(*sim_positions(1, pileup=10.0)))
    emb, r = pipe.embed(feats), feats[:, 0]
    graph = replace(pipe.config.graph, radius=0.2, search=search, max_k=max_k)
    flat = build_edges(emb, r=r, config=replace(graph, index="flat"))
    found = build_edges(emb, r=r, config=replace(graph, index="torch"), device="cpu")
    assert flat.shape[1] > 1000
    np.testing.assert_array_equal(found, flat)


def test_pipeline_with_torch_search_gives_the_same_labels(exatrkx_models) -> None:
    model_dir, pipe = exatrkx_models
    torch_search = Pipeline(pipe.embedding, pipe.filter, pipe.gnn, replace(
        pipe.config, graph=replace(pipe.config.graph, index="torch")))
    for event in (0, 1):
        feats = pipe.features(*sim_positions(event))
        np.testing.assert_array_equal(torch_search.run(feats).labels, pipe.run(feats).labels)
    assert Pipeline.from_directory(model_dir, device="cpu").device.type == "cpu"
