"""Write Triton model repositories: ``config.pbtxt`` text and versioned model directories.

Small dataclasses cover what our models use (Python-backend models and ensembles, no
batching dimension by default) and render deterministic protobuf text, so a generated
repository is stable byte for byte and easy to diff. Names, shapes and ensemble wiring are
checked when a config is built, with messages naming the model and field, instead of
surfacing later as a server that refuses to start.

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
from typing import Literal

import numpy as np

DATA_TYPES: tuple[str, ...] = (
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
    "FP16", "FP32", "FP64", "BF16", "STRING",
)
_NUMPY_TO_TRITON = {
    np.dtype(np.bool_): "BOOL", np.dtype(np.uint8): "UINT8", np.dtype(np.uint16): "UINT16",
    np.dtype(np.uint32): "UINT32", np.dtype(np.uint64): "UINT64", np.dtype(np.int8): "INT8",
    np.dtype(np.int16): "INT16", np.dtype(np.int32): "INT32", np.dtype(np.int64): "INT64",
    np.dtype(np.float16): "FP16", np.dtype(np.float32): "FP32", np.dtype(np.float64): "FP64",
    np.dtype(np.object_): "STRING",
}
_MODEL_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
_TENSOR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
_PARAM_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


class ModelConfigError(ValueError):
    """A model configuration that Triton would reject (or that is wired inconsistently)."""


def triton_dtype(dtype: str | np.dtype | type) -> str:
    """Normalise ``"FP32"``, ``"TYPE_FP32"`` or a numpy dtype to Triton's ``"FP32"``."""
    if isinstance(dtype, str):
        name = dtype.upper().removeprefix("TYPE_")
        if name in DATA_TYPES:
            return name
        try:
            np_dtype = np.dtype(dtype)
        except TypeError:
            np_dtype = None
        if np_dtype is not None and np_dtype in _NUMPY_TO_TRITON:
            return _NUMPY_TO_TRITON[np_dtype]
        raise ModelConfigError(f"unknown data type {dtype!r}; use one of {', '.join(DATA_TYPES)}")
    try:
        return _NUMPY_TO_TRITON[np.dtype(dtype)]
    except (TypeError, KeyError):
        raise ModelConfigError(f"no Triton data type for {dtype!r}") from None


def _quote(text: str) -> str:
    """A protobuf text-format string literal."""
    escaped = (text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
               .replace("\r", "\\r").replace("\t", "\\t"))
    return f'"{escaped}"'


def _check_name(kind: str, name: str, pattern: re.Pattern[str], owner: str = "") -> None:
    where = f" in model {owner!r}" if owner else ""
    if not isinstance(name, str) or not pattern.match(name):
        raise ModelConfigError(
            f"invalid {kind} name {name!r}{where}: use letters, digits, '_', '.', '-' "
            f"(no spaces or '/'), not starting with '.' or '-'")


@dataclass(frozen=True)
class TensorSpec:
    """An input or output: name, Triton data type and dims (``-1`` = variable size).

    ``optional=True`` (inputs only) lets a request leave the tensor out; the Python backend
    then gets ``None`` for it.
    """

    name: str
    data_type: str
    dims: tuple[int, ...]
    optional: bool = False

    def __post_init__(self) -> None:
        _check_name("tensor", self.name, _TENSOR_NAME)
        object.__setattr__(self, "data_type", triton_dtype(self.data_type))
        dims = tuple(self.dims)
        if not dims:
            raise ModelConfigError(f"tensor {self.name!r}: dims must not be empty "
                                   "(use [1] for a scalar)")
        for d in dims:
            if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or (d < 1 and d != -1):
                raise ModelConfigError(f"tensor {self.name!r}: dims {list(dims)} must be positive "
                                       "integers or -1 (variable)")
        object.__setattr__(self, "dims", tuple(int(d) for d in dims))

    def render(self) -> str:
        dims = ", ".join(str(d) for d in self.dims)
        optional = "    optional: true\n" if self.optional else ""
        return (f"  {{\n    name: {_quote(self.name)}\n    data_type: TYPE_{self.data_type}\n"
                f"    dims: [ {dims} ]\n{optional}  }}")


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

    def render(self) -> str:
        lines = [f"    {{\n      model_name: {_quote(self.model_name)}\n"
                 f"      model_version: {self.model_version}"]
        lines += [f"      input_map {{ key: {_quote(k)} value: {_quote(v)} }}"
                  for k, v in self.input_map.items()]
        lines += [f"      output_map {{ key: {_quote(k)} value: {_quote(v)} }}"
                  for k, v in self.output_map.items()]
        return "\n".join(lines) + "\n    }"


def _specs(items: Iterable[TensorSpec | tuple]) -> tuple[TensorSpec, ...]:
    return tuple(i if isinstance(i, TensorSpec) else TensorSpec(*i) for i in items)


@dataclass(frozen=True)
class ModelConfig:
    """A model's ``config.pbtxt``.

    ``backend`` (default ``"python"``) or ``platform="ensemble"`` (the default when
    ``steps`` are given). ``max_batch_size=0`` means no implicit batch dimension: ``dims`` are the
    full shapes. ``instance_count`` Python stub processes run on CPU (``KIND_CPU``);
    ``parameters`` are string key/values the model reads at ``initialize`` (e.g. thread
    counts). ``version_policy``: ``None``/``"latest"`` (Triton's default: the newest
    version), ``"all"``, or a tuple of specific versions.
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

    def __post_init__(self) -> None:
        _check_name("model", self.name, _MODEL_NAME)
        object.__setattr__(self, "inputs", _specs(self.inputs))
        object.__setattr__(self, "outputs", _specs(self.outputs))
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
            if self.instance_count != 1:
                raise ModelConfigError(f"ensemble {self.name!r}: instance_count does not apply "
                                       "to ensembles (set it on the step models)")
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

    def render(self) -> str:
        """The ``config.pbtxt`` text (deterministic: same config, same bytes)."""
        out = [f"name: {_quote(self.name)}"]
        if self.backend is not None:
            out.append(f"backend: {_quote(self.backend)}")
        else:
            out.append(f"platform: {_quote(str(self.platform))}")
        out.append(f"max_batch_size: {int(self.max_batch_size)}")
        if self.version_policy == "all":
            out.append("version_policy: { all: { } }")
        elif isinstance(self.version_policy, tuple):
            out.append("version_policy: { specific: { versions: [ "
                       f"{', '.join(map(str, self.version_policy))} ] }} }}")
        out.append("input [\n" + ",\n".join(t.render() for t in self.inputs) + "\n]")
        out.append("output [\n" + ",\n".join(t.render() for t in self.outputs) + "\n]")
        if self.platform != "ensemble":
            out.append(f"instance_group [\n  {{\n    count: {int(self.instance_count)}\n"
                       "    kind: KIND_CPU\n  }\n]")
        if self.dynamic_batching:
            out.append("dynamic_batching { }")
        for key in sorted(self.parameters):
            out.append(f"parameters {{\n  key: {_quote(key)}\n  value: {{ string_value: "
                       f"{_quote(self.parameters[key])} }}\n}}")
        if self.steps:
            out.append("ensemble_scheduling {\n  step [\n"
                       + ",\n".join(s.render() for s in self.steps) + "\n  ]\n}")
        return "\n".join(out) + "\n"


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
