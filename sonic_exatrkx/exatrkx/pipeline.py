"""The whole ExaTrkX inference chain on one event, plus TorchScript save/load.

features -> Embedding -> build_edges -> Filter -> cut -> InteractionNetwork -> cut ->
build_tracks. Arrays in, arrays out: no framework, server or Triton code here, so the
in-process job and the served model run exactly this code.

Process settings: ``PipelineConfig.num_threads`` is applied to *both* torch intra-op threads
and the FAISS OpenMP pool (:func:`set_num_threads`) at the start of every :meth:`Pipeline.run`,
together with glibc ``malloc`` settings that keep freed tensor memory for the next event
(:mod:`.allocator`). All are process-wide. The default is 1 thread: an event loop gets its
parallelism from many events in flight, and letting torch and FAISS each spawn a pool per
core made them fight over the cores in the seeds' CPU measurements. ``num_threads=None``
leaves the process settings alone.

Device: ``PipelineConfig.device`` (``cpu``, ``cuda``, ``cuda:N``) places the three models and
the radius search (:func:`~.graph.build_edges`); the stage methods keep numpy arrays in
and out, so the stage contract, the served models and the track building do not change.
A GPU asked for and not usable fails when the pipeline is built (:mod:`.device`).

Determinism: for the same input, models and thread count, the labels are identical (graph
building re-checks distances exactly, and every sort is total).

Several events in one pass (:meth:`Pipeline.run_many`): the embedding, filter and GNN run
once on all events' rows together, graph building and track building per event, and every
event's labels are those :meth:`Pipeline.run` gives it alone, bit for bit. Why that holds:
the matrix library computes a row with the same instructions wherever it sits in a matrix
except in a short tail (a matrix whose row count is not a multiple of the kernel's tile, a
one-column output layer), where it picks other kernels. Every model call here therefore
pads its node and edge rows with zero rows and dummy edges to a multiple of
:data:`ROW_ALIGN`, plus at least one padding row (:func:`aligned_rows`), and a batch of
events puts each event's rows at a multiple of :data:`ROW_ALIGN`: no real row ever sits in
a tail, in one event or in many (the models' own edge blocks are multiples of it too). The
dummy edges join padding nodes only, so no real node's messages change. Checked on CPU
(``tests/server/test_dynamic_batching.py``, 1 and 2 threads); the cost is under ``ROW_ALIGN``
extra rows per call.

Why one module: ``PipelineConfig``, the stage methods of ``Pipeline`` and the folder format
(``config.json`` with its checksums, ``save_models``) are one contract that the served models
read too; the stages' own code lives in :mod:`.graph`, :mod:`.models`, :mod:`.module_map` and
:mod:`.tracks`.
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sonic_exatrkx.checks import check_count

from .allocator import keep_freed_memory
from .device import check_device, usable_device
from .errors import ExaTrkXConfigError, MissingModelFileError
from .features import FeatureConfig, check_finite, check_width, compute_features
from .graph import GraphConfig, apply_cut, build_edges
from .models import (
    Embedding,
    EmbeddingConfig,
    Filter,
    FilterConfig,
    GNNConfig,
    InteractionNetwork,
)
from .module_map import MODULE_MAP_FILE, ModuleMap, coordinates
from .timing import StageTimer
from .tracks import TRACK_BUILDERS, build_tracks, track_edge_mask
from .triplets import filter_selection

MODEL_FILES: dict[str, str] = {"embedding": "embedding.pt", "filter": "filter.pt", "gnn": "gnn.pt"}
CONFIG_FILE = "config.json"
CONFIG_FORMAT = "sonic-exatrkx-pipeline"
CONFIG_VERSION = 1
#: Graph construction of :class:`PipelineConfig`: the embedding and a radius search, or
#: the module map (:mod:`.module_map`).
GRAPH_CONSTRUCTIONS: tuple[str, ...] = ("metric_learning", "module_map")


def set_num_threads(n: int) -> None:
    """Set torch intra-op threads and FAISS's OpenMP threads to ``n`` (process-wide)."""
    check_count(n, "num_threads", error=ExaTrkXConfigError)
    n = int(n)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    import faiss

    if faiss.omp_get_max_threads() != n:
        faiss.omp_set_num_threads(n)


def apply_process_settings(num_threads: int) -> None:
    """What a pipeline sets for its process: :func:`set_num_threads` and the ``malloc``
    settings of :func:`~.allocator.keep_freed_memory` (training uses the same)."""
    set_num_threads(num_threads)
    keep_freed_memory()


@dataclass(frozen=True)
class PipelineConfig:
    """Everything needed to run the chain besides the model weights.

    Cuts live in the stage configs (``filter.cut``, ``gnn.cut``); change them with
    :meth:`with_cuts`. The default graph orientation is ``"inner_outer"`` (physics), which
    needs ``"r"`` among the features; reference models need ``orientation="reference"``.

    ``device``: where the models and the radius search run, ``"cpu"``, ``"cuda"`` or
    ``"cuda:N"`` (:mod:`.device`; a GPU that is not usable is an error when the pipeline
    is built, never a CPU run). A setting of the process, like ``num_threads``: it is not
    written to ``config.json``, so a models folder serves on any device.

    ``track_builder``: ``"components"`` (the reference: connected components of the edges
    passing the GNN cut), ``"best_edges"`` (of those, only each space point's best
    outgoing and incoming edge, :func:`~sonic_exatrkx.exatrkx.tracks.best_edges`, then
    connected components), ``"best_outgoing"`` (only each space point's best outgoing
    edge, then connected components; the shipped models' choice) or
    ``"junction_removal"`` (at every space point with several incoming or several
    outgoing edges only the best of them stays, :func:`~.tracks.junction_removal`, then
    connected components: ACTS's ``JunctionRemoval``).

    ``graph_construction``: ``"metric_learning"`` (the embedding model, then
    :func:`~.graph.build_edges` with ``graph``; the shipped models) or ``"module_map"``
    (:class:`~.module_map.ModuleMap` from ``module_map.npz`` beside the models, on the
    space points' module ids; no embedding model; ``graph.orientation`` still orients the
    edges).
    """

    features: FeatureConfig = field(default_factory=FeatureConfig)
    embedding: EmbeddingConfig = field(default_factory=EmbeddingConfig)
    graph: GraphConfig = field(default_factory=lambda: GraphConfig(orientation="inner_outer"))
    filter: FilterConfig = field(default_factory=FilterConfig)
    gnn: GNNConfig = field(default_factory=GNNConfig)
    min_hits: int = 1
    num_threads: int | None = 1
    edge_batch_size: int = 1 << 18
    track_builder: str = "components"
    device: str = "cpu"
    graph_construction: str = "metric_learning"

    def __post_init__(self) -> None:
        width = self.features.width
        stages = (("embedding", self.embedding), ("filter", self.filter), ("gnn", self.gnn))
        for stage, cfg in stages:
            if cfg.in_features != width:
                raise ExaTrkXConfigError(
                    f"PipelineConfig: stage '{stage}' expects {cfg.in_features} features but the "
                    f"feature config {self.features.names} has {width}"
                )
        for stage, cfg in stages:
            geo = getattr(cfg, "geometry", None)
            if geo is not None and (
                self.features.names[:3] != ("r", "phi", "z")
                or not np.allclose(geo, self.features.scales[:3], rtol=1e-9, atol=0.0)
            ):
                raise ExaTrkXConfigError(
                    f"PipelineConfig: stage '{stage}' geometry {geo} needs feature columns 0-2 "
                    f"to be (r, phi, z) with those scales; features are {self.features.names} "
                    f"/ {self.features.scales}"
                )
        if self.graph.orientation == "inner_outer" and self.features.index("r") is None:
            raise ExaTrkXConfigError(
                "PipelineConfig: orientation 'inner_outer' needs an 'r' feature"
            )
        if self.filter.triplets is not None and (
                self.graph.orientation != "inner_outer"
                or any(self.features.index(c) is None for c in ("r", "phi", "z"))):
            raise ExaTrkXConfigError(
                "PipelineConfig: filter.triplets follows tracks from inner to outer space "
                "points: it needs graph orientation 'inner_outer' and r, phi, z features")
        check_count(self.min_hits, "PipelineConfig: min_hits", error=ExaTrkXConfigError)
        if self.num_threads is not None:
            check_count(self.num_threads, "PipelineConfig: num_threads (or None)",
                        error=ExaTrkXConfigError)
        check_count(self.edge_batch_size, "PipelineConfig: edge_batch_size",
                    error=ExaTrkXConfigError)
        check_device(self.device, "PipelineConfig: device")
        if self.track_builder not in TRACK_BUILDERS:
            raise ExaTrkXConfigError(
                f"PipelineConfig: track_builder must be one of {TRACK_BUILDERS}, "
                f"got {self.track_builder!r}"
            )
        if self.graph_construction not in GRAPH_CONSTRUCTIONS:
            raise ExaTrkXConfigError(
                f"PipelineConfig: graph_construction must be one of {GRAPH_CONSTRUCTIONS}, "
                f"got {self.graph_construction!r}")
        missing = [n for n in ("r", "phi", "z") if self.features.index(n) is None]
        if self.module_map and missing:
            raise ExaTrkXConfigError(
                f"PipelineConfig: graph_construction 'module_map' needs the features r, phi "
                f"and z; {self.features.names} lacks {missing}")

    @property
    def module_map(self) -> bool:
        """Whether the graph comes from a module map (no embedding stage)."""
        return self.graph_construction == "module_map"

    def with_cuts(
        self, filter_cut: float | None = None, gnn_cut: float | None = None
    ) -> PipelineConfig:
        """A copy with other score cuts."""
        f = self.filter if filter_cut is None else replace(self.filter, cut=filter_cut)
        g = self.gnn if gnn_cut is None else replace(self.gnn, cut=gnn_cut)
        return replace(self, filter=f, gnn=g)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": CONFIG_FORMAT,
            "version": CONFIG_VERSION,
            "features": self.features.to_dict(),
            "embedding": self.embedding.to_dict(),
            "graph": self.graph.to_dict(),
            "filter": self.filter.to_dict(),
            "gnn": self.gnn.to_dict(),
            "min_hits": self.min_hits,
            "num_threads": self.num_threads,
            "edge_batch_size": self.edge_batch_size,
            "track_builder": self.track_builder,
            "graph_construction": self.graph_construction,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PipelineConfig:
        d = dict(d)
        d.pop("format", None)
        version = d.pop("version", CONFIG_VERSION)
        if version != CONFIG_VERSION:
            raise ExaTrkXConfigError(f"PipelineConfig: unsupported config version {version}")
        parts = {
            "features": FeatureConfig, "embedding": EmbeddingConfig, "graph": GraphConfig,
            "filter": FilterConfig, "gnn": GNNConfig,
        }
        kwargs: dict[str, Any] = {}
        for key, value in d.items():
            if key in parts:
                try:
                    kwargs[key] = parts[key].from_dict(value)
                except TypeError as err:
                    raise ExaTrkXConfigError(f"PipelineConfig: bad '{key}' section: {err}") from err
            elif key in ("min_hits", "num_threads", "edge_batch_size", "track_builder",
                         "device", "graph_construction"):
                kwargs[key] = value
            else:
                raise ExaTrkXConfigError(f"PipelineConfig: unknown key '{key}'")
        return cls(**kwargs)


@dataclass
class PipelineResult:
    """Labels of one event, per-stage wall times (s) and edge counts, and, on request, the
    intermediate arrays of every stage."""

    labels: np.ndarray
    timings: dict[str, float]
    n_edges: dict[str, int]
    embedding: np.ndarray | None = None
    edges: np.ndarray | None = None  # graph building output [2, E]
    filter_scores: np.ndarray | None = None  # logits [E]
    filtered_edges: np.ndarray | None = None  # edges with sigmoid(filter) > filter cut
    gnn_scores: np.ndarray | None = None  # logits [E_filtered]
    track_edges: np.ndarray | None = None  # edges track building joined (cut + builder)

    @property
    def n_tracks(self) -> int:
        """Number of distinct labels >= 0."""
        return int(np.unique(self.labels[self.labels >= 0]).size)


#: Row alignment of every model call (see the module docstring): a multiple of any matrix
#: kernel tile, and a divisor of the models' edge blocks and the filter's chunks.
ROW_ALIGN = 64


def aligned_rows(n: int) -> int:
    """Rows a call on ``n`` rows is padded to: the next multiple of :data:`ROW_ALIGN`
    above ``n`` (at least one padding row, where dummy edges can point)."""
    return (int(n) // ROW_ALIGN + 1) * ROW_ALIGN


def pad_nodes(x: torch.Tensor, rows: int | None = None) -> torch.Tensor:
    """``x`` ``[N, F]`` with zero rows appended up to ``rows`` (default
    :func:`aligned_rows` of N)."""
    n = x.shape[0]
    rows = aligned_rows(n) if rows is None else rows
    return torch.cat([x, x.new_zeros((rows - n, x.shape[1]))]) if rows > n else x


def pad_edges(edges: np.ndarray, pad_node: int, rows: int | None = None) -> np.ndarray:
    """``edges`` ``[2, E]`` with dummy edges ``pad_node -> pad_node`` appended up to
    ``rows`` (default :func:`aligned_rows` of E); ``pad_node`` must be a padding row."""
    n_e = edges.shape[1]
    rows = aligned_rows(n_e) if rows is None else rows
    out = np.full((2, rows), pad_node, dtype=np.int64)
    out[:, :n_e] = edges
    return out


def _edge_pass(model: nn.Module, x: torch.Tensor, starts: np.ndarray, sizes: Sequence[int],
               edges: Sequence[np.ndarray], batch: int | None) -> list[np.ndarray]:
    """:meth:`Pipeline.run_many`'s edge model call: every event's edges (node indices
    shifted to its rows of ``x``) in one :func:`edge_scores` call, each event's edges
    aligned and padded with dummy edges on the event's first padding row; the scores cut
    back per event."""
    blocks = [pad_edges(e + int(start), int(start) + n) if e.shape[1] else e
              for e, start, n in zip(edges, starts, sizes, strict=False)]
    scores = edge_scores(model, x, np.concatenate(blocks, axis=1), batch)
    offsets = np.cumsum([0, *(b.shape[1] for b in blocks)])
    return [scores[o:o + e.shape[1]] for o, e in zip(offsets, edges, strict=False)]


def edge_scores(model: nn.Module, x: torch.Tensor, edges: np.ndarray, batch: int | None
                ) -> np.ndarray:
    """Run an edge model in chunks of about ``batch`` edges (bounded memory for the
    filter; None: one chunk, as message passing needs), on aligned rows: ``x`` padded with
    zero rows, ``edges`` with dummy edges between padding rows (see the module
    docstring); the scores of ``edges`` only."""
    n_e = edges.shape[1]
    if n_e == 0:
        return np.zeros(0, dtype=np.float32)
    n = x.shape[0]
    xp = pad_nodes(x)
    e = torch.from_numpy(pad_edges(np.asarray(edges, dtype=np.int64), n)).to(x.device)
    chunk = e.shape[1] if batch is None else max(int(batch) // ROW_ALIGN, 1) * ROW_ALIGN
    with torch.inference_mode():
        outs = [model(xp, e[:, i : i + chunk]) for i in range(0, e.shape[1], chunk)]
        scores = torch.cat(outs).reshape(-1)[:n_e]
        return scores.cpu().numpy().astype(np.float32, copy=False)


class Pipeline:
    """Embedding (or module map), filter and GNN models plus their :class:`PipelineConfig`.

    A ``graph_construction="module_map"`` config needs ``module_map`` and no embedding
    (one given is kept but never run)."""

    def __init__(
        self,
        embedding: nn.Module | None,
        filter: nn.Module,  # noqa: A002 - the stage's name
        gnn: nn.Module,
        config: PipelineConfig | None = None,
        module_map: ModuleMap | None = None,
    ) -> None:
        self.config = config or PipelineConfig()
        if self.config.module_map and module_map is None:
            raise ExaTrkXConfigError("stage 'graph': graph_construction 'module_map' needs a "
                                     f"module map ({MODULE_MAP_FILE} beside the models)")
        if embedding is None and not self.config.module_map:
            raise ExaTrkXConfigError("stage 'embedding': graph_construction "
                                     "'metric_learning' needs an embedding model")
        #: the torch device of the models (checked usable: never a silent CPU run)
        self.device = usable_device(self.config.device)
        self.embedding = embedding.eval().to(self.device) if embedding is not None else None
        self.filter = filter.eval().to(self.device)
        self.gnn = gnn.eval().to(self.device)
        self.module_map = module_map if self.config.module_map else None
        # Models built here (eager or TorchScript) carry their input width: check it against
        # the config now rather than failing inside torch on the first event.
        for stage, module, cfg in (
            ("embedding", embedding, self.config.embedding),
            ("filter", filter, self.config.filter),
            ("gnn", gnn, self.config.gnn),
        ):
            width = getattr(module, "in_features", None)
            if isinstance(width, int) and width != cfg.in_features:
                raise ExaTrkXConfigError(
                    f"stage '{stage}': model expects {width} features, config says "
                    f"{cfg.in_features}"
                )

    @classmethod
    def from_config(cls, config: PipelineConfig | None = None, seed: int = 0,
                    module_map: ModuleMap | None = None) -> Pipeline:
        """Untrained models of the configured shapes (for training or tests); a module-map
        config takes ``module_map`` instead of an embedding."""
        cfg = config or PipelineConfig()
        torch.manual_seed(seed)
        emb = None if cfg.module_map else Embedding(cfg.embedding)
        return cls(emb, Filter(cfg.filter), InteractionNetwork(cfg.gnn), cfg, module_map)

    @classmethod
    def from_directory(cls, model_dir: str | Path, **overrides: Any) -> Pipeline:
        """Load ``embedding.pt`` (or ``module_map.npz``), ``filter.pt``, ``gnn.pt``
        (TorchScript) and ``config.json`` (or ``config.yaml``). ``overrides`` replace
        top-level config fields (e.g. ``num_threads=2``, ``device="cuda:0"``)."""
        emb, fil, gnn, cfg = load_models(model_dir)
        module_map = load_module_map(model_dir) if cfg.module_map else None
        if overrides:
            cfg = replace(cfg, **overrides)
        return cls(emb, fil, gnn, cfg, module_map)

    def with_config(self, config: PipelineConfig) -> Pipeline:
        """The same models with other settings (cuts, budgets, threads): one definition of
        each stage's selection for benchmarks and scans that vary them."""
        return type(self)(self.embedding, self.filter, self.gnn, config, self.module_map)

    def with_module_map(self, module_map: ModuleMap) -> Pipeline:
        """The same models and settings with another module map (e.g. its compact form,
        :meth:`ModuleMap.on_grid`)."""
        return type(self)(self.embedding, self.filter, self.gnn, self.config, module_map)

    def save(self, model_dir: str | Path) -> Path:
        """Write the models (TorchScript), the module map if any, and config to
        ``model_dir``."""
        return save_models(model_dir, self.embedding, self.filter, self.gnn, self.config,
                           module_map=self.module_map)

    def features(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Node features of space points at ``x, y, z`` (mm) with this pipeline's scaling."""
        return compute_features(x, y, z, self.config.features)

    def __call__(self, x: np.ndarray, y: np.ndarray, z: np.ndarray,
                 module_ids: np.ndarray | None = None) -> np.ndarray:
        """Track label per space point from positions in mm (and module ids, for a
        module map)."""
        return self.run(self.features(x, y, z), module_ids=module_ids).labels

    # One method per stage: ``run`` is exactly these in sequence, so a caller serving the
    # stages separately (e.g. per-stage Triton models) gets the same arrays bit for bit.

    def prepare(self, features: np.ndarray) -> np.ndarray:
        """Apply the process settings (threads, allocator), check width and finiteness
        (before any torch call), return contiguous float32 features."""
        cfg = self.config
        if cfg.num_threads is not None:
            apply_process_settings(cfg.num_threads)
        feats = np.asarray(features)
        check_width(feats, cfg.embedding.in_features, "embedding")
        check_finite(feats, "embedding", "input features")
        return np.ascontiguousarray(feats, dtype=np.float32)

    def embed(self, features: np.ndarray) -> np.ndarray:
        """Embedding ``[N, D]`` of prepared features."""
        if self.embedding is None or self.config.module_map:
            raise ExaTrkXConfigError("stage 'embed': a module-map pipeline has no embedding")
        n = features.shape[0]
        if n == 0:
            return np.zeros((0, self.config.embedding.out_features), dtype=np.float32)
        with torch.inference_mode():
            emb = self.embedding(pad_nodes(self._tensor(features))).cpu().numpy()[:n]
        check_finite(emb, "embedding", "output")
        return np.ascontiguousarray(emb, dtype=np.float32)

    def graph(self, embedding: np.ndarray | None, features: np.ndarray,
              module_ids: np.ndarray | None = None) -> np.ndarray:
        """Candidate edges: from the embedding (``r`` for the orientation from features),
        or, with a module map, from the features and each space point's module id."""
        if self.module_map is not None:
            if module_ids is None:
                raise ValueError("stage 'graph': the module map needs MODULE_IDS (each space "
                                 "point's geometry id)")
            ids = np.asarray(module_ids).reshape(-1)
            if ids.size != features.shape[0]:
                raise ValueError(f"stage 'graph': MODULE_IDS has {ids.size} entries for "
                                 f"{features.shape[0]} space points")
            r, phi, z = coordinates(features, self.config.features)
            return self.module_map.edges(ids, r, phi, z, self.config.graph.orientation)
        if embedding is None:
            raise ValueError("stage 'graph': metric learning needs the EMBEDDING")
        r_idx = self.config.features.index("r")
        r = features[:, r_idx] if r_idx is not None else None
        return build_edges(
            embedding, r=r, config=self.config.graph, workers=self.config.num_threads,
            device=self.config.device,
        )

    def score_filter(self, features: np.ndarray, edges: np.ndarray) -> np.ndarray:
        """Filter logits ``[E]`` (chunked by ``edge_batch_size``)."""
        return edge_scores(self.filter, self._tensor(features), edges,
                           self.config.edge_batch_size)

    def filter_edge_mask(self, edges: np.ndarray, filter_scores: np.ndarray,
                         features: np.ndarray) -> np.ndarray:
        """Bool ``[E]``: the graph edges the GNN sees (``filter.cut``, then
        ``filter.max_degree``, then ``filter.max_edges``, ranked as ``filter.triplets``
        says; ``features``: the prepared node features)."""
        return filter_selection(edges, filter_scores, features, self.config.features,
                                self.config.filter)

    def score_gnn(self, features: np.ndarray, edges: np.ndarray) -> np.ndarray:
        """GNN logits ``[E]`` (one pass: message passing needs the whole graph)."""
        return edge_scores(self.gnn, self._tensor(features), edges, None)

    def _tensor(self, features: np.ndarray) -> torch.Tensor:
        """Prepared features as a tensor on the pipeline's device."""
        return torch.from_numpy(features).to(self.device)

    def tracks(self, n_nodes: int, edges: np.ndarray, gnn_scores: np.ndarray) -> np.ndarray:
        """Labels from the filtered edges and their GNN logits (cut ``gnn.cut``, then the
        configured ``track_builder``)."""
        keep = self.track_edge_mask(edges, gnn_scores)
        return build_tracks(n_nodes, edges, keep, min_hits=self.config.min_hits)

    def track_edge_mask(self, edges: np.ndarray, gnn_scores: np.ndarray) -> np.ndarray:
        """Bool ``[E]``: the edges track building joins (GNN cut and ``track_builder``)."""
        return track_edge_mask(edges, gnn_scores, apply_cut(gnn_scores, self.config.gnn.cut),
                               self.config.track_builder)

    def run_many(self, events: Sequence[np.ndarray],
                 module_ids: Sequence[np.ndarray] | None = None) -> list[np.ndarray]:
        """The labels of several events (node features ``[N_i, F]`` each; with a module
        map, each event's ``module_ids`` too), computed in one pass: one embedding, filter
        and GNN call on all events' rows (bigger matrices, one call's overhead), graph and
        track building per event. Each event's labels equal :meth:`run`'s for it alone, bit
        for bit (the module docstring says why)."""
        feats = [self.prepare(f) for f in events]
        if not feats:
            return []
        ids: list[np.ndarray | None] = list(module_ids) if module_ids is not None \
            else [None] * len(feats)
        if len(ids) != len(feats):
            raise ValueError(f"run_many: {len(ids)} MODULE_IDS arrays for {len(feats)} events")
        sizes = [f.shape[0] for f in feats]
        # event i's rows at starts[i] (a multiple of ROW_ALIGN), its padding rows after them
        starts = np.cumsum([0, *(aligned_rows(n) if n else 0 for n in sizes)])
        rows = np.zeros((int(starts[-1]), self.config.embedding.in_features), np.float32)
        for start, f in zip(starts, feats, strict=False):
            rows[start:start + f.shape[0]] = f
        x = self._tensor(rows)
        edges = []
        if self.config.module_map:
            edges = [self.graph(None, f, i) for f, i in zip(feats, ids, strict=True)]
        else:
            with torch.inference_mode():
                emb_all = self.embedding(x).cpu().numpy() if x.shape[0] else np.zeros(
                    (0, self.config.embedding.out_features), np.float32)
            for start, f in zip(starts, feats, strict=False):
                emb = np.ascontiguousarray(emb_all[start:start + f.shape[0]])
                check_finite(emb, "embedding", "output")
                edges.append(self.graph(emb, f))
        f_scores = _edge_pass(self.filter, x, starts, sizes, edges, self.config.edge_batch_size)
        f_edges = [e[:, self.filter_edge_mask(e, s, f)]
                   for e, s, f in zip(edges, f_scores, feats, strict=True)]
        g_scores = _edge_pass(self.gnn, x, starts, sizes, f_edges, None)
        return [self.tracks(n, e, g) for n, e, g in zip(sizes, f_edges, g_scores, strict=True)]

    def run(self, features: np.ndarray, return_intermediates: bool = False,
            module_ids: np.ndarray | None = None) -> PipelineResult:
        """Run the chain on node features ``[N, F]`` (float32, see ``features.py``); a
        module map also needs each space point's ``module_ids`` (uint64 geometry ids)."""
        cfg = self.config
        t_start = time.perf_counter()
        feats = self.prepare(features)
        n = feats.shape[0]
        timer = StageTimer()
        with timer.stage("embedding"):
            emb = None if cfg.module_map else self.embed(feats)
        with timer.stage("build_edges"):
            edges = self.graph(emb, feats, module_ids)
        with timer.stage("filter"):
            f_scores = self.score_filter(feats, edges)
            f_edges = edges[:, self.filter_edge_mask(edges, f_scores, feats)]
        with timer.stage("gnn"):
            g_scores = self.score_gnn(feats, f_edges)
        with timer.stage("build_tracks"):
            g_mask = self.track_edge_mask(f_edges, g_scores)
            labels = build_tracks(n, f_edges, g_mask, min_hits=cfg.min_hits)
        timings = dict(timer.timings)
        timings["total"] = time.perf_counter() - t_start
        n_edges = {"graph": int(edges.shape[1]), "filter": int(f_edges.shape[1]),
                   "gnn": int(g_mask.sum())}
        result = PipelineResult(labels=labels, timings=timings, n_edges=n_edges)
        if return_intermediates:
            result.embedding = emb
            result.edges = edges
            result.filter_scores = f_scores
            result.filtered_edges = f_edges
            result.gnn_scores = g_scores
            result.track_edges = f_edges[:, g_mask]
        return result


_JIT_DEPRECATED = r".*torch\.jit.*deprecated"


def script_module(module: nn.Module) -> torch.jit.ScriptModule:
    """``torch.jit.script`` the module (a ScriptModule is returned as is).

    TorchScript is what Triton's ``pytorch_libtorch`` backend loads, so we keep it although
    recent torch marks ``torch.jit`` deprecated; that warning is silenced here only.
    """
    if isinstance(module, torch.jit.ScriptModule):
        return module
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_JIT_DEPRECATED, category=DeprecationWarning)
        return torch.jit.script(module.eval())


def load_script(path: str | Path) -> torch.jit.ScriptModule:
    """``torch.jit.load`` on CPU, in eval mode (deprecation warning silenced, see above)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_JIT_DEPRECATED, category=DeprecationWarning)
        try:
            return torch.jit.load(str(path), map_location="cpu").eval()
        except (RuntimeError, ValueError) as err:  # torch's error has no file name
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ExaTrkXConfigError(f"{path}: not a TorchScript model ({first})") from err


def save_models(
    model_dir: str | Path,
    embedding: nn.Module | None,
    filter: nn.Module,  # noqa: A002
    gnn: nn.Module,
    config: PipelineConfig,
    *,
    module_map: ModuleMap | None = None,
) -> Path:
    """Script (``torch.jit.script``) and write ``embedding.pt``, ``filter.pt``, ``gnn.pt``
    and ``config.json`` into ``model_dir`` (created if needed). A module-map config writes
    ``module_map.npz`` instead of ``embedding.pt``."""
    out = Path(model_dir)
    out.mkdir(parents=True, exist_ok=True)
    if config.module_map:
        if module_map is None:
            raise ExaTrkXConfigError("save_models: graph_construction 'module_map' needs the "
                                     "module map")
        module_map.save(out / MODULE_MAP_FILE)
    elif embedding is None:
        raise ExaTrkXConfigError("save_models: metric learning needs the embedding model")
    for name, module in (("embedding", embedding), ("filter", filter), ("gnn", gnn)):
        if name in model_stages(config):
            script_module(module).save(str(out / MODEL_FILES[name]))
    write_config(out, config)
    return out


def model_stages(config: PipelineConfig) -> tuple[str, ...]:
    """The TorchScript models a configuration has (no embedding with a module map)."""
    return ("filter", "gnn") if config.module_map else ("embedding", "filter", "gnn")


#: config.json's record of the model files it belongs to: file -> stage and sha256.
MODEL_RECORD = "model_files"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def models_checksum(model_dir: str | Path) -> str:
    """One checksum of a models folder (config.json and the .pt files): what a job's
    manifest records and what a served model publishes, so that a client can refuse a
    server whose models differ from its own."""
    folder = Path(model_dir)
    digest = hashlib.sha256()
    for path in sorted([*folder.glob("*.pt"), folder / CONFIG_FILE, folder / MODULE_MAP_FILE]):
        if path.is_file():
            digest.update(path.name.encode())
            digest.update(file_sha256(path).encode())
    return digest.hexdigest()


def write_config(model_dir: Path, config: PipelineConfig) -> Path:
    """``config.json`` with the stage and checksum of each model file beside it, so that
    a file replaced by another stage's model (or another training) is refused at load."""
    data = config.to_dict()
    data[MODEL_RECORD] = {MODEL_FILES[name]: {"stage": name, "sha256": file_sha256(
        model_dir / MODEL_FILES[name])} for name in model_stages(config)}
    if config.module_map:
        data[MODEL_RECORD][MODULE_MAP_FILE] = {
            "stage": "graph", "sha256": file_sha256(model_dir / MODULE_MAP_FILE)}
    path = model_dir / CONFIG_FILE
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def check_model_file(path: Path, stage: str, record: Mapping[str, Any] | None) -> None:
    """Refuse a model file that is not the one ``config.json`` was written with."""
    if record is None:
        return  # a config.json from before the record: nothing to check against
    entry = record.get(path.name)
    if entry is None or entry.get("stage") != stage:
        raise ExaTrkXConfigError(f"{path}: config.json has no record of this file as the "
                                 f"{stage} model")
    have = file_sha256(path)
    if have != entry.get("sha256"):
        raise ExaTrkXConfigError(
            f"{path}: not the {stage} model config.json was written with (sha256 "
            f"{have[:12]}... instead of {str(entry.get('sha256'))[:12]}...): copy the "
            "models folder whole, or train or export it again")


def read_config(model_dir: Path) -> PipelineConfig:
    """The pipeline config of a models folder (config.json, or YAML), without the models."""
    return _read_config_and_record(model_dir)[0]


def _read_config_and_record(model_dir: Path
                            ) -> tuple[PipelineConfig, Mapping[str, Any] | None]:
    for name in (CONFIG_FILE, "config.yaml", "config.yml"):
        path = model_dir / name
        if path.is_file():
            text = path.read_text()
            if name.endswith(".json"):
                try:
                    data = json.loads(text)
                except json.JSONDecodeError as err:
                    raise ExaTrkXConfigError(f"{path} line {err.lineno}, column {err.colno}: "
                                             f"not valid JSON ({err.msg})") from err
            else:
                import yaml

                data = yaml.safe_load(text)
            record = data.pop(MODEL_RECORD, None) if isinstance(data, dict) else None
            try:
                return PipelineConfig.from_dict(data), record
            except ValueError as err:
                raise ExaTrkXConfigError(f"{path}: {err}") from err
    raise MissingModelFileError(
        f"pipeline config not found: {model_dir / CONFIG_FILE} (nor config.yaml / config.yml)"
    )


def load_models(
    model_dir: str | Path,
) -> tuple[torch.jit.ScriptModule | None, torch.jit.ScriptModule, torch.jit.ScriptModule,
           PipelineConfig]:
    """Load what :func:`save_models` wrote: ``(embedding, filter, gnn, config)``; the
    embedding is None for a module-map config (:func:`load_module_map` reads the map)."""
    d = Path(model_dir)
    if not d.is_dir():
        raise MissingModelFileError(f"model directory not found: {d}")
    config, record = _read_config_and_record(d)
    models: dict[str, torch.jit.ScriptModule] = {}
    for name in model_stages(config):
        path = d / MODEL_FILES[name]
        if not path.is_file():
            raise MissingModelFileError(f"stage '{name}': model file not found: {path}")
        check_model_file(path, name, record)
        models[name] = load_script(path)
    return models.get("embedding"), models["filter"], models["gnn"], config


def load_module_map(model_dir: str | Path) -> ModuleMap:
    """The module map of a models folder, refused unless it is the file config.json was
    written with (its sha256)."""
    d = Path(model_dir)
    _, record = _read_config_and_record(d)
    path = d / MODULE_MAP_FILE
    if not path.is_file():
        raise MissingModelFileError(f"stage 'graph': module map not found: {path}")
    check_model_file(path, "graph", record)
    return ModuleMap.load(path)


__all__ = [
    "PipelineConfig",
    "PipelineResult",
    "Pipeline",
    "save_models",
    "load_models",
    "load_module_map",
    "model_stages",
    "set_num_threads",
    "apply_process_settings",
    "script_module",
    "load_script",
]
