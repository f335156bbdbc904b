"""Serve ExaTrkX on a real Triton server: model repositories and the server launcher.

May import :mod:`sonic_exatrkx.exatrkx` (the served models run the same pipeline code), never
the framework, the SONIC clients, ``algorithms`` or the CLI. Clients batching several
events per request use the numpy-only helpers of :mod:`.batching`. The ExaTrkX repository generator
(which imports torch) is loaded on first use, so the launcher and ``serve --check`` stay light.
"""

from typing import Any

from .batching import ROW_SPLITS, batch_events, check_row_splits, split_events, split_labels
from .cleanup import (
    CleanupReport,
    StubProcess,
    cleanup_orphans,
    is_orphan,
    list_stub_processes,
    stubs_of,
)
from .environment import (
    CheckResult,
    TritonEnvironmentError,
    check_environment,
    ensure_python_stub,
    find_tritonserver_dir,
)
from .launcher import TritonServer, TritonServerError, free_ports
from .model_repository import (
    EnsembleStep,
    ModelConfig,
    ModelConfigError,
    TensorSpec,
    triton_dtype,
    write_model,
)

_LAZY = {
    "DYNAMIC_MODEL": "exatrkx_repository",
    "DynamicBatching": "exatrkx_repository",
    "ENSEMBLE_MODEL": "exatrkx_repository",
    "PIPELINE_MODEL": "exatrkx_repository",
    "STAGE_MODELS": "exatrkx_repository",
    "ExaTrkXRepositoryOptions": "exatrkx_repository",
    "write_exatrkx_repository": "exatrkx_repository",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DYNAMIC_MODEL",
    "ENSEMBLE_MODEL",
    "PIPELINE_MODEL",
    "ROW_SPLITS",
    "STAGE_MODELS",
    "CheckResult",
    "CleanupReport",
    "DynamicBatching",
    "EnsembleStep",
    "ExaTrkXRepositoryOptions",
    "ModelConfig",
    "ModelConfigError",
    "StubProcess",
    "TensorSpec",
    "TritonEnvironmentError",
    "TritonServer",
    "TritonServerError",
    "batch_events",
    "check_environment",
    "check_row_splits",
    "cleanup_orphans",
    "ensure_python_stub",
    "find_tritonserver_dir",
    "free_ports",
    "is_orphan",
    "list_stub_processes",
    "split_events",
    "split_labels",
    "stubs_of",
    "triton_dtype",
    "write_exatrkx_repository",
    "write_model",
]
