"""The local Triton server of a job, as a framework service.

A job that asks for Triton inference without naming servers gets one: a ``tritonserver``
on 127.0.0.1 serving every ExaTrkX model of the job's models folder, started when the job
starts (before the track finder initializes and asks for its URL) and stopped when it ends,
also after a failure (CMSSW's ``TritonService`` fallback server does the same). It lives in
the jobs layer because it starts servers (``sonic_exatrkx.server``), which the SONIC layer
and the algorithms may not import; the track finder only sees its :meth:`urls`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from sonic_exatrkx.framework import ConfigurationError, Service
from sonic_exatrkx.sonic import ThreadBudget

if TYPE_CHECKING:
    from sonic_exatrkx.server import DynamicBatching


class LocalTritonServer(Service):
    """A tritonserver on 127.0.0.1 with the budget's instances x threads per model.

    Add it to the Sequencer (``seq.add_service``) and give it to the track finder as its
    ``servers``; or use it as a context manager to keep one server over several jobs.
    """

    def __init__(self, models: str | os.PathLike[str], budget: ThreadBudget, *,
                 ensemble: bool = True, say: Callable[[str], None] = print,
                 name: str | None = None, dynamic_batching: DynamicBatching | None = None,
                 gpus: tuple[int, ...] = ()) -> None:
        super().__init__(name=name)
        self.models = Path(models)
        self.budget = budget
        self.ensemble = ensemble
        #: also serve ``exatrkx_dynamic`` (Triton's dynamic batching of requests)
        self.dynamic_batching = dynamic_batching
        #: the GPUs of the model instances (the budget's instances on each); empty: CPU
        self.gpus = tuple(gpus)
        self.say = say
        self._server = None
        self._repo: tempfile.TemporaryDirectory[str] | None = None

    def start_job(self) -> None:
        from sonic_exatrkx.server import (
            ExaTrkXRepositoryOptions,
            TritonEnvironmentError,
            TritonServer,
            TritonServerError,
            write_exatrkx_repository,
        )

        self._repo = tempfile.TemporaryDirectory(prefix="sonic-exatrkx-repo-")
        try:
            write_exatrkx_repository(self._repo.name, self.models, ExaTrkXRepositoryOptions(
                instances=max(self.budget.server_instances, 1),
                num_threads=self.budget.server_threads, ensemble=self.ensemble,
                dynamic_batching=self.dynamic_batching,
                device="gpu" if self.gpus else "cpu", gpus=self.gpus))
            self.say(f"starting a local Triton server for {self.models} ...")
            server = TritonServer(self._repo.name, env_threads=self.budget.server_threads,
                                  ready_timeout=300)
            try:
                server.start()
            except (TritonServerError, TritonEnvironmentError) as exc:
                raise ConfigurationError(f"could not start a local Triton server: {exc}"
                                         ) from exc
        except BaseException:
            self._repo.cleanup()
            self._repo = None
            raise
        self._server = server
        self.say(f"Triton server ready at {server.grpc_url} ({server.start_seconds:.1f} s)")

    def end_job(self) -> None:
        server, self._server = self._server, None
        try:
            if server is not None:
                server.stop()
                self.say(f"Triton server stopped ({server.stop_seconds or 0:.1f} s)")
        finally:
            if self._repo is not None:
                self._repo.cleanup()
                self._repo = None

    def urls(self) -> list[str]:
        """The server's gRPC URL (the job must have started it)."""
        if self._server is None:
            raise ConfigurationError(f"{self.name}: the local Triton server is not running "
                                     "(add it to the Sequencer with add_service)")
        return [self._server.grpc_url]

    def __enter__(self) -> LocalTritonServer:
        self.start_job()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.end_job()
