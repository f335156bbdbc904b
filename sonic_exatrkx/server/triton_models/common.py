"""Shared plumbing of the ExaTrkX Python-backend models (runs inside the Triton stub)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from sonic_exatrkx.exatrkx import Pipeline

log = logging.getLogger(__name__)


def model_parameters(args: dict[str, Any]) -> dict[str, str]:
    """The ``parameters`` of the model's config.pbtxt as plain strings."""
    config = json.loads(args["model_config"])
    return {k: v["string_value"] for k, v in config.get("parameters", {}).items()}


def load_pipeline(args: dict[str, Any], params: dict[str, str]) -> Pipeline:
    """The pipeline from ``<model>/<version>/<PIPELINE_DIR>``, with NUM_THREADS applied."""
    version_dir = Path(args["model_repository"]) / str(args["model_version"])
    model_dir = version_dir / params.get("PIPELINE_DIR", "pipeline")
    threads = int(params.get("NUM_THREADS", "1"))
    return Pipeline.from_directory(model_dir, num_threads=threads)


def max_spacepoints(params: dict[str, str]) -> int | None:
    """MAX_SPACEPOINTS, or None when unset or 0 (no limit)."""
    value = int(params.get("MAX_SPACEPOINTS", "0"))
    return value or None


def input_arrays(request: Any, names: list[str]) -> dict[str, np.ndarray]:
    """Named inputs of one request as numpy arrays."""
    return {n: pb_utils.get_input_tensor_by_name(request, n).as_numpy() for n in names}


def response(outputs: dict[str, np.ndarray]) -> Any:
    """An inference response carrying ``outputs``."""
    return pb_utils.InferenceResponse([pb_utils.Tensor(k, v) for k, v in outputs.items()])


def error_response(model: str, exc: BaseException) -> Any:
    """A per-request error: the client gets it, the model keeps serving other requests."""
    return pb_utils.InferenceResponse(
        error=pb_utils.TritonError(f"{model}: {type(exc).__name__}: {exc}"))
