"""One event to a model with Triton's batch dimension, seen as an event's client.

A model with ``max_batch_size > 0`` (``exatrkx_dynamic``: the custom backend whose
concurrent requests Triton's dynamic batcher gathers into one pass) takes every tensor with
a leading batch dimension. :class:`BatchDimClient` adds that leading 1 to each input and
takes it off each output, so the producer sees the ``FEATURES [N, F] -> LABELS [N]`` of the
``exatrkx`` model whichever of the two serves it.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Future

import numpy as np

from sonic_exatrkx.sonic.client import (
    InferenceClient,
    Tensors,
    TensorSpec,
    chain,
    completed,
)
from sonic_exatrkx.sonic.stats import ClientStats, ServerTiming

__all__ = ["BatchDimClient"]


class BatchDimClient(InferenceClient):
    """``inner`` (a client of the batched model, specs with the leading 1) for one event
    at a time: ``inputs`` / ``outputs`` are the specs without it. Statistics, checks and
    health are ``inner``'s."""

    def __init__(self, inner: InferenceClient, *, inputs: Mapping[str, TensorSpec],
                 outputs: Mapping[str, TensorSpec]) -> None:
        super().__init__(name=inner.name, inputs=inputs, outputs=outputs)
        self.inner = inner
        self.remote = inner.remote
        self.stats = inner.stats

    def infer(self, inputs: Mapping[str, np.ndarray]) -> Tensors:
        return self.infer_async(inputs).result()

    def infer_async(self, inputs: Mapping[str, np.ndarray]) -> Future[Tensors]:
        batched = self.inner.infer_async({k: np.asarray(v)[None] for k, v in inputs.items()})
        return chain(batched, lambda out: completed(
            {k: v[0] if k in self.output_specs else v for k, v in out.items()}))

    def check(self) -> None:
        self.inner.check()

    def server_stats(self) -> list[ServerTiming]:
        return self.inner.server_stats()

    def per_server_stats(self) -> list[ClientStats]:
        return self.inner.per_server_stats()

    def healthy(self) -> bool:
        return self.inner.healthy()

    def close(self) -> None:
        self.inner.close()

    def all_stats(self) -> list[ClientStats]:
        return self.inner.all_stats()
