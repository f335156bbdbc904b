"""Fixed choices of the ``bench`` study commands, as enums (the others, shared with
``run``, are in :mod:`sonic_exatrkx.cli.choices`)."""

from __future__ import annotations

from enum import Enum


class StudyName(str, Enum):
    throughput = "throughput"
    instances = "instances"
    service_options = "service-options"
    threads = "threads"
    latency = "latency"
    batching = "batching"
    scaling = "scaling"


class ThroughputPath(str, Enum):
    direct = "direct"
    custom = "custom"
    custom_batched = "custom-batched"
    ensemble = "ensemble"


class ThreadsPath(str, Enum):
    direct = "direct"
    shared_pools = "direct-shared-pools"
    served = "served"


class Encoding(str, Enum):
    """How perf_analyzer's JSON carries a tensor: a list of numbers, or base64 bytes."""

    list = "list"
    b64 = "b64"
