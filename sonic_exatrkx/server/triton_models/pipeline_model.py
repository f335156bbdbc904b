"""The custom-backend ExaTrkX model: the whole pipeline in one Python-backend model.

Optional ``ROW_SPLITS`` input: several events per request (see
:mod:`sonic_exatrkx.server.batching`).
"""

from __future__ import annotations

from typing import Any

import triton_python_backend_utils as pb_utils

from sonic_exatrkx.server.batching import ROW_SPLITS
from sonic_exatrkx.server.exatrkx_stages import run_pipeline

from .common import (
    error_response,
    input_arrays,
    load_pipeline,
    max_spacepoints,
    model_parameters,
    response,
)


class TritonPythonModel:
    """FEATURES [N,F] FP32 (+ optional ROW_SPLITS [n+1] INT64) -> LABELS [N] INT64 via
    :meth:`Pipeline.run`, once per event."""

    def initialize(self, args: dict[str, Any]) -> None:
        params = model_parameters(args)
        self.name = args["model_name"]
        self.pipeline = load_pipeline(args, params)
        self.max_spacepoints = max_spacepoints(params)

    def execute(self, requests: list[Any]) -> list[Any]:
        responses = []
        for request in requests:
            try:
                feats = input_arrays(request, ["FEATURES"])["FEATURES"]
                splits = pb_utils.get_input_tensor_by_name(request, ROW_SPLITS)
                labels = run_pipeline(self.pipeline, feats, self.max_spacepoints,
                                      None if splits is None else splits.as_numpy())
                responses.append(response({"LABELS": labels}))
            except Exception as exc:  # noqa: BLE001 - reported to the client, not fatal
                responses.append(error_response(self.name, exc))
        return responses
