"""The event-loop framework: Sequencer, algorithms, event store, process codes."""

from sonic_exatrkx.framework.algorithm import (
    Algorithm,
    AlgorithmContext,
    ExternalWorkAlgorithm,
    Reader,
    ReadHandle,
    WriteHandle,
    Writer,
)
from sonic_exatrkx.framework.commits import EventCommits
from sonic_exatrkx.framework.errors import (
    AlgorithmError,
    ConfigurationError,
    DuplicateKeyError,
    FailedEvent,
    FrameworkError,
    JobAborted,
    MissingKeyError,
    StoreTypeError,
)
from sonic_exatrkx.framework.process_code import ProcessCode
from sonic_exatrkx.framework.sequencer import RunSummary, Sequencer
from sonic_exatrkx.framework.service import Service
from sonic_exatrkx.framework.shard import Shard
from sonic_exatrkx.framework.store import EventStore

__all__ = [
    "Algorithm",
    "AlgorithmContext",
    "AlgorithmError",
    "ConfigurationError",
    "DuplicateKeyError",
    "EventCommits",
    "EventStore",
    "ExternalWorkAlgorithm",
    "FailedEvent",
    "FrameworkError",
    "JobAborted",
    "MissingKeyError",
    "ProcessCode",
    "ReadHandle",
    "Reader",
    "RunSummary",
    "Sequencer",
    "Service",
    "Shard",
    "StoreTypeError",
    "WriteHandle",
    "Writer",
]
