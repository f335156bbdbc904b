"""Shared plumbing of the ExaTrkX Python-backend models (runs inside the Triton stub).

:class:`ExaTrkXModel` loads the pipeline, reads the request tensors its contract stage
names and turns every error into a per-request error; a model only says what it computes.
After a request whose inputs exceed TRIM_ABOVE_BYTES it returns the freed heap to the
kernel (:mod:`sonic_exatrkx.server.memory`), so one oversized request does not leave the
stub's memory raised for good.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from sonic_exatrkx.exatrkx import Pipeline
from sonic_exatrkx.exatrkx.stages import TensorSpec, stage_specs
from sonic_exatrkx.server.batching import DEFAULT_MAX_EVENTS_PER_REQUEST
from sonic_exatrkx.server.memory import DEFAULT_TRIM_ABOVE_BYTES, malloc_trim, should_trim

log = logging.getLogger(__name__)


def model_parameters(args: dict[str, Any]) -> dict[str, str]:
    """The ``parameters`` of the model's config.pbtxt as plain strings."""
    config = json.loads(args["model_config"])
    return {k: v["string_value"] for k, v in config.get("parameters", {}).items()}


def instance_device(args: dict[str, Any]) -> str:
    """The pipeline device of this model instance: ``cuda:<id>`` for a ``KIND_GPU``
    instance (the GPU Triton placed it on), else ``cpu``."""
    if str(args.get("model_instance_kind", "CPU")).upper() == "GPU":
        return f"cuda:{int(args.get('model_instance_device_id', 0))}"
    return "cpu"


def load_pipeline(args: dict[str, Any], params: dict[str, str]) -> Pipeline:
    """The pipeline from ``<model>/<version>/<PIPELINE_DIR>``, with NUM_THREADS applied, on
    the instance's device (a GPU instance without a usable GPU fails here, saying so)."""
    version_dir = Path(args["model_repository"]) / str(args["model_version"])
    model_dir = version_dir / params.get("PIPELINE_DIR", "pipeline")
    threads = int(params.get("NUM_THREADS", "1"))
    return Pipeline.from_directory(model_dir, num_threads=threads,
                                   device=instance_device(args))


def max_spacepoints(params: dict[str, str]) -> int | None:
    """MAX_SPACEPOINTS, or None when unset or 0 (no limit)."""
    value = int(params.get("MAX_SPACEPOINTS", "0"))
    return value or None


def max_events_per_request(params: dict[str, str]) -> int:
    """MAX_EVENTS_PER_REQUEST (events in one request's ROW_SPLITS); a repository written
    before the parameter existed gets the default bound, not none."""
    return int(params.get("MAX_EVENTS_PER_REQUEST", str(DEFAULT_MAX_EVENTS_PER_REQUEST)))


def trim_above_bytes(params: dict[str, str]) -> int:
    """TRIM_ABOVE_BYTES: input bytes of a request above which the heap is trimmed after it
    (0: never)."""
    return int(params.get("TRIM_ABOVE_BYTES", str(DEFAULT_TRIM_ABOVE_BYTES)))


def request_bytes(arrays: dict[str, np.ndarray | None]) -> int:
    """Bytes of a request's input tensors."""
    return sum(a.nbytes for a in arrays.values() if a is not None)


def input_arrays(request: Any, specs: dict[str, TensorSpec]) -> dict[str, np.ndarray | None]:
    """Named inputs of one request as numpy arrays (None for an optional one left out)."""
    arrays: dict[str, np.ndarray | None] = {}
    for name in specs:
        tensor = pb_utils.get_input_tensor_by_name(request, name)
        arrays[name] = None if tensor is None else tensor.as_numpy()
    return arrays


def response(outputs: dict[str, np.ndarray]) -> Any:
    """An inference response carrying ``outputs``."""
    return pb_utils.InferenceResponse([pb_utils.Tensor(k, v) for k, v in outputs.items()])


def error_response(model: str, exc: BaseException) -> Any:
    """A per-request error: the client gets it, the model keeps serving other requests."""
    return pb_utils.InferenceResponse(
        error=pb_utils.TritonError(f"{model}: {type(exc).__name__}: {exc}"))


class ExaTrkXModel:
    """A Python-backend model serving one entry of the contract's stage table.

    Subclasses set :meth:`stage_of` (which stage the model serves) and :meth:`compute`
    (named inputs -> named outputs, raising ``ValueError`` for a bad request).
    """

    def stage_of(self, params: dict[str, str]) -> str:
        raise NotImplementedError

    def compute(self, tensors: dict[str, np.ndarray | None]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def initialize(self, args: dict[str, Any]) -> None:
        params = model_parameters(args)
        self.name = args["model_name"]
        self.stage = self.stage_of(params)
        self.pipeline = load_pipeline(args, params)
        self.max_spacepoints = max_spacepoints(params)
        self.max_events = max_events_per_request(params)
        self.trim_above = trim_above_bytes(params)
        self.inputs, _ = stage_specs(self.stage, self.pipeline.config)

    def execute(self, requests: list[Any]) -> list[Any]:
        responses = []
        for request in requests:
            arrays: dict[str, np.ndarray | None] = {}
            try:
                arrays = input_arrays(request, self.inputs)
                responses.append(response(self.compute(arrays)))
            except Exception as exc:  # noqa: BLE001 - reported to the client, not fatal
                responses.append(error_response(self.name, exc))
            self.after_request(request_bytes(arrays))
        return responses

    def after_request(self, size: int) -> None:
        """Trim the heap after an oversized request (served or refused)."""
        if should_trim(size, self.trim_above):
            released = malloc_trim()
            log.info("%s: request of %d input bytes (over TRIM_ABOVE_BYTES=%d): heap "
                     "trimmed%s", self.name, size, self.trim_above,
                     "" if released else " (nothing to release)")
