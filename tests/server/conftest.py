"""A real Triton server on 127.0.0.1 for the server tests (no mocks).

One session-scoped server serves a tiny repository: ``scale`` (Python backend, numpy only,
two CPU instances) and ``twice``, an ensemble of two ``scale`` steps. Tests that need their
own server (start failures, stop, SIGKILL) build small repositories with the helpers here.

The ExaTrkX server and models (``exatrkx_server``, ``exatrkx_models``) are the session's
one, shared with the SONIC tests: see :mod:`tests.exatrkx_serving`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sonic_exatrkx.server import (
    EnsembleStep,
    ModelConfig,
    TritonServer,
    write_model,
)
from tests.exatrkx_serving import (
    DYNAMIC_DELAY_US,
    DYNAMIC_MAX_BATCH,
    MAX_SPACEPOINTS,
    sim_positions,
    toy_event,
)

__all__ = ["DYNAMIC_DELAY_US", "DYNAMIC_MAX_BATCH", "MAX_SPACEPOINTS", "sim_positions",
           "toy_event"]

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
