"""The custom-backend ExaTrkX model with Triton's dynamic batching (``exatrkx_dynamic``).

Triton hands one ``execute`` every request its dynamic batcher gathered; all their events
are computed in one pass (:func:`sonic_exatrkx.server.batching.run_requests`), each
request still answered on its own, with its labels or its own error.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sonic_exatrkx.exatrkx.stages import ROW_SPLITS
from sonic_exatrkx.server.batching import run_requests

from .common import ExaTrkXModel, error_response, input_arrays, request_bytes, response


class TritonPythonModel(ExaTrkXModel):
    """FEATURES [B,N,F] FP32 (+ optional ROW_SPLITS [B,n+1] INT64) -> LABELS [B,N] INT64,
    every request of the batch in one :meth:`Pipeline.run_many` pass."""

    def stage_of(self, params: dict[str, str]) -> str:
        return "batched"

    def execute(self, requests: list[Any]) -> list[Any]:
        arrays: list[dict[str, np.ndarray | None]] = []
        for request in requests:
            try:
                arrays.append(input_arrays(request, self.inputs))
            except Exception:  # noqa: BLE001 - an unreadable request: refused below
                arrays.append({})
        batch = [(a.get("FEATURES"), a.get(ROW_SPLITS)) for a in arrays]
        try:
            results = run_requests(self.pipeline, [(f, r) for f, r in batch if f is not None],
                                   self.max_spacepoints, self.max_events)
        except Exception as exc:  # noqa: BLE001 - reported to every client, not fatal
            results = [exc] * len(batch)
        answers = iter(results)
        responses = []
        for features, _ in batch:
            result = next(answers) if features is not None else ValueError(
                "FEATURES could not be read")
            responses.append(error_response(self.name, result) if isinstance(result, Exception)
                             else response({"LABELS": result}))
        self.after_request(sum(request_bytes(a) for a in arrays))
        return responses
