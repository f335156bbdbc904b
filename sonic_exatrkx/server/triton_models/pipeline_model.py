"""The custom-backend ExaTrkX model: the whole pipeline in one Python-backend model.

Optional ``ROW_SPLITS`` input: several events per request, at most MAX_EVENTS_PER_REQUEST
(see :mod:`sonic_exatrkx.server.batching`).
"""

from __future__ import annotations

import numpy as np

from sonic_exatrkx.exatrkx.stages import MODULE_IDS, ROW_SPLITS
from sonic_exatrkx.server.batching import run_batched

from .common import ExaTrkXModel


class TritonPythonModel(ExaTrkXModel):
    """FEATURES [N,F] FP32 (+ optional ROW_SPLITS [n+1] INT64) -> LABELS [N] INT64 via
    :meth:`Pipeline.run`, once per event."""

    def stage_of(self, params: dict[str, str]) -> str:
        return "batched"

    def compute(self, tensors: dict[str, np.ndarray | None]) -> dict[str, np.ndarray]:
        features = tensors["FEATURES"]
        assert features is not None  # a required input: Triton refuses requests without it
        return {"LABELS": run_batched(self.pipeline, features, self.max_spacepoints,
                                      tensors[ROW_SPLITS], self.max_events,
                                      tensors.get(MODULE_IDS))}
