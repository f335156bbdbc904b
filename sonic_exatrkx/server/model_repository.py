"""Write Triton model repositories: ``config.pbtxt`` files and versioned model directories.

Small dataclasses cover what our models use (Python-backend models and ensembles, no
batching dimension by default, dynamic batching of ragged inputs on request, CPU or GPU
instances); :meth:`ModelConfig.render` builds Triton's own ``ModelConfig`` protobuf
(``tritonclient.grpc.model_config_pb2``) and prints it as protobuf text, so the file is
what Triton parses and is stable byte for byte. Tensors are the contract's
:class:`~sonic_exatrkx.exatrkx.stages.TensorSpec` (symbolic dims are written as -1).
Names, shapes and ensemble wiring are checked when a config is built, with messages naming
the model and field, instead of surfacing later as a server that refuses to start.

Layout written by :func:`write_model`::

    <repo>/<name>/config.pbtxt
    <repo>/<name>/<version>/model.py (and any other files)
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from sonic_exatrkx.exatrkx import stages as contract
from sonic_exatrkx.exatrkx.stages import SpecError, TensorSpec

if TYPE_CHECKING:
    from tritonclient.grpc import model_config_pb2

__all__ = ["EnsembleStep", "ModelConfig", "ModelConfigError", "TensorSpec", "triton_dtype",
           "write_model"]

_MODEL_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
_TENSOR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
_PARAM_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


class ModelConfigError(ValueError):
    """A model configuration that Triton would reject (or that is wired inconsistently)."""


def triton_dtype(dtype: str | np.dtype[Any] | type) -> str:
    """Normalise ``"FP32"``, ``"TYPE_FP32"`` or a numpy dtype to Triton's ``"FP32"``."""
    try:
        return contract.triton_dtype(dtype)
    except SpecError as exc:
        raise ModelConfigError(str(exc)) from None


def _check_name(kind: str, name: str, pattern: re.Pattern[str], owner: str = "") -> None:
    where = f" in model {owner!r}" if owner else ""
    if not isinstance(name, str) or not pattern.match(name):
        raise ModelConfigError(
            f"invalid {kind} name {name!r}{where}: use letters, digits, '_', '.', '-' "
            f"(no spaces or '/'), not starting with '.' or '-'")


@dataclass(frozen=True)
class EnsembleStep:
    """One step of an ensemble.

    ``input_map``/``output_map``: key = the step model's tensor name, value = the
    ensemble-level tensor name (an ensemble input/output or an intermediate).
    """

    model_name: str
    input_map: Mapping[str, str]
    output_map: Mapping[str, str]
    model_version: int = -1

    def __post_init__(self) -> None:
        _check_name("step model", self.model_name, _MODEL_NAME)
        for what, mapping in (("input_map", self.input_map), ("output_map", self.output_map)):
            if not mapping:
                raise ModelConfigError(f"ensemble step {self.model_name!r}: empty {what}")
            for k, v in mapping.items():
                _check_name("tensor", k, _TENSOR_NAME, self.model_name)
                _check_name("tensor", v, _TENSOR_NAME, self.model_name)
        object.__setattr__(self, "input_map", dict(self.input_map))
        object.__setattr__(self, "output_map", dict(self.output_map))
        if self.model_version != -1 and self.model_version < 1:
            raise ModelConfigError(f"ensemble step {self.model_name!r}: model_version must be "
                                   f">= 1 or -1 (latest), got {self.model_version}")

    def fill(self, step: Any) -> None:
        """Set the fields of an ``ensemble_scheduling.step`` protobuf message."""
        step.model_name = self.model_name
        step.model_version = self.model_version
        step.input_map.update(self.input_map)
        step.output_map.update(self.output_map)


def _specs(model: str, items: Iterable[TensorSpec | tuple]) -> tuple[TensorSpec, ...]:
    try:
        return tuple(i if isinstance(i, TensorSpec) else TensorSpec(*i) for i in items)
    except SpecError as exc:
        raise ModelConfigError(f"model {model!r}: {exc}") from None


@dataclass(frozen=True)
class ModelConfig:
    """A model's ``config.pbtxt``.

    ``backend`` (default ``"python"``) or ``platform="ensemble"`` (the default when
    ``steps`` are given). ``max_batch_size=0`` means no implicit batch dimension: ``dims`` are the
    full shapes. ``instance_count`` Python stub processes run per placement (below);
    ``parameters`` are string key/values the model reads at ``initialize`` (e.g. thread
    counts). ``version_policy``: ``None``/``"latest"`` (Triton's default: the newest
    version), ``"all"``, or a tuple of specific versions.

    Server-side batching: ``max_batch_size > 0`` adds Triton's batch dimension in front of
    every tensor's ``dims``; ``dynamic_batching`` lets Triton hand several queued requests
    to one ``execute`` (waiting up to ``max_queue_delay_us`` for more);
    ``ragged_inputs`` names the inputs whose other dims may differ between the requests of
    one batch (``allow_ragged_batch``: events of different sizes), without which only
    requests of equal shapes are batched together.

    Placement: ``instance_kind="cpu"`` (``KIND_CPU``: ``instance_count`` instances) or
    ``"gpu"`` (``KIND_GPU``: ``instance_count`` instances on *each* GPU of ``gpus``, every
    GPU the server sees when ``gpus`` is empty); a Python-backend model learns its GPU
    from Triton (``model_instance_device_id``).
    """

    name: str
    inputs: Sequence[TensorSpec | tuple]
    outputs: Sequence[TensorSpec | tuple]
    backend: str | None = None
    platform: str | None = None
    max_batch_size: int = 0
    instance_count: int = 1
    parameters: Mapping[str, str | int | float | bool] = field(default_factory=dict)
    steps: Sequence[EnsembleStep] = ()
    version_policy: Literal["latest", "all"] | tuple[int, ...] | None = None
    dynamic_batching: bool = False
    max_queue_delay_us: int = 0
    ragged_inputs: Sequence[str] = ()
    instance_kind: Literal["cpu", "gpu"] = "cpu"
    gpus: Sequence[int] = ()

    def __post_init__(self) -> None:
        _check_name("model", self.name, _MODEL_NAME)
        object.__setattr__(self, "inputs", _specs(self.name, self.inputs))
        object.__setattr__(self, "outputs", _specs(self.name, self.outputs))
        object.__setattr__(self, "steps", tuple(self.steps))
        if self.backend is None and self.platform is None:
            object.__setattr__(self, "platform" if self.steps else "backend",
                               "ensemble" if self.steps else "python")
        if (self.backend is None) == (self.platform is None):
            raise ModelConfigError(f"model {self.name!r}: give exactly one of backend "
                                   f"(e.g. 'python') or platform (e.g. 'ensemble')")
        if not self.inputs or not self.outputs:
            raise ModelConfigError(f"model {self.name!r}: needs at least one input and output")
        bad = [t.name for t in self.outputs if t.optional]
        if bad:
            raise ModelConfigError(f"model {self.name!r}: outputs {bad} cannot be optional "
                                   "(only inputs can)")
        names = [t.name for t in (*self.inputs, *self.outputs)]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ModelConfigError(f"model {self.name!r}: duplicate tensor names {dup}")
        if int(self.max_batch_size) != self.max_batch_size or self.max_batch_size < 0:
            raise ModelConfigError(f"model {self.name!r}: max_batch_size must be an integer "
                                   f">= 0, got {self.max_batch_size}")
        if self.dynamic_batching and self.max_batch_size == 0:
            raise ModelConfigError(f"model {self.name!r}: dynamic_batching needs "
                                   "max_batch_size > 0 (Triton ignores it otherwise)")
        delay = self.max_queue_delay_us
        if isinstance(delay, bool) or not isinstance(delay, int) or delay < 0:
            raise ModelConfigError(f"model {self.name!r}: max_queue_delay_us must be an "
                                   f"integer >= 0, got {delay!r}")
        if delay and not self.dynamic_batching:
            raise ModelConfigError(f"model {self.name!r}: max_queue_delay_us needs "
                                   "dynamic_batching")
        object.__setattr__(self, "ragged_inputs", tuple(self.ragged_inputs))
        unknown = sorted(set(self.ragged_inputs) - {t.name for t in self.inputs})
        if unknown:
            raise ModelConfigError(f"model {self.name!r}: ragged_inputs {unknown} are not "
                                   "inputs of the model")
        if self.ragged_inputs and not self.dynamic_batching:
            raise ModelConfigError(f"model {self.name!r}: ragged_inputs need "
                                   "dynamic_batching (and max_batch_size > 0)")
        if self.instance_kind not in ("cpu", "gpu"):
            raise ModelConfigError(f"model {self.name!r}: instance_kind must be 'cpu' or "
                                   f"'gpu', got {self.instance_kind!r}")
        gpus = tuple(self.gpus)
        if any(isinstance(g, bool) or not isinstance(g, int) or g < 0 for g in gpus) or \
                len(set(gpus)) != len(gpus):
            raise ModelConfigError(f"model {self.name!r}: gpus must be distinct GPU ids >= 0, "
                                   f"got {list(gpus)}")
        if gpus and self.instance_kind != "gpu":
            raise ModelConfigError(f"model {self.name!r}: gpus {list(gpus)} need "
                                   "instance_kind='gpu'")
        object.__setattr__(self, "gpus", gpus)
        params = {}
        for k, v in dict(self.parameters).items():
            if not isinstance(k, str) or not _PARAM_KEY.match(k):
                raise ModelConfigError(f"model {self.name!r}: invalid parameter key {k!r}")
            params[k] = str(v).lower() if isinstance(v, bool) else str(v)
        object.__setattr__(self, "parameters", params)
        if self.version_policy not in (None, "latest", "all"):
            versions = tuple(self.version_policy)  # type: ignore[arg-type]
            if not versions or any(not isinstance(v, int) or v < 1 for v in versions):
                raise ModelConfigError(f"model {self.name!r}: version_policy must be 'latest', "
                                       f"'all' or positive version numbers, got "
                                       f"{self.version_policy!r}")
            object.__setattr__(self, "version_policy", tuple(sorted(set(versions))))
        if self.platform == "ensemble":
            if self.instance_count != 1 or self.instance_kind != "cpu":
                raise ModelConfigError(f"ensemble {self.name!r}: instances and their placement "
                                       "do not apply to ensembles (set them on the step "
                                       "models)")
            self._check_ensemble()
        else:
            if self.steps:
                raise ModelConfigError(f"model {self.name!r}: steps are only for "
                                       "platform='ensemble'")
            if int(self.instance_count) != self.instance_count or self.instance_count < 1:
                raise ModelConfigError(f"model {self.name!r}: instance_count must be an "
                                       f"integer >= 1, got {self.instance_count}")

    def _check_ensemble(self) -> None:
        if not self.steps:
            raise ModelConfigError(f"ensemble {self.name!r}: needs at least one step")
        available = {t.name for t in self.inputs}
        produced: set[str] = set()
        for step in self.steps:
            missing = sorted(set(step.input_map.values()) - available)
            if missing:
                raise ModelConfigError(
                    f"ensemble {self.name!r}: step {step.model_name!r} reads {missing}, which "
                    "are neither ensemble inputs nor outputs of an earlier step")
            for v in step.output_map.values():
                if v in produced or v in {t.name for t in self.inputs}:
                    raise ModelConfigError(f"ensemble {self.name!r}: tensor {v!r} is written "
                                           "more than once")
                produced.add(v)
            available |= set(step.output_map.values())
        missing = sorted({t.name for t in self.outputs} - produced)
        if missing:
            raise ModelConfigError(f"ensemble {self.name!r}: outputs {missing} are not "
                                   "produced by any step")

    def to_proto(self) -> model_config_pb2.ModelConfig:
        """Triton's ``ModelConfig`` protobuf of this config (needs tritonclient)."""
        from tritonclient.grpc import model_config_pb2 as pb

        msg = pb.ModelConfig(name=self.name, max_batch_size=int(self.max_batch_size))
        if self.backend is not None:
            msg.backend = self.backend
        else:
            msg.platform = str(self.platform)
        if self.version_policy == "all":
            msg.version_policy.all.SetInParent()
        elif isinstance(self.version_policy, tuple):
            msg.version_policy.specific.versions.extend(self.version_policy)
        for field_, specs in ((msg.input, self.inputs), (msg.output, self.outputs)):
            for spec in specs:
                tensor = field_.add(name=spec.name, data_type=pb.DataType.Value(spec.config_type),
                                    dims=spec.triton_dims())
                if spec.optional:
                    tensor.optional = True
                if spec.name in self.ragged_inputs and field_ is msg.input:
                    tensor.allow_ragged_batch = True
        if self.platform != "ensemble":
            group = msg.instance_group.add(count=int(self.instance_count))
            if self.instance_kind == "gpu":
                group.kind = pb.ModelInstanceGroup.KIND_GPU
                group.gpus.extend(self.gpus)
            else:
                group.kind = pb.ModelInstanceGroup.KIND_CPU
        if self.dynamic_batching:
            msg.dynamic_batching.SetInParent()
            if self.max_queue_delay_us:
                msg.dynamic_batching.max_queue_delay_microseconds = self.max_queue_delay_us
        for key, value in self.parameters.items():
            msg.parameters[key].string_value = value
        for step in self.steps:
            step.fill(msg.ensemble_scheduling.step.add())
        return msg

    def render(self) -> str:
        """The ``config.pbtxt`` text (deterministic: same config, same bytes)."""
        from google.protobuf import text_format

        return text_format.MessageToString(self.to_proto())


FileContent = bytes | str | Path


def write_model(repo_dir: str | Path, config: ModelConfig,
                files: Mapping[str, FileContent] | None = None, version: int = 1) -> Path:
    """Write ``<repo>/<name>/config.pbtxt`` and ``<repo>/<name>/<version>/<files>``.

    ``files`` maps a relative path inside the version directory to its content: ``str``
    is written as UTF-8 text, ``bytes`` as is, a ``Path`` is copied (a file, or a directory
    recursively). Other versions already in the model directory are kept. Returns the
    model directory.
    """
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ModelConfigError(f"model {config.name!r}: version must be an integer >= 1, "
                               f"got {version!r}")
    model_dir = Path(repo_dir) / config.name
    version_dir = model_dir / str(version)
    version_dir.mkdir(parents=True, exist_ok=True)
    for rel, content in (files or {}).items():
        rel_path = PurePosixPath(rel)
        if rel_path.is_absolute() or ".." in rel_path.parts or not rel_path.parts:
            raise ModelConfigError(f"model {config.name!r}: file name {rel!r} must be a "
                                   "relative path inside the version directory")
        dst = version_dir.joinpath(*rel_path.parts)
        dst.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path):
            if content.is_dir():
                shutil.copytree(content, dst, dirs_exist_ok=True)
            else:
                shutil.copyfile(content, dst)
        elif isinstance(content, bytes):
            dst.write_bytes(content)
        elif isinstance(content, str):
            dst.write_text(content, encoding="utf-8")
        else:
            raise ModelConfigError(f"model {config.name!r}: content of {rel!r} must be bytes, "
                                   f"str or Path, got {type(content).__name__}")
    (model_dir / "config.pbtxt").write_text(config.render(), encoding="utf-8")
    return model_dir
