"""Track building: weakly connected components of the kept edges.

Label convention (as the reference service's custom backend):

- every space point gets a label; a space point with no kept edge is its own singleton
  track; labels are ``0..T-1`` numbered in order of first appearance by space point index
  (space point 0 always has label 0);
- with ``min_hits > 1``, space points on tracks with fewer than ``min_hits`` space points get
  ``-1`` (unassigned) and the remaining tracks are renumbered in the same first-appearance
  order. The default ``min_hits=1`` keeps singletons, matching the reference.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from sonic_exatrkx.checks import check_count

#: Label given to space points on tracks shorter than ``min_hits``.
UNASSIGNED = -1

#: Track builders of :class:`~sonic_exatrkx.exatrkx.pipeline.PipelineConfig`.
TRACK_BUILDERS: tuple[str, ...] = ("components", "best_edges", "best_outgoing",
                                   "junction_removal")


def _edges_and_scores(edges: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    e = np.asarray(edges, dtype=np.int64).reshape(2, -1)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if s.size != e.shape[1]:
        raise ValueError(f"stage 'build_tracks': {s.size} scores for {e.shape[1]} edges")
    return e, s


def _best_of_each(end: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Bool mask: the edge is the highest-scoring of the edges sharing its ``end`` node
    (ties: the earlier edge)."""
    n_e = end.size
    keep = np.zeros(n_e, dtype=bool)
    if n_e == 0:
        return keep
    order = np.lexsort((np.arange(n_e), -scores, end))
    sorted_end = end[order]
    first = np.ones(n_e, dtype=bool)
    first[1:] = sorted_end[1:] != sorted_end[:-1]
    keep[order[first]] = True
    return keep


def best_edges(edges: np.ndarray, scores: np.ndarray, *, outgoing_only: bool = False) -> np.ndarray:
    """Bool mask ``[E]``: the edge is the highest-scoring outgoing edge of its ``src`` or the
    highest-scoring incoming edge of its ``dst`` (ties: the earlier edge).

    Applied after the GNN cut and before connected components, it keeps at most one edge per
    space point and direction from each end's point of view, so one spurious edge no longer
    merges two tracks that each already have a better continuation.

    ``outgoing_only``: keep only each space point's best outgoing edge. Every point then has
    at most one successor, so two tracks merge only where a point's *best* continuation
    jumps to the other track; on the toy detector's held-out mu=0 events this halved the
    merged (fake / inefficient) tracks of the "or" rule above for ~1 % more split ones.
    """
    e, s = _edges_and_scores(edges, scores)
    keep = _best_of_each(e[0], s)
    if not outgoing_only:
        keep |= _best_of_each(e[1], s)
    return keep


def junction_removal(edges: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Bool mask ``[E]``: ACTS's ``JunctionRemoval``. At every junction (a space point with
    two or more outgoing, or two or more incoming edges) only the highest-scoring of those
    edges stays (ties: the earlier edge): an edge is kept when it is both its ``src``'s best
    outgoing and its ``dst``'s best incoming edge.

    Every space point is then left with at most one successor and one predecessor, so the
    connected components are simple chains: where two tracks cross or touch through a fake
    edge, the weaker continuation is cut on both sides instead of merging them (with
    ``best_outgoing`` two tracks still merge where both ends' best edge is the fake one
    into a shared space point).
    """
    e, s = _edges_and_scores(edges, scores)
    return _best_of_each(e[0], s) & _best_of_each(e[1], s)


def track_edge_mask(edges: np.ndarray, gnn_scores: np.ndarray, keep: np.ndarray,
                    builder: str) -> np.ndarray:
    """Bool ``[E]``: of the edges passing the GNN cut (``keep``), those track building
    joins with ``builder`` (one of :data:`TRACK_BUILDERS`; "components": all of them).
    One implementation for the pipeline and for cut scans on its scores."""
    if builder not in TRACK_BUILDERS:
        raise ValueError(f"unknown track builder {builder!r}; known: {list(TRACK_BUILDERS)}")
    if builder == "components" or not keep.any():
        return keep
    sel = np.flatnonzero(keep)
    out = np.zeros_like(keep)
    scores = np.asarray(gnn_scores)[sel]
    if builder == "junction_removal":
        best = junction_removal(edges[:, sel], scores)
    else:
        best = best_edges(edges[:, sel], scores, outgoing_only=builder == "best_outgoing")
    out[sel[best]] = True
    return out


def renumber_first_appearance(labels: np.ndarray) -> np.ndarray:
    """Map arbitrary integer labels to ``0..T-1`` in order of first appearance.

    Negative labels are kept as ``-1`` (unassigned).
    """
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    out = np.full(labels.shape, UNASSIGNED, dtype=np.int64)
    valid = labels >= 0
    if not valid.any():
        return out
    uniq, first, inverse = np.unique(labels[valid], return_index=True, return_inverse=True)
    rank = np.empty(uniq.size, dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(uniq.size, dtype=np.int64)
    out[valid] = rank[inverse]
    return out


def build_tracks(
    n_nodes: int,
    edges: np.ndarray,
    keep_mask: np.ndarray | None = None,
    *,
    min_hits: int = 1,
) -> np.ndarray:
    """Track label ``int64 [n_nodes]`` per space point from edges ``int64 [2, E]``.

    ``keep_mask`` (bool ``[E]``) selects the edges to use (e.g. ``apply_cut(gnn_logits, 0.5)``).
    Edge direction does not matter (weak connectivity).
    """
    n = int(n_nodes)
    check_count(n, "stage 'build_tracks': n_nodes", minimum=0)
    check_count(min_hits, "stage 'build_tracks': min_hits")
    e = np.asarray(edges)
    if e.size == 0:
        e = np.zeros((2, 0), dtype=np.int64)
    if e.ndim != 2 or e.shape[0] != 2:
        raise ValueError(f"stage 'build_tracks': edges must be [2, E], got {e.shape}")
    e = e.astype(np.int64, copy=False)
    if keep_mask is not None:
        mask = np.asarray(keep_mask, dtype=bool).reshape(-1)
        if mask.size != e.shape[1]:
            raise ValueError(
                f"stage 'build_tracks': keep_mask has {mask.size} entries for {e.shape[1]} edges"
            )
        e = e[:, mask]
    if e.size and (e.min() < 0 or e.max() >= n):
        raise ValueError(
            f"stage 'build_tracks': edge index out of range [0, {n}) (min {e.min()}, max {e.max()})"
        )
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    adj = sp.coo_matrix(
        (np.ones(e.shape[1], dtype=np.int8), (e[0], e[1])), shape=(n, n)
    ).tocsr()
    _, comp = connected_components(adj, directed=True, connection="weak")
    labels = renumber_first_appearance(comp)
    if min_hits > 1:
        counts = np.bincount(labels, minlength=int(labels.max()) + 1)
        labels = np.where(counts[labels] >= min_hits, labels, UNASSIGNED)
        labels = renumber_first_appearance(labels)
    return labels
