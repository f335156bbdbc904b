"""A chain of clients as one client: the service options that serve some stages only."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from typing import Any

import numpy as np

from sonic_exatrkx.sonic.client import (
    InferenceClient,
    Tensors,
    TensorSpec,
    chain,
    completed,
)
from sonic_exatrkx.sonic.stats import ClientStats, ServerTiming


class StagedClient(InferenceClient):
    """Runs ``stages`` in order on a growing set of named tensors.

    Each stage gets the tensors named in its ``input_specs`` and adds its outputs. In
    ``infer_async`` a stage starts from the completion of the one before (a remote
    stage's callback dispatches the next, a local stage runs on its client's pool), so
    no thread waits between stages. The result holds this client's ``outputs`` only.
    """

    def __init__(self, stages: Sequence[InferenceClient], *, name: str,
                 inputs: Mapping[str, TensorSpec], outputs: Mapping[str, TensorSpec]) -> None:
        super().__init__(name=name, inputs=inputs, outputs=outputs)
        if not stages:
            raise ValueError("StagedClient needs at least one stage")
        self.stages = list(stages)
        self.remote = any(stage.remote for stage in self.stages)

    def infer(self, inputs: Mapping[str, np.ndarray]) -> Tensors:
        self.stats.add(requests=1)
        tensors: dict[str, Any] = dict(inputs)
        for stage in self.stages:
            tensors.update(stage.infer({k: tensors[k] for k in stage.input_specs}))
        return {k: tensors[k] for k in self.output_specs}

    def infer_async(self, inputs: Mapping[str, np.ndarray]) -> Future[Tensors]:
        self.stats.add(requests=1)
        fut: Future[Any] = completed(dict(inputs))
        for stage in self.stages:
            fut = chain(fut, lambda tensors, s=stage: _run_stage(s, tensors))
        return chain(fut, lambda tensors: completed({k: tensors[k] for k in self.output_specs}))

    def server_stats(self) -> list[ServerTiming]:
        return [t for stage in self.stages for t in stage.server_stats()]

    def per_server_stats(self) -> list[ClientStats]:
        return [s for stage in self.stages for s in stage.per_server_stats()]

    def healthy(self) -> bool:
        return all(stage.healthy() for stage in self.stages)

    def check(self) -> None:
        for stage in self.stages:
            stage.check()

    def close(self) -> None:
        for stage in self.stages:
            stage.close()

    def all_stats(self) -> list[ClientStats]:
        return [s for stage in self.stages for s in stage.all_stats()]


def _run_stage(stage: InferenceClient, tensors: dict[str, Any]) -> Future[Any]:
    sub = {k: tensors[k] for k in stage.input_specs}
    return chain(stage.infer_async(sub), lambda out: completed({**tensors, **out}))
