"""The ExaTrkX service contract: stage and model names, tensor specs, and the stage functions.

Both ends of the wire read this one module: the SONIC clients (:mod:`sonic_exatrkx.sonic`,
which name the models and check what comes back) and the served Triton models with the
repository writer (:mod:`sonic_exatrkx.server`). Neither of those layers may import the other,
and both may import ``exatrkx``, so the contract lives here, next to the :class:`Pipeline`
whose stage methods it cuts the chain into. It imports nothing from the rest of the project,
and neither torch nor tritonclient at import time.

Tensors between stages (ensemble-level names; N space points, E graph edges, Ef filtered
edges)::

    FEATURES [N,F] -> embed -> EMBEDDING [N,D]
    EMBEDDING, FEATURES -> graph -> EDGES [2,E]
    FEATURES, EDGES -> filter -> FILTERED_EDGES [2,Ef]      (filter model, cut, degree cap)
    FEATURES, FILTERED_EDGES -> gnn -> GNN_SCORES [Ef] (logits)
    FEATURES, FILTERED_EDGES, GNN_SCORES -> tracks -> LABELS [N]

With ``graph_construction="module_map"`` there is no embed stage (:func:`pipeline_stages`)
and the space points' module ids enter where the embedding did: ``MODULE_IDS`` UINT64
``[N]`` (the ACTS ``geometry_id`` of each space point, as ACTS's ``ModuleMapCuda`` takes
them beside the features) is an input of the whole pipeline (``exatrkx``, the ensemble) and
of the graph stage::

    FEATURES, MODULE_IDS -> graph -> EDGES [2,E]

Each stage function calls the Pipeline's own stage methods (``embed``, ``graph``,
``score_filter`` + ``filter_edge_mask``, ``score_gnn``, ``tracks``), exactly what
:meth:`Pipeline.run` is made of, so every placement of the stages (in process, per-stage
models, the ensemble) gives the labels of the in-process pipeline. Bad inputs raise
``ValueError`` naming the tensor (the served models turn it into a per-request error):
non-finite values, edges pointing outside the event, tensors whose lengths disagree.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from .features import check_finite

if TYPE_CHECKING:  # torch loads with the first stage run, not with the contract
    from .pipeline import Pipeline, PipelineConfig

STAGES: tuple[str, ...] = ("embed", "graph", "filter", "gnn", "tracks")
#: The custom-backend model: the whole pipeline in one model (optional ROW_SPLITS input).
PIPELINE_MODEL = "exatrkx"
#: The ensemble of the per-stage models.
ENSEMBLE_MODEL = "exatrkx_ensemble"
#: The custom backend with Triton's dynamic batching (written on request): the tensors of
#: the "batched" stage behind a batch dimension, FEATURES [1, N, F] -> LABELS [1, N].
DYNAMIC_MODEL = "exatrkx_dynamic"
STAGE_MODELS: dict[str, str] = {stage: f"exatrkx_{stage}" for stage in STAGES}
#: Optional input of ``exatrkx``: offsets ``[n_events + 1]`` of several events in one request.
ROW_SPLITS = "ROW_SPLITS"
#: Input of a module-map pipeline: each space point's module (ACTS geometry id).
MODULE_IDS = "MODULE_IDS"
#: The model parameter with the served models folder's checksum (``models_checksum``): a
#: client refuses a server whose models differ from its own (identical tracks need it).
MODELS_CHECKSUM = "MODELS_CHECKSUM"

#: Triton data type -> numpy dtype (None: no numpy type). Config names are ``TYPE_<key>``.
DTYPES: dict[str, np.dtype[Any] | None] = {
    "BOOL": np.dtype(np.bool_), "UINT8": np.dtype(np.uint8), "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32), "UINT64": np.dtype(np.uint64), "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16), "INT32": np.dtype(np.int32), "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16), "FP32": np.dtype(np.float32), "FP64": np.dtype(np.float64),
    "BF16": None, "STRING": np.dtype(np.object_),
}
_FROM_NUMPY = {np_dtype: name for name, np_dtype in DTYPES.items() if np_dtype is not None}
_TENSOR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
_SYMBOL = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

#: A dimension: a size, -1 (any), or a symbol such as "N" that must agree across tensors.
Dim = int | str


class SpecError(ValueError):
    """A tensor spec that Triton would reject (name, data type or dims)."""


class InputTooLargeError(ValueError):
    """An event with more space points than the model's MAX_SPACEPOINTS."""


def triton_dtype(dtype: str | np.dtype[Any] | type) -> str:
    """Normalise ``"FP32"``, ``"fp32"``, ``"TYPE_FP32"`` or a numpy dtype to ``"FP32"``."""
    if isinstance(dtype, str):
        name = dtype.upper().removeprefix("TYPE_")
        if name in DTYPES:
            return name
        try:
            np_dtype: np.dtype[Any] | None = np.dtype(dtype)
        except TypeError:
            np_dtype = None
        if np_dtype is not None and np_dtype in _FROM_NUMPY:
            return _FROM_NUMPY[np_dtype]
        raise SpecError(f"unknown data type {dtype!r}; use one of {', '.join(DTYPES)}")
    try:
        return _FROM_NUMPY[np.dtype(dtype)]
    except (TypeError, KeyError):
        raise SpecError(f"no Triton data type for {dtype!r}") from None


@dataclass(frozen=True)
class TensorSpec:
    """A model input or output: name, Triton data type (``"FP32"``) and dims.

    Dims are positive sizes, ``-1`` (any size) or symbols such as ``"N"`` (variable for
    Triton, but equal wherever the same symbol appears in one request). ``optional=True``
    (inputs only) lets a request leave the tensor out.
    """

    name: str
    dtype: str
    dims: tuple[Dim, ...]
    optional: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _TENSOR_NAME.match(self.name):
            raise SpecError(f"invalid tensor name {self.name!r}: use letters, digits, '_', '.', "
                            "'-' (no spaces or '/'), not starting with '.' or '-'")
        object.__setattr__(self, "dtype", triton_dtype(self.dtype))
        dims = tuple(self.dims)
        if not dims:
            raise SpecError(f"tensor {self.name!r}: dims must not be empty (use [1] for a scalar)")
        for d in dims:
            symbol = isinstance(d, str) and bool(_SYMBOL.match(d))
            size = not isinstance(d, bool) and isinstance(d, (int, np.integer)) and (
                d >= 1 or d == -1)
            if not (symbol or size):
                raise SpecError(f"tensor {self.name!r}: dims {list(dims)} must be positive "
                                "integers or -1 (variable), or size symbols such as 'N'")
        object.__setattr__(self, "dims", tuple(d if isinstance(d, str) else int(d)
                                               for d in dims))

    @property
    def numpy_dtype(self) -> np.dtype[Any]:
        np_dtype = DTYPES[self.dtype]
        if np_dtype is None:
            raise SpecError(f"tensor {self.name!r}: {self.dtype} has no numpy dtype")
        return np_dtype

    @property
    def config_type(self) -> str:
        """The data type as a model config names it (``TYPE_FP32``)."""
        return f"TYPE_{self.dtype}"

    def triton_dims(self) -> list[int]:
        """Dims as a model config declares them (symbols are variable: -1)."""
        return [-1 if isinstance(d, str) else d for d in self.dims]

    def shape(self, bound: Mapping[str, int]) -> tuple[int, ...]:
        """The expected shape, symbols replaced by their ``bound`` sizes (-1 where unbound)."""
        return tuple(bound.get(d, -1) if isinstance(d, str) else d for d in self.dims)


Specs = dict[str, TensorSpec]


def by_name(specs: Iterable[TensorSpec]) -> Specs:
    """``specs`` keyed by tensor name (the form clients and stage tables use)."""
    return {s.name: s for s in specs}


def bind_dims(specs: Mapping[str, TensorSpec], tensors: Mapping[str, np.ndarray]
              ) -> dict[str, int]:
    """Values of the symbolic dims in ``specs`` taken from ``tensors`` (e.g. N)."""
    bound: dict[str, int] = {}
    for name, spec in specs.items():
        if name not in tensors:
            continue
        for dim, size in zip(spec.dims, np.shape(tensors[name]), strict=False):
            if isinstance(dim, str):
                bound.setdefault(dim, int(size))
    return bound


def pipeline_stages(config: PipelineConfig) -> tuple[str, ...]:
    """The stages of the chain for ``config``, in order: :data:`STAGES`, without ``embed``
    for a module map."""
    if config.graph_construction == "module_map":
        return tuple(s for s in STAGES if s != "embed")
    return STAGES


def stage_specs(stage: str, config: PipelineConfig) -> tuple[Specs, Specs]:
    """Input and output specs of ``stage``: one of :data:`STAGES`, ``"pipeline"`` (the whole
    chain, as the ensemble serves it), ``"batched"`` (the ``exatrkx`` model: ``pipeline``
    plus the optional ``ROW_SPLITS``) or ``"dynamic"`` (a client's view of
    ``exatrkx_dynamic``: one event behind Triton's batch dimension, ``[1, N, F]`` ->
    ``[1, N]``; metric learning only)."""
    feats = TensorSpec("FEATURES", "FP32", ("N", config.features.width))
    if stage == "dynamic":
        if config.graph_construction == "module_map":
            raise SpecError(f"{DYNAMIC_MODEL} serves metric-learning pipelines only")
        return (by_name([TensorSpec("FEATURES", "FP32", (1, "N", config.features.width))]),
                by_name([TensorSpec("LABELS", "INT64", (1, "N"))]))
    if config.graph_construction == "module_map":
        if stage == "embed":
            raise SpecError("a module-map pipeline has no 'embed' stage; its stages are "
                            f"{', '.join(pipeline_stages(config))}")
        ids = TensorSpec(MODULE_IDS, "UINT64", ("N",))
        if stage in ("pipeline", "batched", "graph"):
            inputs, outputs = stage_specs(stage, _metric_learning(config))
            inputs = by_name([feats, ids, *(s for n, s in inputs.items()
                                            if n not in ("FEATURES", "EMBEDDING"))])
            return inputs, outputs
    emb = TensorSpec("EMBEDDING", "FP32", ("N", config.embedding.out_features))
    edges = TensorSpec("EDGES", "INT64", (2, "E"))
    f_edges = TensorSpec("FILTERED_EDGES", "INT64", (2, "Ef"))
    scores = TensorSpec("GNN_SCORES", "FP32", ("Ef",))
    labels = TensorSpec("LABELS", "INT64", ("N",))
    row_splits = TensorSpec(ROW_SPLITS, "INT64", (-1,), optional=True)
    table: dict[str, tuple[list[TensorSpec], list[TensorSpec]]] = {
        "pipeline": ([feats], [labels]),
        "batched": ([feats, row_splits], [labels]),
        "embed": ([feats], [emb]),
        "graph": ([emb, feats], [edges]),
        "filter": ([feats, edges], [f_edges]),
        "gnn": ([feats, f_edges], [scores]),
        "tracks": ([feats, f_edges, scores], [labels]),
    }
    if stage not in table:
        raise SpecError(f"unknown ExaTrkX stage {stage!r}; one of {', '.join(table)}")
    inputs, outputs = table[stage]
    return by_name(inputs), by_name(outputs)


def _metric_learning(config: PipelineConfig) -> PipelineConfig:
    return replace(config, graph_construction="metric_learning")


def prepare_features(pipeline: Pipeline, features: np.ndarray, max_spacepoints: int | None = None
                     ) -> np.ndarray:
    """The size limit of the served model, then ``Pipeline.prepare`` (threads, width and
    finiteness checks, float32 layout), as at the start of ``run``."""
    feats = np.asarray(features)
    if max_spacepoints is not None and feats.ndim >= 1 and feats.shape[0] > max_spacepoints:
        raise InputTooLargeError(
            f"event has {feats.shape[0]} space points, more than this model's "
            f"MAX_SPACEPOINTS={max_spacepoints}")
    return pipeline.prepare(feats)


def _check_edges(name: str, edges: np.ndarray, n_nodes: int) -> np.ndarray:
    """``edges`` as int64 ``[2, E]`` with every index in ``[0, n_nodes)``."""
    e = np.asarray(edges)
    if e.ndim != 2 or e.shape[0] != 2:
        raise ValueError(f"{name} must have shape [2, E], got {list(e.shape)}")
    if e.dtype.kind not in "iu":
        raise ValueError(f"{name} must be integers, got {e.dtype}")
    e = np.ascontiguousarray(e, dtype=np.int64)
    if e.size and (int(e.min()) < 0 or int(e.max()) >= n_nodes):
        raise ValueError(f"{name} holds node indices in [{int(e.min())}, {int(e.max())}] but "
                         f"FEATURES has {n_nodes} rows (valid: 0..{n_nodes - 1})")
    return e


def _check_float(name: str, array: np.ndarray, rows: int, stage: str) -> np.ndarray:
    """``array`` as contiguous float32 with ``rows`` rows and finite values."""
    a = np.asarray(array)
    if a.shape[:1] != (rows,):
        raise ValueError(f"{name} has {a.shape[0] if a.ndim else 0} rows, expected {rows} "
                         f"(shape {list(a.shape)})")
    check_finite(a, stage, name)
    return np.ascontiguousarray(a, dtype=np.float32)


# Each stage calls the Pipeline's own stage method on prepared FEATURES, so the per-stage
# models, the ensemble and the in-process stages return what `Pipeline.run` computes.


def _embed(p: Pipeline, t: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {"EMBEDDING": p.embed(t["FEATURES"])}


def _check_module_ids(ids: np.ndarray, rows: int) -> np.ndarray:
    """``MODULE_IDS`` as uint64 ``[rows]``."""
    a = np.asarray(ids)
    if a.shape != (rows,):
        raise ValueError(f"{MODULE_IDS} has shape {list(a.shape)}, expected [{rows}] (one "
                         "module id per space point)")
    if a.dtype.kind not in "iu":
        raise ValueError(f"{MODULE_IDS} must be integers (uint64 geometry ids), got {a.dtype}")
    return a.astype(np.uint64, copy=False)


def _graph(p: Pipeline, t: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    n = t["FEATURES"].shape[0]
    if p.config.graph_construction == "module_map":
        ids = _check_module_ids(t[MODULE_IDS], n)
        return {"EDGES": p.graph(None, t["FEATURES"], ids).astype(np.int64, copy=False)}
    emb = _check_float("EMBEDDING", t["EMBEDDING"], n, "graph")
    return {"EDGES": p.graph(emb, t["FEATURES"]).astype(np.int64, copy=False)}


def _filter(p: Pipeline, t: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    edges = _check_edges("EDGES", t["EDGES"], t["FEATURES"].shape[0])
    keep = p.filter_edge_mask(edges, p.score_filter(t["FEATURES"], edges), t["FEATURES"])
    return {"FILTERED_EDGES": np.ascontiguousarray(edges[:, keep])}


def _gnn(p: Pipeline, t: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    f_edges = _check_edges("FILTERED_EDGES", t["FILTERED_EDGES"], t["FEATURES"].shape[0])
    return {"GNN_SCORES": p.score_gnn(t["FEATURES"], f_edges)}


def _tracks(p: Pipeline, t: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    f_edges = _check_edges("FILTERED_EDGES", t["FILTERED_EDGES"], t["FEATURES"].shape[0])
    scores = _check_float("GNN_SCORES", t["GNN_SCORES"], f_edges.shape[1], "tracks")
    labels = p.tracks(t["FEATURES"].shape[0], f_edges, scores)
    return {"LABELS": labels.astype(np.int64, copy=False)}


_STAGE_FUNCS: dict[str, Callable[[Pipeline, Mapping[str, np.ndarray]], dict[str, np.ndarray]]] = {
    "embed": _embed, "graph": _graph, "filter": _filter, "gnn": _gnn, "tracks": _tracks,
}


def run_stage(pipeline: Pipeline, stage: str, tensors: Mapping[str, np.ndarray | None],
              max_spacepoints: int | None = None) -> dict[str, np.ndarray]:
    """Run one stage of :data:`STAGES` on its named inputs; returns its named outputs."""
    if stage not in _STAGE_FUNCS:
        raise SpecError(f"unknown ExaTrkX stage {stage!r}; one of {', '.join(STAGES)}")
    missing = [n for n in stage_specs(stage, pipeline.config)[0] if tensors.get(n) is None]
    if missing:
        raise ValueError(f"stage '{stage}' needs inputs {missing}")
    t = {n: a for n, a in tensors.items() if a is not None}
    t["FEATURES"] = prepare_features(pipeline, t["FEATURES"], max_spacepoints)
    import torch

    with torch.inference_mode():
        return _STAGE_FUNCS[stage](pipeline, t)


def run_pipeline(pipeline: Pipeline, features: np.ndarray, max_spacepoints: int | None = None,
                 module_ids: np.ndarray | None = None) -> np.ndarray:
    """Labels of the whole chain for one event: ``Pipeline.run`` itself (``module_ids``:
    the ``MODULE_IDS`` of a module-map pipeline)."""
    feats = prepare_features(pipeline, features, max_spacepoints)
    if pipeline.config.graph_construction == "module_map":
        if module_ids is None:
            raise ValueError(f"a module-map pipeline needs {MODULE_IDS} (each space point's "
                             "geometry id) beside FEATURES")
        module_ids = _check_module_ids(module_ids, feats.shape[0])
    return pipeline.run(feats, module_ids=module_ids).labels.astype(np.int64, copy=False)


def run_chain(pipeline: Pipeline, features: np.ndarray,
              module_ids: np.ndarray | None = None) -> np.ndarray:
    """Labels from the stages chained as in the ensemble (for tests, no server)."""
    tensors: dict[str, np.ndarray] = {"FEATURES": np.asarray(features)}
    if module_ids is not None:
        tensors[MODULE_IDS] = np.asarray(module_ids)
    for stage in pipeline_stages(pipeline.config):
        inputs, _ = stage_specs(stage, pipeline.config)
        tensors.update(run_stage(pipeline, stage, {n: tensors[n] for n in inputs}))
    return tensors["LABELS"]
