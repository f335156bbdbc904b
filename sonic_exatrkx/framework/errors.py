"""Errors of the event loop; each names the algorithm and event at fault."""

from __future__ import annotations

from dataclasses import dataclass


class FrameworkError(RuntimeError):
    """Base class for event-loop errors."""


class ConfigurationError(FrameworkError):
    """The chain of algorithms cannot work; raised before the first event."""


class MissingKeyError(FrameworkError, KeyError):
    """An algorithm read a key that is not (yet) in the event store."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


class DuplicateKeyError(FrameworkError):
    """A key was written twice for one event (store keys are write-once)."""


class StoreTypeError(FrameworkError, TypeError):
    """A value does not have the type its handle declared."""


@dataclass(frozen=True)
class FailedEvent:
    """One event whose chain raised: recorded when the job continues on errors."""

    event: int
    algorithm: str
    error: str


class AlgorithmError(FrameworkError):
    """An algorithm raised while processing an event."""

    def __init__(self, algorithm: str, event: int, cause: BaseException) -> None:
        self.algorithm = algorithm
        self.event = event
        self.cause = cause
        super().__init__(
            f"algorithm '{algorithm}' failed on event {event}: {type(cause).__name__}: {cause}"
        )


class JobAborted(FrameworkError):
    """An algorithm returned ProcessCode.ABORT."""

    def __init__(self, algorithm: str, event: int) -> None:
        self.algorithm = algorithm
        self.event = event
        super().__init__(f"algorithm '{algorithm}' aborted the job on event {event}")
