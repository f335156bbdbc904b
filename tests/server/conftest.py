"""A real Triton server on 127.0.0.1 for the server tests (no mocks).

One session-scoped server serves a tiny repository: ``scale`` (Python backend, numpy only,
two CPU instances) and ``twice``, an ensemble of two ``scale`` steps. Tests that need their
own server (start failures, stop, SIGKILL) build small repositories with the helpers here.

A second session-scoped server, ``exatrkx_server``, serves the ExaTrkX repository generated
from a small untrained pipeline (``exatrkx_models``: a tight graph so that simulated events
run in tens of milliseconds) for every ExaTrkX serving test, with the dynamically batched
``exatrkx_dynamic`` too (a long queue delay, so that concurrent test clients are batched).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from sonic_exatrkx.server import (
    EnsembleStep,
    ModelConfig,
    TritonServer,
    write_model,
)

# Multiplies INPUT by the "factor" parameter, sleeps "delay_ms" (so concurrent requests
# spread over instances), and reports which instance ran it. "fail" = "initialize" / "hang"
# make the model break or never finish loading.
SCALE_MODEL_PY = '''
import json
import time

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        cfg = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in cfg.get("parameters", {}).items()}
        if params.get("fail") == "initialize":
            raise RuntimeError("broken on purpose in initialize")
        if params.get("fail") == "hang":
            time.sleep(600)
        self.factor = np.float32(params.get("factor", "2"))
        self.delay = float(params.get("delay_ms", "0")) / 1000.0
        index = int(args["model_instance_name"].rsplit("_", 1)[1])
        self.instance = np.array([index], dtype=np.int32)

    def execute(self, requests):
        responses = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "INPUT").as_numpy()
            if self.delay:
                time.sleep(self.delay)
            responses.append(pb_utils.InferenceResponse([
                pb_utils.Tensor("OUTPUT", (x * self.factor).astype(np.float32)),
                pb_utils.Tensor("INSTANCE", self.instance),
            ]))
        return responses
'''

SCALE_INSTANCES = 2


def scale_config(name: str = "scale", instances: int = SCALE_INSTANCES,
                 **parameters: str) -> ModelConfig:
    """``name``: FP32 [-1,3] -> FP32 [-1,3] times ``factor`` (2), plus INSTANCE INT32 [1]."""
    return ModelConfig(
        name,
        inputs=[("INPUT", "FP32", (-1, 3))],
        outputs=[("OUTPUT", "FP32", (-1, 3)), ("INSTANCE", "INT32", (1,))],
        instance_count=instances,
        parameters={"factor": "2", **parameters},
    )


def write_scale_repo(repo: Path, instances: int = SCALE_INSTANCES, ensemble: bool = True,
                     **parameters: str) -> Path:
    """A repository with ``scale`` (and the ``twice`` ensemble unless ``ensemble=False``)."""
    write_model(repo, scale_config(instances=instances, **parameters),
                {"model.py": SCALE_MODEL_PY})
    if ensemble:
        write_model(repo, ModelConfig(
            "twice",
            inputs=[("INPUT", "FP32", (-1, 3))],
            outputs=[("OUTPUT", "FP32", (-1, 3))],
            steps=[EnsembleStep("scale", {"INPUT": "INPUT"}, {"OUTPUT": "half"}),
                   EnsembleStep("scale", {"INPUT": "half"}, {"OUTPUT": "OUTPUT"})],
        ))
    return repo


@pytest.fixture(scope="session")
def triton_server(triton_available: None, tmp_path_factory: pytest.TempPathFactory
                  ) -> Iterator[TritonServer]:
    """The shared server; always stopped, even when tests fail."""
    repo = write_scale_repo(tmp_path_factory.mktemp("triton-repo"), delay_ms="10")
    log = tmp_path_factory.mktemp("triton-log") / "server.log"
    with TritonServer(repo, env_threads=1, ready_timeout=90, log_file=log) as server:
        yield server


MAX_SPACEPOINTS = 3000
#: The session server's exatrkx_dynamic batches up to this many requests, waiting 0.5 s.
DYNAMIC_MAX_BATCH = 8
DYNAMIC_DELAY_US = 500_000


def toy_event(n_tracks: int, seed: int) -> np.ndarray:
    """Positions (mm) of toy tracks crossing barrel layers: ``x, y, z`` stacked."""
    rng = np.random.default_rng(seed)
    layers = np.array([32.0, 72.0, 116.0, 172.0, 260.0, 360.0, 500.0, 660.0])
    phi0 = rng.uniform(-3.0, 3.0, n_tracks)
    eta = rng.uniform(-2.0, 2.0, n_tracks)
    r = np.tile(layers, n_tracks) + rng.normal(0, 0.5, n_tracks * layers.size)
    phi = np.repeat(phi0, layers.size) + 1e-4 * r
    z = r * np.sinh(np.repeat(eta, layers.size))
    return np.stack([r * np.cos(phi), r * np.sin(phi), z])


def sim_positions(event: int, pileup: float = 0.0, seed: int = 5) -> np.ndarray:
    """``x, y, z`` (mm) of the space points of simulated HNL event ``event``."""
    from sonic_exatrkx.sim import SimulationConfig, simulate_event

    sp = simulate_event(SimulationConfig(sample="hnl", pileup=pileup, seed=seed),
                        event)["spacepoint"]
    return np.stack([sp[c].to_numpy(np.float64) for c in ("x", "y", "z")])


@pytest.fixture(scope="session")
def exatrkx_models(tmp_path_factory: pytest.TempPathFactory):
    """(model directory, loaded Pipeline): untrained, seeded, tight graph; the GNN cut keeps
    half of the edges of a simulated event, so tracks are non-trivial."""
    import torch

    from sonic_exatrkx.exatrkx import GraphConfig, Pipeline, PipelineConfig, sigmoid

    torch.set_num_threads(1)
    base = PipelineConfig()
    # degree cap 3: the served stages must apply it as Pipeline.run does
    cfg = replace(base, graph=GraphConfig(radius=0.05, max_k=8, orientation="inner_outer"),
                  filter=replace(base.filter, max_degree=3))
    pipe = Pipeline.from_config(cfg.with_cuts(filter_cut=0.5), seed=1)
    scores = pipe.run(pipe.features(*sim_positions(0)), return_intermediates=True).gnn_scores
    cut = float(np.quantile(sigmoid(scores), 0.5))
    pipe = Pipeline(pipe.embedding, pipe.filter, pipe.gnn, pipe.config.with_cuts(gnn_cut=cut))
    out = tmp_path_factory.mktemp("exatrkx-models")
    pipe.save(out)
    (out / "training-log.txt").write_text("not served")
    return out, Pipeline.from_directory(out)


@pytest.fixture(scope="session")
def sim_features(exatrkx_models) -> list[np.ndarray]:
    """Node features of test events: two simulated HNL events, an empty event, a single
    space point, a toy event."""
    _, pipe = exatrkx_models
    width = pipe.config.features.width
    return [pipe.features(*sim_positions(0)), pipe.features(*sim_positions(1)),
            np.zeros((0, width), np.float32), pipe.features(*sim_positions(2)[:, :1]),
            pipe.features(*toy_event(20, seed=3))]


@pytest.fixture(scope="session")
def exatrkx_server(triton_available: None, exatrkx_models,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    """The ExaTrkX repository (``exatrkx``, stage models, ``exatrkx_ensemble``,
    ``exatrkx_dynamic``) served."""
    from sonic_exatrkx.server.exatrkx_repository import (
        DynamicBatching,
        ExaTrkXRepositoryOptions,
        write_exatrkx_repository,
    )

    repo = tmp_path_factory.mktemp("exatrkx-repo")
    dynamic = DynamicBatching(max_batch_size=DYNAMIC_MAX_BATCH,
                              max_queue_delay_us=DYNAMIC_DELAY_US)
    write_exatrkx_repository(repo, exatrkx_models[0], ExaTrkXRepositoryOptions(
        max_spacepoints=MAX_SPACEPOINTS, dynamic_batching=dynamic))
    log = tmp_path_factory.mktemp("exatrkx-log") / "server.log"
    with TritonServer(repo, env_threads=1, ready_timeout=150, log_file=log) as server:
        yield server
