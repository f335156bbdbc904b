"""One stage of the ExaTrkX chain as a Python-backend model (parameter STAGE)."""

from __future__ import annotations

import numpy as np

from sonic_exatrkx.exatrkx.stages import run_stage

from .common import ExaTrkXModel


class TritonPythonModel(ExaTrkXModel):
    """Runs :func:`sonic_exatrkx.exatrkx.stages.run_stage` for its STAGE."""

    def stage_of(self, params: dict[str, str]) -> str:
        return params["STAGE"]

    def compute(self, tensors: dict[str, np.ndarray | None]) -> dict[str, np.ndarray]:
        return run_stage(self.pipeline, self.stage, tensors, self.max_spacepoints)
