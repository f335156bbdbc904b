"""Graph building: fixed-radius neighbours in the embedded space, and score cuts.

Conventions of :func:`build_edges`:

- an edge joins two space points whose embeddings are closer than ``radius`` (Euclidean,
  strict ``<``; FAISS works with squared L2, so it is searched with ``radius**2`` and every
  candidate is re-checked with an exact float64 distance, which makes the result independent
  of FAISS rounding and thread count);
- self-loops are dropped and each undirected pair appears once;
- ``max_k`` caps each space point's own neighbour list, nearest first (ties: lower index
  first); a pair is kept when either end lists the other; with ``neighbour_budget`` set, an
  event of ``N`` space points uses ``min(max_k, neighbour_budget // N)`` (at least 1);
- orientation ``"reference"``: ``src > dst`` by index, as the public reference service;
  ``"inner_outer"``: ``src`` is the space point with the smaller ``r`` (ties: lower index
  is ``src``), the physics orientation;
- output int64 ``[2, E]`` sorted by ``src`` then ``dst``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import numpy as np
from scipy.sparse import csr_matrix

from sonic_exatrkx.checks import check_count

from .device import is_cuda
from .errors import ExaTrkXConfigError
from .features import check_finite

Orientation = Literal["reference", "inner_outer"]
IndexKind = Literal["auto", "flat", "ivf", "kdtree", "torch"]
SearchKind = Literal["range", "knn"]

ORIENTATIONS: tuple[str, ...] = ("reference", "inner_outer")
INDEX_KINDS: tuple[str, ...] = ("auto", "flat", "ivf", "kdtree", "torch")
SEARCH_KINDS: tuple[str, ...] = ("range", "knn")

# Relative slack on the squared radius given to FAISS; candidates are then cut exactly.
_SEARCH_SLACK = 1e-4

_log = logging.getLogger(__name__)
_budget_seen = False  # the first event the neighbour budget lowers k is logged at INFO


@dataclass(frozen=True)
class GraphConfig:
    """Hyper-parameters of :func:`build_edges` (defaults: the reference service).

    ``index="auto"`` uses FAISS ``IndexFlatL2`` (exact, brute force, cost ~N^2) up to
    ``flat_max_nodes`` space points and FAISS ``IndexIVFFlat`` (2 sqrt(N) cells, 5 k-means
    iterations, 8 probes) above. Measured on this project's shared 2-core CPU, one thread,
    clustered 8-D points, whole ``build_edges``: flat 22 / 150 / 570 / 1230 ms at
    2k / 5k / 10k / 20k points; IVF 16 / 88 / 170 / 270 ms, 0.75 s at 50k, 1.5-3.8 s at 100k
    (load-dependent). IVF is approximate: it found 99.85-99.97 % of the pairs (a pair across
    cell borders is missed when neither cell is probed); it never adds a wrong pair because
    every candidate is re-checked. ``"kdtree"`` (scipy cKDTree ``query_pairs``, exact, about
    as fast as IVF up to 20k, 2-3x slower at 50-100k) is the exact alternative.

    On a GPU (``build_edges(device="cuda:N")``, the pipeline's ``device``) the search runs
    there whatever ``index`` says (the kinds choose among CPU algorithms; a models folder
    tuned for the CPU must not pull a GPU run back to it): FAISS ``GpuIndexFlatL2`` for
    ``search="knn"`` when FAISS is built with GPU support, else (and always for
    ``search="range"``: FAISS has no range search on the GPU) ``"torch"``, an exact
    brute-force search in blocks of query rows (:func:`_torch_candidates`). ``"torch"``
    runs on any torch device, the CPU too, where it finds exactly the edges of ``"flat"``
    (and of ``"kdtree"``, up to ties at the k-th distance with ``knn``).

    ``search="range"`` asks the index for every neighbour within ``radius`` and then keeps the
    ``max_k`` nearest; ``search="knn"`` asks for the ``max_k + 1`` nearest (self included) and
    keeps those within ``radius``: the same edges (up to ties at the k-th distance and IVF's
    approximation), but the work is bounded by ``N * max_k`` even where the embedding is
    dense (a pileup-200 event, or an untrained model), where a range search returns millions
    of pairs only to drop most of them.

    ``neighbour_budget`` (0: off, as the reference) bounds an event's neighbour lists in all,
    ``N * k``: an event whose ``N * max_k`` exceeds it searches ``k = neighbour_budget // N``
    neighbours per space point (:meth:`max_k_for`). Why: at high pileup ``k`` decides the
    graph, and the graph the cost of every later stage (a mu=200 event has ~100k space
    points, ~18 edges per point at ``k = 32``), while sparse events never reach the budget
    and keep ``max_k``. A latency bound for dense events, paid in their efficiency
    (``docs/models.md``).
    """

    radius: float = 1.6
    max_k: int = 500
    index: IndexKind = "auto"
    orientation: Orientation = "reference"
    flat_max_nodes: int = 2048
    ivf_nlist: int = 0  # 0: chosen from N (2 sqrt(N), clipped to [16, 4096])
    ivf_nprobe: int = 8
    ivf_niter: int = 5  # k-means iterations when training the IVF cells
    search: SearchKind = "range"
    neighbour_budget: int = 0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.radius) and self.radius > 0):
            raise ExaTrkXConfigError(
                f"GraphConfig: radius must be finite and > 0, got {self.radius}"
            )
        check_count(self.max_k, "GraphConfig: max_k", error=ExaTrkXConfigError)
        if self.index not in INDEX_KINDS:
            raise ExaTrkXConfigError(
                f"GraphConfig: index must be one of {INDEX_KINDS}, got {self.index!r}"
            )
        if self.orientation not in ORIENTATIONS:
            raise ExaTrkXConfigError(
                f"GraphConfig: orientation must be one of {ORIENTATIONS}, got {self.orientation!r}"
            )
        for name, minimum in (("flat_max_nodes", 0), ("ivf_nlist", 0), ("ivf_nprobe", 1),
                              ("ivf_niter", 1)):
            check_count(getattr(self, name), f"GraphConfig: {name}", minimum=minimum,
                        error=ExaTrkXConfigError)
        if self.search not in SEARCH_KINDS:
            raise ExaTrkXConfigError(
                f"GraphConfig: search must be one of {SEARCH_KINDS}, got {self.search!r}"
            )
        check_count(self.neighbour_budget, "GraphConfig: neighbour_budget (0: off)", minimum=0,
                    error=ExaTrkXConfigError)

    def max_k_for(self, n_nodes: int) -> int:
        """Neighbours per space point for an event of ``n_nodes``: ``max_k``, lowered to
        ``neighbour_budget // n_nodes`` (at least 1) where the budget binds."""
        budget = int(self.neighbour_budget)
        if budget and n_nodes * self.max_k > budget:
            return max(1, budget // n_nodes)
        return int(self.max_k)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> GraphConfig:
        return cls(**dict(d))


def _empty_edges() -> np.ndarray:
    return np.zeros((2, 0), dtype=np.int64)


def _faiss_candidates(
    emb: np.ndarray, radius: float, kind: str, cfg: GraphConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Directed candidate pairs (query, neighbour) from a FAISS range search."""
    import faiss

    n, d = emb.shape
    r2 = float(radius) ** 2 * (1.0 + _SEARCH_SLACK)
    if kind == "ivf":
        nl = cfg.ivf_nlist or int(np.clip(2 * math.sqrt(n), 16, 4096))
        nl = max(1, min(nl, n // 4))  # k-means needs several points per cell
        quantizer = faiss.IndexFlatL2(d)
        index = faiss.IndexIVFFlat(quantizer, d, nl)
        index.cp.min_points_per_centroid = 1  # no warning for small training sets
        index.cp.niter = cfg.ivf_niter
        index.train(emb)
        index.add(emb)
        index.nprobe = min(cfg.ivf_nprobe, nl)
    else:
        index = faiss.IndexFlatL2(d)
        index.add(emb)
    if cfg.search == "knn":
        k = min(int(cfg.max_k) + 1, n)
        dist, nbr = index.search(emb, k)
        ok = (nbr >= 0) & (dist < r2)
        query = np.broadcast_to(np.arange(n, dtype=np.int64)[:, None], nbr.shape)[ok]
        return query, nbr[ok].astype(np.int64, copy=False)
    lims, _dist, nbr = index.range_search(emb, r2)
    query = np.repeat(np.arange(n, dtype=np.int64), np.diff(lims).astype(np.int64))
    return query, nbr.astype(np.int64, copy=False)


def _kdtree_candidates(
    emb: np.ndarray, radius: float, cfg: GraphConfig, workers: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Directed candidate pairs from a scipy k-d tree (exact, both directions), with their
    squared distances where the search returns them (``knn``: saves a float64 re-gather
    of every candidate, ~0.8 s of 2.7 s at mu=200). The ``knn`` pairs come already cut
    (self-loops, strict radius): one mask over the ``[N, k]`` result instead of two passes
    over the flattened candidates."""
    from scipy.spatial import cKDTree

    tree = cKDTree(emb)
    if cfg.search == "knn":
        n = emb.shape[0]
        k = min(int(cfg.max_k) + 1, n)
        dist, nbr = tree.query(
            emb, k=k, distance_upper_bound=radius * (1.0 + _SEARCH_SLACK), workers=workers
        )
        d2 = np.square(np.asarray(dist).reshape(n, -1))  # inf where no neighbour was found
        nbr = np.asarray(nbr).reshape(n, -1)
        ok = (d2 < float(radius) ** 2) & (nbr != np.arange(n)[:, None])
        return np.nonzero(ok)[0], nbr[ok].astype(np.int64, copy=False), d2[ok]
    pairs = tree.query_pairs(radius * (1.0 + _SEARCH_SLACK), output_type="ndarray")
    pairs = pairs.astype(np.int64, copy=False)
    return (
        np.concatenate([pairs[:, 0], pairs[:, 1]]),
        np.concatenate([pairs[:, 1], pairs[:, 0]]),
        None,
    )


#: Elements of one block's distance matrix in the torch search (128 MiB of float32).
_TORCH_BLOCK_ELEMENTS = 1 << 25
#: FAISS's largest k on the GPU; above it the torch search is used.
_FAISS_GPU_MAX_K = 2048
_gpu_resources: dict[int, Any] = {}


def _torch_candidates(
    emb: np.ndarray, radius: float, cfg: GraphConfig, device: str
) -> tuple[np.ndarray, np.ndarray]:
    """Directed candidate pairs from an exact brute-force search with torch on ``device``:
    query rows in blocks (each block's distance matrix at most ``_TORCH_BLOCK_ELEMENTS``),
    distances from coordinate differences (no ``|a|^2 + |b|^2 - 2ab`` cancellation), the
    same radius slack as FAISS; ``knn`` keeps the ``max_k + 1`` nearest within it."""
    import torch

    from .device import usable_device

    dev = usable_device(device)
    n = emb.shape[0]
    r2 = float(radius) ** 2 * (1.0 + _SEARCH_SLACK)
    k = min(int(cfg.max_k) + 1, n)
    rows = max(1, _TORCH_BLOCK_ELEMENTS // n)
    queries, neighbours = [], []
    with torch.inference_mode():
        x = torch.from_numpy(emb).to(dev)
        for a in range(0, n, rows):
            d2 = torch.cdist(x[a:a + rows], x, compute_mode="donot_use_mm_for_euclid_dist")
            d2.square_()
            if cfg.search == "knn":
                d2.masked_fill_(d2 >= r2, math.inf)
                dist, nbr = torch.topk(d2, k, dim=1, largest=False)
                ok = torch.isfinite(dist)
                q = torch.arange(a, a + d2.shape[0], device=dev)[:, None].expand_as(nbr)[ok]
                nb = nbr[ok]
            else:
                q, nb = torch.nonzero(d2 < r2, as_tuple=True)
                q = q + a
            queries.append(q.cpu())
            neighbours.append(nb.cpu())
    return (torch.cat(queries).numpy().astype(np.int64, copy=False),
            torch.cat(neighbours).numpy().astype(np.int64, copy=False))


def _faiss_gpu_knn(
    emb: np.ndarray, radius: float, cfg: GraphConfig, device: str
) -> tuple[np.ndarray, np.ndarray] | None:
    """Directed candidate pairs from FAISS's exact GPU k-NN search, or None where FAISS
    has no GPU support (faiss-cpu), sees no GPU, or k is past its GPU limit."""
    import faiss

    from .device import usable_device

    k = min(int(cfg.max_k) + 1, emb.shape[0])
    if not hasattr(faiss, "GpuIndexFlatL2") or faiss.get_num_gpus() == 0 or \
            k > _FAISS_GPU_MAX_K:
        return None
    gpu = usable_device(device).index or 0
    if gpu not in _gpu_resources:
        _gpu_resources[gpu] = faiss.StandardGpuResources()
    flat = faiss.GpuIndexFlatConfig()
    flat.device = gpu
    index = faiss.GpuIndexFlatL2(_gpu_resources[gpu], emb.shape[1], flat)
    index.add(emb)
    dist, nbr = index.search(emb, k)
    ok = (nbr >= 0) & (dist < float(radius) ** 2 * (1.0 + _SEARCH_SLACK))
    query = np.broadcast_to(np.arange(emb.shape[0], dtype=np.int64)[:, None], nbr.shape)[ok]
    return query, nbr[ok].astype(np.int64, copy=False)


def _device_candidates(
    emb: np.ndarray, radius: float, cfg: GraphConfig, device: str
) -> tuple[np.ndarray, np.ndarray]:
    """The GPU search of ``index="auto"`` on a CUDA device (see :class:`GraphConfig`)."""
    if cfg.search == "knn":
        found = _faiss_gpu_knn(emb, radius, cfg, device)
        if found is not None:
            return found
    return _torch_candidates(emb, radius, cfg, device)


def build_edges(
    embedding: np.ndarray,
    radius: float = 1.6,
    max_k: int = 500,
    *,
    index: IndexKind = "auto",
    orientation: Orientation = "reference",
    r: np.ndarray | None = None,
    config: GraphConfig | None = None,
    workers: int = 1,
    device: str = "cpu",
) -> np.ndarray:
    """Candidate edges ``int64 [2, E]`` between space points closer than ``radius`` in the
    embedded space (see the module docstring for the conventions).

    ``r`` (any quantity increasing with the transverse radius, e.g. the scaled ``r`` feature)
    is required for ``orientation="inner_outer"``. A ``config`` overrides the keyword values.
    ``workers``: threads of the k-d tree search (FAISS follows its own OpenMP setting).
    ``device``: ``"cpu"`` or a CUDA device, where the search runs (see
    :class:`GraphConfig`); the candidates are cut exactly on the CPU either way.
    """
    cfg = config or GraphConfig(radius=radius, max_k=max_k, index=index, orientation=orientation)
    emb = np.ascontiguousarray(np.asarray(embedding, dtype=np.float32))
    if emb.ndim != 2:
        raise ValueError(f"stage 'build_edges': embedding must be [N, D], got {emb.shape}")
    n = emb.shape[0]
    if cfg.orientation == "inner_outer":
        if r is None:
            raise ValueError("stage 'build_edges': orientation 'inner_outer' needs r")
        r = np.asarray(r, dtype=np.float64).reshape(-1)
        if r.size != n:
            raise ValueError(f"stage 'build_edges': r has {r.size} entries for {n} nodes")
    check_finite(emb, "build_edges", "embedding")
    if n < 2:  # FAISS asserts on empty input; one point has no pair
        return _empty_edges()

    k = cfg.max_k_for(n)
    if k != cfg.max_k:
        _log_budget(n, k, cfg)
        cfg = replace(cfg, max_k=k)
    kind = cfg.index
    on_gpu = is_cuda(device)
    if on_gpu and kind != "torch":
        kind = "gpu"
    elif kind == "auto":
        kind = "flat" if n <= cfg.flat_max_nodes else "ivf"
    d2: np.ndarray | None = None
    if kind == "kdtree":
        q, nb, d2 = _kdtree_candidates(emb, cfg.radius, cfg, max(int(workers), 1))
    elif kind == "gpu":
        q, nb = _device_candidates(emb, cfg.radius, cfg, device)
    elif kind == "torch":
        q, nb = _torch_candidates(emb, cfg.radius, cfg, device)
    else:
        q, nb = _faiss_candidates(emb, cfg.radius, kind, cfg)

    # Exact strict cut in float64, self-loops dropped.
    if d2 is None:
        emb64 = emb.astype(np.float64)
        diff = emb64[q]
        diff -= emb64[nb]
        d2 = np.einsum("ij,ij->i", diff, diff)
    keep = (q != nb) & (d2 < float(cfg.radius) ** 2)
    if not keep.all():
        q, nb, d2 = q[keep], nb[keep], d2[keep]

    # Per-query cap, nearest first (ties: lower neighbour index); only the lists longer
    # than max_k are sorted.
    over = np.bincount(q, minlength=n) > cfg.max_k
    if over.any():
        sel = over[q]
        qs, ns, ds = q[sel], nb[sel], d2[sel]
        order = np.lexsort((ns, ds, qs))
        qs, ns = qs[order], ns[order]
        rank = np.arange(qs.size) - np.searchsorted(qs, qs, side="left")
        first = rank < cfg.max_k
        q = np.concatenate([q[~sel], qs[first]])
        nb = np.concatenate([nb[~sel], ns[first]])

    # Orient each pair (a function of the unordered pair), then drop the pairs both ends
    # listed.
    if cfg.orientation == "reference":
        src, dst = np.maximum(q, nb), np.minimum(q, nb)
    else:
        assert r is not None
        lo, hi = np.minimum(q, nb), np.maximum(q, nb)
        swap = r[hi] < r[lo]  # hi is src only when strictly inside lo
        src, dst = np.where(swap, hi, lo), np.where(swap, lo, hi)
    return unique_edges(src, dst, n)


def _log_budget(n: int, k: int, cfg: GraphConfig) -> None:
    """Say that the neighbour budget lowered k: the job is then less efficient by design,
    which a physicist should see in the log, once (later events at DEBUG)."""
    global _budget_seen
    level = logging.DEBUG if _budget_seen else logging.INFO
    _budget_seen = True
    _log.log(level, "build_edges: %d space points search %d neighbours each instead of "
             "max_k %d (graph.neighbour_budget %d)%s", n, k, cfg.max_k, cfg.neighbour_budget,
             "" if level == logging.DEBUG else "; later events at DEBUG level")


def unique_edges(src: np.ndarray, dst: np.ndarray, n: int) -> np.ndarray:
    """The distinct pairs ``(src, dst)`` as int64 ``[2, E]``, sorted by ``src`` then ``dst``.

    Built as a scipy CSR matrix: a counting sort by row, then a sort and merge within each
    row (a few dozen entries), instead of one sort of a ``src * n + dst`` key per pair:
    the 3.4 M candidate pairs of a mu=200 event in ~70 ms instead of ~220 ms.
    """
    if src.size == 0:
        return _empty_edges()
    idx = np.int32 if n < np.iinfo(np.int32).max else np.int64
    m = csr_matrix(
        (np.ones(src.size, dtype=np.int8), (src.astype(idx), dst.astype(idx))), shape=(n, n)
    )
    m.sum_duplicates()  # canonical: sorted column indices, no repeats
    rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(m.indptr))
    return np.stack([rows, m.indices.astype(np.int64)])


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function in float64 precision, returned as float32."""
    x = np.asarray(x, dtype=np.float64)
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    ex = np.exp(x[~pos])
    out[~pos] = ex / (1.0 + ex)
    return out.astype(np.float32)


def degree_cap(edges: np.ndarray, scores: np.ndarray, max_degree: int) -> np.ndarray:
    """Bool keep mask ``[E]``: each edge that is among the ``max_degree`` highest-scored
    outgoing edges of its ``src`` *and* among the ``max_degree`` highest-scored incoming
    edges of its ``dst`` (ties: the earlier edge first). ``max_degree=0`` keeps every edge.

    Why: the GNN is trained on mu=0 graphs (~3 filtered edges per space point). At pileup
    the filter lets through 5-10 per space point, and summed messages over that many fakes
    take the GNN's node states where it never saw them; keeping each space point's best few
    doublets halves the GNN's edges at mu=50 and raises its track efficiency
    (``docs/models.md``).
    """
    check_count(max_degree, "degree_cap: max_degree", minimum=0)
    edges = np.asarray(edges)
    scores = np.asarray(scores).reshape(-1)
    if edges.ndim != 2 or edges.shape[0] != 2 or scores.size != edges.shape[1]:
        raise ValueError(
            f"degree_cap: need edges [2, E] and E scores, got {edges.shape} and {scores.size}"
        )
    keep = np.ones(scores.size, dtype=bool)
    if max_degree == 0 or scores.size == 0:
        return keep
    k = int(max_degree)
    nodes = [np.asarray(node, dtype=np.int64) for node in edges]  # src: outgoing, dst: incoming
    crowded = [np.bincount(node)[node] > k for node in nodes]
    sub = np.flatnonzero(crowded[0] | crowded[1])  # only these edges can be dropped
    if sub.size == 0:
        return keep
    # their places in score order (ties: earlier edge first), shared by both passes
    rank = np.zeros(scores.size, dtype=np.int64)
    rank[sub[np.argsort(-scores[sub], kind="stable")]] = np.arange(sub.size)
    for node, mask in zip(nodes, crowded, strict=True):
        keep[_beyond_degree(node, mask, rank, k)] = False
    return keep


def top_k_mask(values: np.ndarray, k: int) -> np.ndarray:
    """Bool mask of the ``k`` largest ``values`` (ties: the earlier entries), as a stable
    sort by ``-values`` would pick them, in linear time (``np.partition`` finds the k-th
    value): a mu=200 event's million filter scores in ~20 ms instead of ~230."""
    v = np.asarray(values)
    if k >= v.size:
        return np.ones(v.size, dtype=bool)
    if k <= 0:
        return np.zeros(v.size, dtype=bool)
    kth = np.partition(v, v.size - k)[v.size - k]
    keep = v > kth
    tied = np.flatnonzero(v == kth)
    keep[tied[:k - int(keep.sum())]] = True
    return keep


def cut_and_cap(
    edges: np.ndarray, logits: np.ndarray, cut: float, max_degree: int = 0,
    max_edges: int = 0,
) -> np.ndarray:
    """Bool keep mask ``[E]``: :func:`apply_cut` on the logits, then :func:`degree_cap`
    among the edges that pass, then at most ``max_edges`` of them (the highest logits;
    ties: the earlier edge; 0: all): the filter stage's selection at inference.

    Why ``max_edges``: the GNN's time and memory grow with its input, and one cut cannot
    serve every occupancy: the cut a mu=200 event needs to fit the time budget drops a
    quarter of the true edges of a mu=0 event, where the budget is never reached."""
    keep = apply_cut(logits, cut)
    if max_degree and keep.any():
        sel = np.flatnonzero(keep)
        keep[sel[~degree_cap(edges[:, sel], np.asarray(logits)[sel], max_degree)]] = False
    if max_edges and int(keep.sum()) > max_edges:
        sel = np.flatnonzero(keep)
        keep[sel[~top_k_mask(np.asarray(logits)[sel], max_edges)]] = False
    return keep


def _beyond_degree(node: np.ndarray, crowded: np.ndarray, rank: np.ndarray, k: int) -> np.ndarray:
    """Indices of the edges ranked past ``k`` among their ``node``'s edges (``rank``: score
    order). Only the ``crowded`` edges (of nodes with more than ``k``) take part: at mu=0 a
    few per event, so the cap costs almost nothing there. They are grouped by node in rank
    order as a scipy CSR matrix (one row per node, the ranks as column indices): a counting
    sort by node, then short sorts within each row (744k edges of a mu=200 event, K=7:
    ~140 ms instead of ~210 ms with one score sort and one int64 key sort per pass)."""
    if not crowded.any():
        return np.zeros(0, dtype=np.int64)
    sub = np.flatnonzero(crowded)
    # data: edge index + 1, so that edge 0 is no explicit zero
    by_node = csr_matrix(
        (sub + 1, (node[sub], rank[sub])), shape=(int(node.max()) + 1, rank.size)
    )
    by_node.sort_indices()
    place = np.arange(by_node.nnz) - np.repeat(by_node.indptr[:-1], np.diff(by_node.indptr))
    return by_node.data[place >= k] - 1


def apply_cut(
    scores: np.ndarray, cut: float = 0.21, on: Literal["sigmoid", "score"] = "sigmoid"
) -> np.ndarray:
    """Boolean keep mask ``score > cut`` (strict), as the reference service.

    ``on="sigmoid"``: ``scores`` are logits and the cut is on ``sigmoid(logit)``; evaluated as
    ``logit > log(cut / (1 - cut))`` in float64 so no score is rounded across the cut.
    ``on="score"``: the cut is applied to ``scores`` as given (already probabilities).
    The mask keeps the edge order, so ``edges[:, mask]`` is the reference's filtered list.
    """
    s = np.asarray(scores).reshape(-1)
    if on == "score":
        return s > cut
    if on != "sigmoid":
        raise ValueError(f"apply_cut: on must be 'sigmoid' or 'score', got {on!r}")
    if not 0.0 <= cut <= 1.0:
        raise ValueError(f"apply_cut: a sigmoid cut must be in [0, 1], got {cut}")
    if cut <= 0.0:
        return np.ones(s.shape, dtype=bool) & ~np.isnan(s)
    if cut >= 1.0:
        return np.zeros(s.shape, dtype=bool)
    return s.astype(np.float64) > math.log(cut / (1.0 - cut))
