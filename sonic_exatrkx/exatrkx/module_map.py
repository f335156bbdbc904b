"""Module-map graph construction: the doublets true tracks make, learned from truth.

The approach of GNN4ITk and ACTS's ``ModuleMapCuda``: in the training events, every pair of
consecutive space points (ordered by ``r``, as :func:`~.metrics.true_edges`) of a particle
above ``pt_min`` joins a *module pair* (module = the detector element a space point lies on:
the ACTS ``geometry_id`` of the space point, ``geometry_id_1`` in the ACTS CSV tables). The
map keeps every module pair seen and, per pair, the range of each geometric quantity of
its doublets (:data:`QUANTITIES`). An event's graph is every pair of space points on a
mapped module pair whose quantities all lie inside that pair's ranges.

Why: at pileup 200 a space point has thousands of neighbours within a metric-learning
radius, and which of them continue its track is a matter of geometry the detector layout
fixes (which module follows which, how far a pT > 1 GeV track bends in between): the map
learns it once from truth and needs no model.

Conventions:

- quantities of a doublet from space point 1 (inner module of the pair) to 2, with ``r,
  phi, z`` in mm / rad: ``dr = r2 - r1``, ``dz = z2 - z1``, ``dphi = phi2 - phi1``
  wrapped into ``[-pi, pi)``, ``z0 = z1 - r1 * dz / dr`` (the line's z at r = 0, mm),
  ``phi_slope = dphi / dr`` (rad/mm), ``deta = eta2 - eta1``; ``dr`` below
  :data:`DR_EPS` in size counts as ``DR_EPS`` (disc-to-disc doublets), and ``z0`` and
  ``phi_slope`` are clipped to :data:`CLIP` so that a stored range stays finite;
- ranges: the observed ``[min, max]`` widened on both sides by ``margin`` times the width of
  the same quantity's range over the whole *layer pair* (ACTS geometry ids: the bits above
  the sensitive field, ``geometry_id >> 28``), so that a module pair seen a few times still
  gets a window of the size its layers need; stored as float32 rounded outwards (a pair
  seen in training is always inside), or, in a map made compact with
  :meth:`ModuleMap.on_grid`, as 8-bit codes on a grid spanning its layer pair's range
  (:mod:`.range_grid`: the windows only grow, and the file shrinks about fourfold);
- graph edges are oriented and sorted as :func:`~.graph.build_edges` does (``inner_outer``:
  src has the smaller ``r``; ``reference``: src has the larger index), self-loops dropped.

Columnar throughout: space points sorted by (module, local phi), candidate partners found
by ``searchsorted`` on that order within each pair's ``dphi`` window, pairs expanded with
``np.repeat``; no loop over space points (only over chunks of candidates, for memory).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sonic_exatrkx.checks import check_count

from .errors import ExaTrkXConfigError, MissingModelFileError
from .features import FeatureConfig
from .graph import unique_edges
from .metrics import true_edges
from .range_grid import RangeGrid, round_out

__all__ = [
    "CLIP",
    "DR_EPS",
    "MODULE_MAP_FILE",
    "QUANTITIES",
    "ModuleMap",
    "ModuleMapConfig",
    "MapEvent",
    "RangeGrid",
    "coordinates",
    "doublet_quantities",
    "layer_of",
]

#: The module map's file in a models folder (recorded in config.json with its sha256).
MODULE_MAP_FILE = "module_map.npz"
MAP_FORMAT = "sonic-exatrkx-module-map"
#: Version 1 stores float32 ranges, version 2 a :class:`RangeGrid`.
MAP_VERSION = 1
GRID_MAP_VERSION = 2

#: Geometric quantities a map may cut on (see the module docstring).
QUANTITIES: tuple[str, ...] = ("dr", "dz", "dphi", "z0", "phi_slope", "deta")
#: Smallest |dr| (mm) in z0 and phi_slope.
DR_EPS = 1e-3
#: Bound of z0 (mm) and phi_slope (rad/mm) in size.
CLIP = {"z0": 1e5, "phi_slope": 1e3}
#: ACTS GeometryIdentifier: bits above the sensitive field (volume, boundary, layer,
#: approach) name the layer.
_LAYER_SHIFT = np.uint64(28)
#: Candidates (space point pairs before the cuts) per chunk: bounds the memory of dense
#: events (a few hundred MB at most).
_CHUNK = 1 << 21
#: Slack (rad) of the candidate window in local phi: the exact dphi cut follows.
_PHI_SLACK = 1e-6


def layer_of(module_ids: np.ndarray) -> np.ndarray:
    """The layer key of ACTS geometry ids: the id without its sensitive and extra bits."""
    return np.asarray(module_ids, dtype=np.uint64) >> _LAYER_SHIFT


def _wrap(angle: np.ndarray) -> np.ndarray:
    """Angles into ``[-pi, pi)``."""
    return np.mod(angle + np.pi, 2.0 * np.pi) - np.pi


def coordinates(features: np.ndarray, config: FeatureConfig
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``r``, ``phi``, ``z`` (mm, rad; float64) of scaled node features: the quantities the
    map is built and applied with, from the same float32 features in both places."""
    cols = []
    for name in ("r", "phi", "z"):
        k = config.index(name)
        if k is None:
            raise ExaTrkXConfigError(f"module map: the features {config.names} have no "
                                     f"'{name}' column (the map needs r, phi and z)")
        cols.append(np.asarray(features[:, k], dtype=np.float64) * config.scales[k])
    return cols[0], cols[1], cols[2]


def doublet_quantities(names: Sequence[str], r1: np.ndarray, phi1: np.ndarray,
                       z1: np.ndarray, r2: np.ndarray, phi2: np.ndarray,
                       z2: np.ndarray) -> np.ndarray:
    """float64 ``[P, len(names)]``: the named quantities of doublets 1 -> 2."""
    dr = r2 - r1
    dz = z2 - z1
    dphi = _wrap(phi2 - phi1)
    safe = np.where(np.abs(dr) < DR_EPS, np.where(dr < 0, -DR_EPS, DR_EPS), dr)
    out = np.empty((dr.size, len(names)), dtype=np.float64)
    for k, name in enumerate(names):
        if name == "dr":
            q = dr
        elif name == "dz":
            q = dz
        elif name == "dphi":
            q = dphi
        elif name == "z0":
            q = np.clip(z1 - r1 * dz / safe, -CLIP["z0"], CLIP["z0"])
        elif name == "phi_slope":
            q = np.clip(dphi / safe, -CLIP["phi_slope"], CLIP["phi_slope"])
        elif name == "deta":
            q = np.arcsinh(z2 / np.maximum(r2, DR_EPS)) - np.arcsinh(z1 / np.maximum(r1, DR_EPS))
        else:
            raise ExaTrkXConfigError(f"module map: unknown quantity {name!r}; known: "
                                     f"{QUANTITIES}")
        out[:, k] = q
    return out


@dataclass(frozen=True)
class ModuleMapConfig:
    """How a map is built: the signal particles (``pt_min`` GeV, at least ``min_hits``
    space points), the quantities it cuts on, how far each observed range is widened
    (``margin`` times the range of the same quantity over the whole layer pair, on each
    side) and the fewest doublets a module pair needs to be kept.

    Why a share of the layer pair's range: a module pair seen a few times has a narrow
    observed range, its layer pair a well-measured one. Measured on held-out ttbar-like
    mu=200 events with a map of 100 events (``docs/models.md``), it kept more true pairs
    per graph edge than widening by the expected gap past ``n`` draws' extremes
    (``(max - min) / (n - 1)``): 98.0 % at 1.03 M edges against 96.8 % at 0.97 M. ``dz``
    is left out by default: with ``dr`` and ``z0`` it removed 0.3 % of the edges."""

    pt_min: float = 0.8
    min_hits: int = 3
    quantities: tuple[str, ...] = ("dphi", "phi_slope", "z0", "dr")
    margin: float = 0.05
    min_count: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "quantities", tuple(str(q) for q in self.quantities))
        if not (math.isfinite(self.pt_min) and self.pt_min >= 0):
            raise ExaTrkXConfigError(f"ModuleMapConfig: pt_min must be >= 0 GeV, got "
                                     f"{self.pt_min}")
        check_count(self.min_hits, "ModuleMapConfig: min_hits", error=ExaTrkXConfigError)
        check_count(self.min_count, "ModuleMapConfig: min_count", error=ExaTrkXConfigError)
        unknown = [q for q in self.quantities if q not in QUANTITIES]
        if unknown or len(set(self.quantities)) != len(self.quantities):
            raise ExaTrkXConfigError(f"ModuleMapConfig: quantities {self.quantities} must be "
                                     f"distinct names from {QUANTITIES}")
        if not (math.isfinite(self.margin) and self.margin >= 0):
            raise ExaTrkXConfigError(f"ModuleMapConfig: margin must be >= 0, got {self.margin}")

    def to_dict(self) -> dict[str, Any]:
        return {"pt_min": self.pt_min, "min_hits": self.min_hits,
                "quantities": list(self.quantities), "margin": self.margin,
                "min_count": self.min_count}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModuleMapConfig:
        d = dict(d)
        if "quantities" in d:
            d["quantities"] = tuple(d["quantities"])
        return cls(**d)


@dataclass(frozen=True)
class MapEvent:
    """One training event for the map: per space point its module id (uint64), scaled
    node features (the pipeline's), truth particle id (0: noise) and the particle's pT."""

    module_id: np.ndarray
    features: np.ndarray
    particle_id: np.ndarray
    pt: np.ndarray

    def __post_init__(self) -> None:
        n = np.asarray(self.particle_id).reshape(-1).size
        for name in ("module_id", "pt"):
            size = np.asarray(getattr(self, name)).reshape(-1).size
            if size != n:
                raise ValueError(f"MapEvent: {size} {name} values for {n} particle ids")
        if np.asarray(self.features).shape[:1] != (n,):
            raise ValueError(f"MapEvent: features {np.shape(self.features)} do not match "
                             f"{n} particle ids")


def _runs(*keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The order sorting rows by ``keys`` (first key first) and where each run of equal
    keys starts in that order."""
    order = np.lexsort(keys[::-1])
    new = np.zeros(order.size, dtype=bool)
    new[:1] = True
    for k in keys:
        sk = k[order]
        new[1:] |= sk[1:] != sk[:-1]
    return order, np.flatnonzero(new)


class _Tally:
    """Per module pair (inner, outer geometry id): doublets seen and the min / max of each
    quantity; per module: sums of sin and cos phi of the doublet ends (its mean phi)."""

    def __init__(self, n_quantities: int) -> None:
        self.g1 = np.zeros(0, np.uint64)
        self.g2 = np.zeros(0, np.uint64)
        self.lo = np.zeros((0, n_quantities))
        self.hi = np.zeros((0, n_quantities))
        self.count = np.zeros(0, np.int64)
        self.modules = np.zeros(0, np.uint64)
        self.sin = np.zeros(0)
        self.cos = np.zeros(0)
        self.n_events = 0
        self.n_doublets = 0

    def add(self, g1: np.ndarray, g2: np.ndarray, q: np.ndarray, phis: np.ndarray) -> None:
        self.n_events += 1
        self.n_doublets += int(g1.size)
        g1s = np.concatenate([self.g1, g1])
        g2s = np.concatenate([self.g2, g2])
        order, starts = _runs(g1s, g2s)
        lo = np.concatenate([self.lo, q])[order]
        hi = np.concatenate([self.hi, q])[order]
        count = np.concatenate([self.count, np.ones(g1.size, np.int64)])[order]
        self.g1, self.g2 = g1s[order][starts], g2s[order][starts]
        self.lo = np.minimum.reduceat(lo, starts, axis=0) if starts.size else lo
        self.hi = np.maximum.reduceat(hi, starts, axis=0) if starts.size else hi
        self.count = np.add.reduceat(count, starts) if starts.size else count
        mods = np.concatenate([self.modules, g1, g2])
        ang = np.concatenate([phis[0], phis[1]])
        sin = np.concatenate([self.sin, np.sin(ang)])
        cos = np.concatenate([self.cos, np.cos(ang)])
        order, starts = _runs(mods)
        self.modules = mods[order][starts]
        self.sin = np.add.reduceat(sin[order], starts) if starts.size else sin
        self.cos = np.add.reduceat(cos[order], starts) if starts.size else cos


@dataclass(frozen=True, eq=False)
class ModuleMap:
    """The module pairs true tracks connect, with the ranges of their doublets.

    ``module_ids``: uint64 ``[M]``, sorted; ``phi_ref``: float64 ``[M]``, each module's
    mean phi (its space points are searched in phi relative to it, so that no window wraps
    around); ``pairs``: int32 ``[P, 2]`` (inner, outer) indices into ``module_ids``, sorted;
    ``ranges``: float32 ``[P, Q, 2]`` (min, max of each quantity); ``counts``: doublets
    seen per pair; ``build``: how it was built (:class:`ModuleMapConfig` plus the sample);
    ``grid``: the :class:`RangeGrid` the ranges come from, in a compact map (``on_grid``).
    """

    module_ids: np.ndarray
    phi_ref: np.ndarray
    pairs: np.ndarray
    ranges: np.ndarray
    counts: np.ndarray
    quantities: tuple[str, ...]
    build: Mapping[str, Any] = field(default_factory=dict)
    grid: RangeGrid | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if self.grid is not None:
            set_(self, "ranges", self.grid.ranges())
        set_(self, "module_ids", np.ascontiguousarray(self.module_ids, dtype=np.uint64))
        set_(self, "phi_ref", np.ascontiguousarray(self.phi_ref, dtype=np.float64))
        set_(self, "pairs", np.ascontiguousarray(self.pairs, dtype=np.int32).reshape(-1, 2))
        set_(self, "quantities", tuple(str(q) for q in self.quantities))
        q = len(self.quantities)
        set_(self, "ranges", np.ascontiguousarray(self.ranges, dtype=np.float32)
             .reshape(-1, q, 2))
        set_(self, "counts", np.ascontiguousarray(self.counts, dtype=np.uint32).reshape(-1))
        m, p = self.module_ids.size, self.pairs.shape[0]
        unknown = [name for name in self.quantities if name not in QUANTITIES]
        problems = []
        if unknown:
            problems.append(f"unknown quantities {unknown}")
        if self.phi_ref.shape != (m,):
            problems.append(f"phi_ref has {self.phi_ref.size} entries for {m} modules")
        if m > 1 and not (self.module_ids[1:] > self.module_ids[:-1]).all():
            problems.append("module_ids are not sorted and distinct")
        if self.ranges.shape[0] != p or self.counts.size != p:
            problems.append(f"{p} pairs but {self.ranges.shape[0]} ranges and "
                            f"{self.counts.size} counts")
        if p and (self.pairs.min() < 0 or self.pairs.max() >= m):
            problems.append(f"pairs index modules outside 0..{m - 1}")
        if problems:
            raise ExaTrkXConfigError(f"ModuleMap: {'; '.join(problems)}")

    @property
    def n_modules(self) -> int:
        return int(self.module_ids.size)

    def layer_pairs(self) -> np.ndarray:
        """int32 ``[P]``: each pair's layer pair, numbered in sorted order."""
        ids = self.module_ids[self.pairs]
        _, inv = np.unique(layer_of(ids.reshape(-1)).reshape(-1, 2), axis=0,
                           return_inverse=True)
        return inv.reshape(-1).astype(np.int32)

    def on_grid(self, bits: int = 8) -> ModuleMap:
        """This map with its ranges widened onto a :class:`RangeGrid` of ``bits`` per
        bound: every doublet inside today's windows stays inside, and the file stores one
        byte per bound instead of four (what a shipped models folder needs)."""
        grid = RangeGrid.containing(self.ranges, self.layer_pairs(), bits)
        return ModuleMap(self.module_ids, self.phi_ref, self.pairs, self.ranges,
                         self.counts, self.quantities, {**self.build, "range_bits": bits},
                         grid)

    @property
    def n_pairs(self) -> int:
        return int(self.pairs.shape[0])

    # -- building -----------------------------------------------------------------------

    @staticmethod
    def doublets(event: MapEvent, features: FeatureConfig, config: ModuleMapConfig
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The signal doublets of one event: ``(inner module id, outer module id,
        quantities [P, Q], phi of both ends [2, P])``."""
        r, phi, z = coordinates(np.asarray(event.features), features)
        pid = np.asarray(event.particle_id).reshape(-1).astype(np.uint64)
        pt = np.asarray(event.pt, dtype=np.float64).reshape(-1)
        signal = (pid != 0) & (pt > config.pt_min)
        if config.min_hits > 1:
            uniq, inv, cnt = np.unique(pid, return_inverse=True, return_counts=True)
            signal &= cnt[inv.reshape(-1)] >= config.min_hits
        pid = np.where(signal, pid, 0)  # the rest is noise to true_edges
        src, dst = true_edges(pid, r, mode="consecutive")
        mod = np.asarray(event.module_id).reshape(-1).astype(np.uint64)
        q = doublet_quantities(config.quantities, r[src], phi[src], z[src], r[dst],
                               phi[dst], z[dst])
        return mod[src], mod[dst], q, np.stack([phi[src], phi[dst]])

    @classmethod
    def from_events(cls, events: Iterable[MapEvent], features: FeatureConfig,
                    config: ModuleMapConfig | None = None,
                    sample: Mapping[str, Any] | None = None) -> ModuleMap:
        """Build the map from training events (see the module docstring), one event at a
        time (memory: the map's size, not the sample's); ``sample``: a description of the
        events, kept in :attr:`build`."""
        cfg = config or ModuleMapConfig()
        tally = _Tally(len(cfg.quantities))
        for ev in events:
            tally.add(*cls.doublets(ev, features, cfg))
        if tally.n_doublets == 0:
            raise ValueError("ModuleMap.from_events: no signal doublets in the events "
                             f"({tally.n_events} events, pt_min {cfg.pt_min} GeV)")
        return cls.from_tally(tally, cfg, sample)

    @classmethod
    def from_tally(cls, tally: _Tally, cfg: ModuleMapConfig,
                   sample: Mapping[str, Any] | None = None) -> ModuleMap:
        """The map of a tally of doublets, ranges widened as ``cfg`` says."""
        keep = tally.count >= cfg.min_count
        g1, g2 = tally.g1[keep], tally.g2[keep]
        lo, hi, count = tally.lo[keep], tally.hi[keep], tally.count[keep]
        module_ids = np.unique(np.concatenate([g1, g2]))
        pairs = np.stack([np.searchsorted(module_ids, g1), np.searchsorted(module_ids, g2)],
                         axis=1)
        at = np.searchsorted(tally.modules, module_ids)
        phi_ref = np.arctan2(tally.sin[at], tally.cos[at])
        # padding: a share of the layer pair's range
        _, lp = np.unique(np.stack([layer_of(g1), layer_of(g2)], axis=1), axis=0,
                          return_inverse=True)
        lp = lp.reshape(-1)
        lp_lo = np.full((int(lp.max()) + 1, lo.shape[1]), np.inf)
        lp_hi = np.full_like(lp_lo, -np.inf)
        np.minimum.at(lp_lo, lp, lo)
        np.maximum.at(lp_hi, lp, hi)
        pad = cfg.margin * (lp_hi - lp_lo)[lp]
        lo32, hi32 = round_out(lo - pad, hi + pad)
        build = {**cfg.to_dict(), "events": tally.n_events, "doublets": tally.n_doublets,
                 **({"sample": dict(sample)} if sample else {})}
        return cls(module_ids, phi_ref, pairs, np.stack([lo32, hi32], axis=2), count,
                   cfg.quantities, build)

    # -- graph construction -------------------------------------------------------------

    def edges(self, module_ids: np.ndarray, r: np.ndarray, phi: np.ndarray, z: np.ndarray,
              orientation: str = "inner_outer") -> np.ndarray:
        """Graph edges ``int64 [2, E]`` of one event (module id, r, phi, z per space
        point): every pair on a mapped module pair inside its ranges (see the module
        docstring for the orientation and order)."""
        ids = np.asarray(module_ids).reshape(-1)
        if ids.dtype.kind not in "iu":
            raise ValueError(f"stage 'graph': MODULE_IDS must be integers, got {ids.dtype}")
        ids = ids.astype(np.uint64, copy=False)
        r, phi, z = (np.asarray(a, dtype=np.float64).reshape(-1) for a in (r, phi, z))
        n = ids.size
        if not (r.size == phi.size == z.size == n):
            raise ValueError(f"stage 'graph': {n} module ids for {r.size} space points")
        if n < 2 or self.n_pairs == 0:
            return np.zeros((2, 0), dtype=np.int64)
        n_mod = self.n_modules
        midx = np.minimum(np.searchsorted(self.module_ids, ids), n_mod - 1)
        known = self.module_ids[midx] == ids
        lphi = _wrap(phi - self.phi_ref[midx])
        # space points sorted by (module, local phi); unknown modules last
        mod = np.where(known, midx, n_mod).astype(np.int64)
        key = mod * 8.0 + (lphi + 4.0)
        order = np.argsort(key, kind="stable")
        skey = key[order]
        per_mod = np.bincount(mod, minlength=n_mod + 1)[:n_mod]
        start = np.concatenate([[0], np.cumsum(per_mod)[:-1]])
        m1 = self.pairs[:, 0].astype(np.int64)
        m2 = self.pairs[:, 1].astype(np.int64)
        active = np.flatnonzero((per_mod[m1] > 0) & (per_mod[m2] > 0))
        if active.size == 0:
            return np.zeros((2, 0), dtype=np.int64)
        # one row per (pair, space point on its inner module)
        n1 = per_mod[m1[active]]
        row_pair = np.repeat(active, n1)
        row_src = np.repeat(start[m1[active]] - np.cumsum(n1) + n1, n1) + np.arange(n1.sum())
        src_pt = order[row_src]
        # candidate partners: the outer module's space points in the pair's dphi window
        m2r = m2[row_pair]
        base = m2r * 8.0 + 4.0
        if "dphi" in self.quantities:
            k = self.quantities.index("dphi")
            shift = lphi[src_pt] - _wrap(self.phi_ref[m2r] - self.phi_ref[m1[row_pair]])
            lo = np.clip(shift + self.ranges[row_pair, k, 0] - _PHI_SLACK, -4.0, 4.0)
            hi = np.clip(shift + self.ranges[row_pair, k, 1] + _PHI_SLACK, -4.0, 4.0)
            first = np.searchsorted(skey, base + lo, side="left")
            last = np.searchsorted(skey, base + hi, side="right")
        else:
            first = start[m2r]
            last = first + per_mod[m2r]
        width = np.maximum(last - first, 0)
        # rows grouped into chunks of about _CHUNK candidates (contiguous rows)
        chunk = (np.cumsum(width) - width) // _CHUNK
        cuts = np.searchsorted(chunk, np.arange(int(chunk[-1]) + 2))
        src_parts, dst_parts = [], []
        for a_row, b_row in zip(cuts[:-1], cuts[1:], strict=True):
            w = width[a_row:b_row]
            total = int(w.sum())
            if total == 0:
                continue
            rr = np.repeat(np.arange(a_row, b_row), w)
            dst_sorted = np.repeat(first[a_row:b_row] - np.cumsum(w) + w, w) + np.arange(total)
            a, b = src_pt[rr], order[dst_sorted]
            rng = self.ranges[row_pair[rr]].astype(np.float64)
            qv = doublet_quantities(self.quantities, r[a], phi[a], z[a], r[b], phi[b], z[b])
            ok = ((qv >= rng[:, :, 0]) & (qv <= rng[:, :, 1])).all(axis=1) & (a != b)
            src_parts.append(a[ok])
            dst_parts.append(b[ok])
        if not src_parts:
            return np.zeros((2, 0), dtype=np.int64)
        q_, nb = np.concatenate(src_parts), np.concatenate(dst_parts)
        if orientation == "reference":
            src, dst = np.maximum(q_, nb), np.minimum(q_, nb)
        else:
            lo_i, hi_i = np.minimum(q_, nb), np.maximum(q_, nb)
            swap = r[hi_i] < r[lo_i]
            src, dst = np.where(swap, hi_i, lo_i), np.where(swap, lo_i, hi_i)
        return unique_edges(src, dst, n)

    # -- files --------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write the map as a compressed npz (arrays plus a JSON header)."""
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        grid = self.grid
        header = {"format": MAP_FORMAT,
                  "version": MAP_VERSION if grid is None else GRID_MAP_VERSION,
                  "quantities": list(self.quantities), "build": dict(self.build)}
        ranges = ({"ranges": self.ranges} if grid is None else
                  {"grid_origin_step": grid.origin_step, "grid_layer_pair": grid.layer_pair,
                   "grid_codes": grid.codes})
        with out.open("wb") as handle:
            np.savez_compressed(handle, header=np.array(json.dumps(header, sort_keys=True)),
                                module_ids=self.module_ids, phi_ref=self.phi_ref,
                                pairs=self.pairs, counts=self.counts, **ranges)
        return out

    @classmethod
    def load(cls, path: str | Path) -> ModuleMap:
        """Read what :meth:`save` wrote; a file that is not a module map is one clear
        error naming it."""
        p = Path(path)
        if not p.is_file():
            raise MissingModelFileError(f"stage 'graph': module map not found: {p}")
        try:
            with np.load(p, allow_pickle=False) as data:
                header = json.loads(str(data["header"]))
                version = header.get("version")
                if header.get("format") != MAP_FORMAT or version not in (MAP_VERSION,
                                                                         GRID_MAP_VERSION):
                    raise ExaTrkXConfigError(
                        f"{p}: not a version-{MAP_VERSION} or -{GRID_MAP_VERSION} module map "
                        f"(format {header.get('format')!r}, version {version!r})")
                arrays = {k: data[k] for k in ("module_ids", "phi_ref", "pairs", "counts")}
                grid = None
                if version == GRID_MAP_VERSION:
                    grid = RangeGrid(data["grid_origin_step"], data["grid_layer_pair"],
                                     data["grid_codes"])
                    arrays["ranges"] = grid.ranges()
                else:
                    arrays["ranges"] = data["ranges"]
        except (OSError, ValueError, KeyError) as err:
            if isinstance(err, ExaTrkXConfigError):
                raise
            raise ExaTrkXConfigError(f"{p}: not a module map ({err})") from err
        try:
            return cls(quantities=tuple(header["quantities"]), build=header.get("build", {}),
                       grid=grid, **arrays)
        except ExaTrkXConfigError as err:
            raise ExaTrkXConfigError(f"{p}: {err}") from err

    def digest(self) -> str:
        """sha256 of the map's content (not of its file)."""
        h = hashlib.sha256()
        for a in (self.module_ids, self.phi_ref, self.pairs, self.ranges, self.counts):
            h.update(np.ascontiguousarray(a).tobytes())
        h.update(json.dumps(list(self.quantities)).encode())
        return h.hexdigest()
