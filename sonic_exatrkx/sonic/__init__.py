"""The SONIC layer: inference as a service for framework algorithms.

:class:`SonicProducer` is the algorithm base (``acquire`` converts and dispatches,
``produce`` stores), clients share one interface (:class:`LocalClient` in process,
:class:`TritonClient` on Triton servers over gRPC or HTTP, :class:`StagedClient` chaining
stages), and :mod:`.exatrkx_service` places the ExaTrkX stages (service options S0-S4,
custom backend). May import the framework, io and exatrkx layers, never the server.
"""

from sonic_exatrkx.sonic.budget import ThreadBudget, split_cores
from sonic_exatrkx.sonic.client import (
    InferenceClient,
    LocalClient,
    TensorSpec,
    check_outputs,
)
from sonic_exatrkx.sonic.errors import (
    InferenceError,
    OutputCheckError,
    RequestTimeoutError,
    ServerUnavailableError,
    SonicError,
    UnknownModelError,
    is_recoverable,
)
from sonic_exatrkx.sonic.exatrkx_service import (
    ENSEMBLE_MODEL,
    PIPELINE_MODEL,
    STAGE_MODELS,
    exatrkx_client,
    local_client,
    stage_specs,
)
from sonic_exatrkx.sonic.metrics import MetricsServer, write_metrics, write_prometheus
from sonic_exatrkx.sonic.options import TritonOptions
from sonic_exatrkx.sonic.producer import MODES, SonicProducer
from sonic_exatrkx.sonic.retry import RetryPolicy
from sonic_exatrkx.sonic.service_option import SERVICE_OPTIONS, ServiceOption
from sonic_exatrkx.sonic.staged import StagedClient
from sonic_exatrkx.sonic.stats import ClientStats, ServerTiming
from sonic_exatrkx.sonic.triton import TritonClient, parse_servers

__all__ = [
    "ENSEMBLE_MODEL",
    "MODES",
    "PIPELINE_MODEL",
    "SERVICE_OPTIONS",
    "STAGE_MODELS",
    "ClientStats",
    "InferenceClient",
    "InferenceError",
    "MetricsServer",
    "LocalClient",
    "OutputCheckError",
    "RequestTimeoutError",
    "RetryPolicy",
    "ServerTiming",
    "ServerUnavailableError",
    "ServiceOption",
    "SonicError",
    "SonicProducer",
    "StagedClient",
    "TensorSpec",
    "ThreadBudget",
    "TritonClient",
    "TritonOptions",
    "UnknownModelError",
    "check_outputs",
    "exatrkx_client",
    "is_recoverable",
    "local_client",
    "parse_servers",
    "split_cores",
    "stage_specs",
    "write_metrics",
    "write_prometheus",
]
