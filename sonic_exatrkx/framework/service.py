"""Job-wide services: resources that live from before the first algorithm's
``initialize`` to after the last ``finalize``/``abort`` (ACTS's ``IService``, CMSSW's
``TritonService``).

A service owns something the whole job shares and that must outlive every algorithm
using it: a Triton server the job starts on this node, a connection pool, a cache. The
Sequencer calls :meth:`Service.start_job` on each service in the order they were added,
before any algorithm initializes, and :meth:`Service.end_job` in reverse order after the
job, whether it succeeded or failed, so a server a job started is always stopped.
"""

from __future__ import annotations

import logging


class Service:
    """Base of job-wide services; subclasses override ``start_job`` / ``end_job``."""

    def __init__(self, *, name: str | None = None) -> None:
        self.name = name or type(self).__name__
        self.logger = logging.getLogger(f"sonic_exatrkx.{self.name}")

    def start_job(self) -> None:
        """Called once before any algorithm's ``initialize``."""

    def end_job(self) -> None:
        """Called once after the job (success or failure); must not raise for a service
        that did not start."""
