"""Triplet support: which filtered edges a dense event's GNN input budget keeps.

Where the filter passes more edges than ``filter.max_edges`` (mu=200), the budget keeps the
best filter scores. A doublet classifier ranks badly at that density: the fakes in a module
pair's window have the slope and z intercept of true doublets, and a 3-5 GeV track's
straight doublets look like the rarer kind (``docs/models.md``). A true doublet, though,
almost always has a neighbour of its own track (the doublet before or after it through their
shared space point) on the same helix, and most fakes do not. So the ranking that fills the
budget adds to an edge's filter logit its best *compatible* neighbour's logit: the in-edge
or out-edge at either end whose polar angle ``theta`` (in r-z) and ``phi_slope = dphi / dr``
differ from its own by less than ``dtheta`` and ``dphi_slope`` (module triplets, as
GNN4ITk's module map cuts on triplets; here one global window, chosen on validation
events).

Only the ``candidates`` x ``max_edges`` best filter scores take part (the triplets among all
two million graph edges of a mu=200 event would be ~40 M; among the candidates a few M),
and an edge with no compatible neighbour counts one of logit :data:`NO_SUPPORT`. Events
within the budget are untouched: mu=0 and mu=50 give the same edges with and without it.
Columnar: each edge's out-neighbours are the run of edges starting at its target (edges
sorted by source), the pairs expanded with ``np.repeat``; no sort of the million scores
either (:func:`~.graph.top_k_mask`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import ExaTrkXConfigError
from .graph import cut_and_cap, top_k_mask
from .module_map import DR_EPS, coordinates

if TYPE_CHECKING:
    from .features import FeatureConfig
    from .models import FilterConfig

__all__ = ["NO_SUPPORT", "TripletRanking", "budget_mask", "filter_selection",
           "triplet_support"]

#: The partner logit of an edge no compatible neighbour supports (sigmoid ~ 4.5e-5).
NO_SUPPORT = -10.0


@dataclass(frozen=True)
class TripletRanking:
    """How the GNN input budget ranks a dense event's filtered edges (module docstring):
    among the ``candidates`` x ``max_edges`` best filter logits, by logit plus ``weight``
    times the best compatible neighbour's logit; compatible: ``|dtheta| < dtheta`` (rad)
    and ``|d phi_slope| < dphi_slope`` (rad/mm).

    Defaults chosen on validation events (ttbar-like mu=200, seeds 777-779, the fifth run's
    filter and GNN; ``docs/models.md``): a window of 0.012 rad and 1e-4 rad/mm (about the
    99.9 % envelope of the true pT > 1 GeV triplets); wider windows let fakes support each
    other (0.03 / 2e-4: GNN input edge efficiency 0.84 against 0.91 at 0.015 / 1e-4), and
    3 x the budget as candidates kept more true edges than 2 or 4 x.

    Where the supported candidates are fewer than the budget (mu=200 here), all of them are
    kept and the rest of the budget goes by logit: ``weight`` then changes nothing (0.5-2
    measured the same)."""

    candidates: float = 3.0
    dtheta: float = 0.012
    dphi_slope: float = 1e-4
    weight: float = 1.0

    def __post_init__(self) -> None:
        for name in ("dtheta", "dphi_slope", "weight"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ExaTrkXConfigError(f"TripletRanking: {name} must be > 0, got {value}")
        if not (math.isfinite(self.candidates) and self.candidates >= 1):
            raise ExaTrkXConfigError("TripletRanking: candidates (a multiple of max_edges) "
                                     f"must be >= 1, got {self.candidates}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TripletRanking:
        try:
            return cls(**dict(d))
        except TypeError as err:
            raise ExaTrkXConfigError(f"TripletRanking: {err}") from err


def _doublet_angles(edges: np.ndarray, r: np.ndarray, phi: np.ndarray, z: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
    """``theta`` (r-z polar angle of the doublet, rad) and ``phi_slope`` (rad/mm) per edge."""
    src, dst = edges
    dr = r[dst] - r[src]
    theta = np.arctan2(dr, z[dst] - z[src])
    dphi = np.mod(phi[dst] - phi[src] + np.pi, 2.0 * np.pi) - np.pi
    # disc-to-disc doublets: |dr| at least the module map's DR_EPS, as in its phi_slope
    safe = np.where(np.abs(dr) < DR_EPS, np.where(dr < 0, -DR_EPS, DR_EPS), dr)
    return theta, dphi / safe


def triplet_support(edges: np.ndarray, logits: np.ndarray, r: np.ndarray, phi: np.ndarray,
                    z: np.ndarray, ranking: TripletRanking) -> np.ndarray:
    """float64 ``[E]``: per edge, the best logit among its compatible neighbours (edges
    into its source or out of its target, as oriented inner to outer), or
    :data:`NO_SUPPORT`. A maximum: the order of the neighbours does not matter, so edges
    already sorted by source (as graph construction writes them) need no sort."""
    e = np.asarray(edges, dtype=np.int64)
    s = np.asarray(logits, dtype=np.float64)
    support = np.full(e.shape[1], NO_SUPPORT)
    if e.shape[1] < 2:
        return support
    src, dst = e
    n = int(max(src.max(), dst.max())) + 1
    theta, slope = _doublet_angles(e, r, phi, z)
    out_of = None if bool((src[1:] >= src[:-1]).all()) else np.argsort(src, kind="stable")
    out_deg = np.bincount(src, minlength=n)
    out_start = np.cumsum(out_deg) - out_deg
    # every (edge a -> b, edge b -> c) through a shared space point b
    width = out_deg[dst]
    inner = np.repeat(np.arange(e.shape[1]), width)
    outer = (np.repeat(out_start[dst] - np.cumsum(width) + width, width)
             + np.arange(int(width.sum())))
    if out_of is not None:
        outer = out_of[outer]
    ok = ((np.abs(theta[outer] - theta[inner]) < ranking.dtheta)
          & (np.abs(slope[outer] - slope[inner]) < ranking.dphi_slope))
    inner, outer = inner[ok], outer[ok]
    np.maximum.at(support, inner, s[outer])
    np.maximum.at(support, outer, s[inner])
    return support


def budget_mask(edges: np.ndarray, logits: np.ndarray, keep: np.ndarray, max_edges: int,
                r: np.ndarray, phi: np.ndarray, z: np.ndarray, ranking: TripletRanking
                ) -> np.ndarray:
    """``keep`` (bool ``[E]``, the edges past the cut and the degree cap) cut to at most
    ``max_edges`` by the triplet ranking; unchanged where it holds no more than that.
    Ties (of logits for the candidates, of ranking keys for the budget) go to the earlier
    edge. Linear time but for the triplets (:func:`~.graph.top_k_mask`)."""
    if not max_edges or int(keep.sum()) <= max_edges:
        return keep
    s = np.asarray(logits, dtype=np.float64)
    sel = np.flatnonzero(keep)
    cand = sel[top_k_mask(s[sel], math.ceil(ranking.candidates * max_edges))]
    key = s[cand] + ranking.weight * triplet_support(edges[:, cand], s[cand], r, phi, z,
                                                     ranking)
    out = np.zeros_like(keep)
    out[cand[top_k_mask(key, max_edges)]] = True
    return out


def filter_selection(edges: np.ndarray, logits: np.ndarray, features: np.ndarray,
                     feature_config: FeatureConfig, config: FilterConfig) -> np.ndarray:
    """Bool ``[E]``: the graph edges the GNN sees, as ``config`` says: the cut, then
    ``max_degree``, then ``max_edges`` by the best logits or, with ``triplets``, by the
    triplet ranking (``features``: the prepared node features, for r, phi and z). One
    function for inference (local and served) and for the GNN's training graphs."""
    if config.triplets is None or not config.max_edges:
        return cut_and_cap(edges, logits, config.cut, config.max_degree, config.max_edges)
    keep = cut_and_cap(edges, logits, config.cut, config.max_degree, 0)
    if int(keep.sum()) <= config.max_edges:
        return keep
    r, phi, z = coordinates(features, feature_config)
    return budget_mask(edges, logits, keep, config.max_edges, r, phi, z, config.triplets)
