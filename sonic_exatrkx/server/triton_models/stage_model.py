"""One stage of the ExaTrkX chain as a Python-backend model (parameter STAGE)."""

from __future__ import annotations

from typing import Any

from sonic_exatrkx.server.exatrkx_stages import run_stage, stage_io

from .common import (
    error_response,
    input_arrays,
    load_pipeline,
    max_spacepoints,
    model_parameters,
    response,
)


class TritonPythonModel:
    """Runs :func:`sonic_exatrkx.server.exatrkx_stages.run_stage` for its STAGE."""

    def initialize(self, args: dict[str, Any]) -> None:
        params = model_parameters(args)
        self.name = args["model_name"]
        self.stage = params["STAGE"]
        self.pipeline = load_pipeline(args, params)
        self.max_spacepoints = max_spacepoints(params)
        inputs, _ = stage_io(self.stage, self.pipeline.config)
        self.input_names = [name for name, _, _ in inputs]

    def execute(self, requests: list[Any]) -> list[Any]:
        responses = []
        for request in requests:
            try:
                tensors = input_arrays(request, self.input_names)
                responses.append(response(run_stage(self.pipeline, self.stage, tensors,
                                                    self.max_spacepoints)))
            except Exception as exc:  # noqa: BLE001 - reported to the client, not fatal
                responses.append(error_response(self.name, exc))
        return responses
