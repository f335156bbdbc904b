"""Physics performance of edges and tracks (pure numpy, columnar).

Definitions (one set, used by the tests and the performance algorithms):

- **particles**: truth ``particle_id != 0`` (0 = noise). A particle's hit count ``n_p`` counts
  all its space points, assigned or not. *Selected* particles have ``n_p >= min_hits``
  (default 3) and, when ``pt_min`` is given, ``pt > pt_min``.
- **tracks**: space points sharing a label ``>= 0``; label ``-1`` = unassigned. Only
  *candidate* tracks with at least ``min_track_hits`` space points (default 3) count: a
  singleton is not a fake.
- **majority match** (track -> particle): more than half of the track's space points come
  from one (non-noise) particle. **Double majority**: in addition, the track holds more than
  half of that particle's space points. Both are strict ``>``, so each is unique.
- **efficiency** = selected particles with a double-majority candidate track / selected
  particles.
- **fake rate** = candidate tracks with no majority particle / candidate tracks. A track
  merging two particles 5+5 is fake; 6+4 is matched to the 6-hit particle and the other
  particle loses efficiency. With ``pt_min``, over the candidate tracks whose *leading
  particle* (the non-noise particle with most of the track's space points, ACTS's
  "majority particle" before the 50 % test; ties: the lower particle id) has
  ``pt > pt_min``: ACTS selects tracks by their fitted pT, and ExaTrkX tracks have none.
- **duplicate rate** = selected particles with two or more majority-matched candidate tracks /
  selected particles with at least one (*found* particles). A track split 6+4 is efficient
  and duplicated; split 5+5 it is duplicated and inefficient (no double majority).
- **TrackML score**: sum of the weights of the shared space points of every double-majority
  (track, particle) pair over the total weight (all tracks count, as in TrackML). Without
  weights, every non-noise space point weighs 1 and noise 0.
- **edge truth**: ``mode="consecutive"``: pairs of consecutive space points of one particle
  ordered by ``r`` (ties by index) -- what a track needs; ``mode="all_pairs"``: every pair of
  space points of one particle. Efficiency and purity are measured against the chosen truth.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

TruthMode = Literal["consecutive", "all_pairs"]


def _pid(particle_id: np.ndarray) -> np.ndarray:
    return np.asarray(particle_id).reshape(-1).astype(np.uint64, copy=False)


def true_edges(
    particle_id: np.ndarray, r: np.ndarray | None = None, *, mode: TruthMode = "consecutive"
) -> np.ndarray:
    """Truth edges ``int64 [2, T]`` (src = smaller ``r``; ties / ``all_pairs`` without ``r``:
    lower index first), sorted by src then dst."""
    pid = _pid(particle_id)
    n = pid.size
    if mode not in ("consecutive", "all_pairs"):
        raise ValueError(f"true_edges: mode must be 'consecutive' or 'all_pairs', got {mode!r}")
    rr = np.zeros(n) if r is None else np.asarray(r, dtype=np.float64).reshape(-1)
    if rr.size != n:
        raise ValueError(f"true_edges: r has {rr.size} entries for {n} space points")
    if mode == "consecutive" and r is None:
        raise ValueError("true_edges: mode 'consecutive' needs r")
    idx = np.arange(n, dtype=np.int64)
    order = np.lexsort((idx, rr, pid))  # by particle, then r, then index
    sp = pid[order]
    if mode == "consecutive":
        same = (sp[1:] == sp[:-1]) & (sp[1:] != 0)
        src, dst = order[:-1][same], order[1:][same]
    else:
        real = sp != 0
        order, sp = order[real], sp[real]
        m = sp.size
        pos = np.arange(m, dtype=np.int64)
        group_end = np.searchsorted(sp, sp, side="right")
        later = group_end - pos - 1  # partners after each position in its group
        total = int(later.sum())
        first = np.repeat(pos, later)
        offset = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(later) - later, later) + 1
        src, dst = order[first], order[first + offset]
        swap = (rr[dst] < rr[src]) | ((rr[dst] == rr[src]) & (dst < src))
        src, dst = np.where(swap, dst, src), np.where(swap, src, dst)
    o = np.lexsort((dst, src))
    return np.stack([src[o], dst[o]]).astype(np.int64, copy=False)


@dataclass(frozen=True)
class EdgeMetrics:
    """Edge efficiency (true edges found / true edges) and purity (true / predicted)."""

    n_true: int
    n_pred: int
    n_true_pred: int
    efficiency: float
    purity: float


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den else float("nan")


def edge_metrics(
    edges: np.ndarray,
    particle_id: np.ndarray,
    r: np.ndarray | None = None,
    *,
    mode: TruthMode = "consecutive",
) -> EdgeMetrics:
    """Efficiency and purity of predicted ``edges [2, E]`` (direction ignored)."""
    pid = _pid(particle_id)
    n = pid.size
    e = np.asarray(edges, dtype=np.int64).reshape(2, -1)
    lo, hi = np.minimum(e[0], e[1]), np.maximum(e[0], e[1])
    pred_keys = np.unique(lo * n + hi)  # duplicates and reversed copies count once
    if mode == "all_pairs":
        a, b = pred_keys // n, pred_keys % n
        n_tp = int(((pid[a] == pid[b]) & (pid[a] != 0)).sum())
        _, counts = np.unique(pid[pid != 0], return_counts=True)
        n_true = int((counts * (counts - 1) // 2).sum())
    else:
        t = true_edges(pid, r, mode=mode)
        true_keys = np.unique(np.minimum(t[0], t[1]) * n + np.maximum(t[0], t[1]))
        n_true = int(true_keys.size)
        n_tp = int(np.isin(pred_keys, true_keys, assume_unique=True).sum())
    return EdgeMetrics(
        n_true=n_true,
        n_pred=int(pred_keys.size),
        n_true_pred=n_tp,
        efficiency=_ratio(n_tp, n_true),
        purity=_ratio(n_tp, pred_keys.size),
    )


@dataclass(frozen=True)
class _Matching:
    """Per-particle and per-track matching results (internal)."""

    particle_ids: np.ndarray  # unique non-noise particle ids, sorted
    first_hit: np.ndarray  # index of each particle's first space point
    n_hits: np.ndarray  # space points per particle
    n_dm_tracks: np.ndarray  # double-majority candidate tracks per particle
    n_maj_tracks: np.ndarray  # majority-matched candidate tracks per particle
    n_candidates: int
    n_fake: int
    track_fake: np.ndarray  # per candidate track: no majority particle
    track_lead_hit: np.ndarray  # per candidate track: a space point of its leading
    #                              particle (-1: noise only)


def _match(labels: np.ndarray, particle_id: np.ndarray, min_track_hits: int) -> _Matching:
    lab = np.asarray(labels, dtype=np.int64).reshape(-1)
    pid = _pid(particle_id)
    if lab.size != pid.size:
        raise ValueError(f"metrics: {lab.size} labels for {pid.size} particle ids")
    uniq, first, pinv, n_hits_all = np.unique(
        pid, return_index=True, return_inverse=True, return_counts=True
    )
    noise = uniq == 0
    n_part_all = uniq.size
    valid = lab >= 0
    n_tracks = int(lab[valid].max()) + 1 if valid.any() else 0
    n_t = np.bincount(lab[valid], minlength=n_tracks)
    cand = n_t >= min_track_hits

    key = lab[valid] * n_part_all + pinv.reshape(-1)[valid]
    pair, shared = np.unique(key, return_counts=True)
    t, p = pair // n_part_all, pair % n_part_all
    keep = cand[t]
    t, p, shared = t[keep], p[keep], shared[keep]
    maj = (2 * shared > n_t[t]) & ~noise[p]
    dm = maj & (2 * shared > n_hits_all[p])

    n_maj = np.bincount(p[maj], minlength=n_part_all)
    n_dm = np.bincount(p[dm], minlength=n_part_all)
    has_majority = np.zeros(n_tracks, dtype=bool)
    has_majority[t[maj]] = True
    lead_hit = _leading_hit(t, p, shared, ~noise[p], first, n_tracks)
    real = ~noise
    return _Matching(
        particle_ids=uniq[real],
        first_hit=first[real],
        n_hits=n_hits_all[real],
        n_dm_tracks=n_dm[real],
        n_maj_tracks=n_maj[real],
        n_candidates=int(cand.sum()),
        n_fake=int((cand & ~has_majority).sum()),
        track_fake=~has_majority[cand],
        track_lead_hit=lead_hit[cand],
    )


def _leading_hit(t: np.ndarray, p: np.ndarray, shared: np.ndarray, real: np.ndarray,
                 first: np.ndarray, n_tracks: int) -> np.ndarray:
    """Per track, the first space point of its leading particle (most shared space
    points, ties: lower id; noise never leads), -1 where the track holds noise only."""
    tr, pr, sh = t[real], p[real], shared[real]
    order = np.lexsort((pr, -sh, tr))
    tr, pr = tr[order], pr[order]
    head = np.ones(tr.size, dtype=bool)
    head[1:] = tr[1:] != tr[:-1]
    lead = np.full(n_tracks, -1, dtype=np.int64)
    lead[tr[head]] = first[pr[head]]
    return lead


@dataclass(frozen=True)
class TrackMetrics:
    """Track efficiency, fake and duplicate rates (definitions in the module docstring)."""

    n_particles: int
    n_matched: int
    efficiency: float
    n_tracks: int
    n_fake: int
    fake_rate: float
    n_duplicated: int
    duplicate_rate: float
    n_found: int = 0  # selected particles with a majority track: the duplicate rate's base


def _selection(
    m: _Matching, min_hits: int, pt: np.ndarray | None, pt_min: float | None
) -> np.ndarray:
    sel = m.n_hits >= min_hits
    if pt_min is not None:
        if pt is None:
            raise ValueError("metrics: pt_min needs pt per space point")
        sel &= np.asarray(pt, dtype=np.float64).reshape(-1)[m.first_hit] > pt_min
    return sel


def track_metrics(
    labels: np.ndarray,
    particle_id: np.ndarray,
    *,
    pt: np.ndarray | None = None,
    pt_min: float | None = None,
    min_hits: int = 3,
    min_track_hits: int = 3,
) -> TrackMetrics:
    """Efficiency (double majority), fake and duplicate rates of one event.

    ``pt`` is the particle's transverse momentum per space point (GeV); ``pt_min=1.0``
    selects ``pt > 1 GeV``, ``None`` takes all pT. With ``pt_min`` the fake rate is over
    the tracks whose leading particle passes it (module docstring), else over all.
    """
    m = _match(labels, particle_id, min_track_hits)
    sel = _selection(m, min_hits, pt, pt_min)
    tracks = np.ones(m.n_candidates, dtype=bool)
    if pt_min is not None:
        lead_pt = np.asarray(pt, dtype=np.float64).reshape(-1)[np.maximum(m.track_lead_hit, 0)]
        tracks = (m.track_lead_hit >= 0) & (lead_pt > pt_min)
    n_tracks, n_fake = int(tracks.sum()), int((m.track_fake & tracks).sum())
    n_sel = int(sel.sum())
    n_matched = int((m.n_dm_tracks[sel] > 0).sum())
    n_any = int((m.n_maj_tracks[sel] > 0).sum())
    n_dup = int((m.n_maj_tracks[sel] > 1).sum())
    return TrackMetrics(
        n_particles=n_sel,
        n_matched=n_matched,
        efficiency=_ratio(n_matched, n_sel),
        n_tracks=n_tracks,
        n_fake=n_fake,
        fake_rate=_ratio(n_fake, n_tracks),
        n_duplicated=n_dup,
        duplicate_rate=_ratio(n_dup, n_any),
        n_found=n_any,
    )


@dataclass(frozen=True)
class BinnedEfficiency:
    """Efficiency per bin of a particle quantity (``nan`` where a bin has no particle)."""

    bin_edges: np.ndarray
    n_particles: np.ndarray
    n_matched: np.ndarray
    efficiency: np.ndarray


def efficiency_vs(
    labels: np.ndarray,
    particle_id: np.ndarray,
    values: np.ndarray,
    bins: np.ndarray,
    *,
    pt: np.ndarray | None = None,
    pt_min: float | None = None,
    min_hits: int = 3,
    min_track_hits: int = 3,
) -> BinnedEfficiency:
    """Track efficiency in bins of a per-particle quantity given per space point (e.g. the
    particle's pT or eta repeated on each of its space points)."""
    m = _match(labels, particle_id, min_track_hits)
    sel = _selection(m, min_hits, pt, pt_min)
    v = np.asarray(values, dtype=np.float64).reshape(-1)[m.first_hit]
    b = np.asarray(bins, dtype=np.float64)
    total, _ = np.histogram(v[sel], bins=b)
    matched, _ = np.histogram(v[sel & (m.n_dm_tracks > 0)], bins=b)
    with np.errstate(invalid="ignore", divide="ignore"):
        eff = np.where(total > 0, matched / np.maximum(total, 1), np.nan)
    return BinnedEfficiency(bin_edges=b, n_particles=total, n_matched=matched, efficiency=eff)


DEFAULT_PT_BINS = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 100.0])
DEFAULT_ETA_BINS = np.linspace(-4.0, 4.0, 17)


def performance_summary(
    labels: np.ndarray,
    particle_id: np.ndarray,
    *,
    pt: np.ndarray | None = None,
    eta: np.ndarray | None = None,
    min_hits: int = 3,
    min_track_hits: int = 3,
    pt_cut: float = 1.0,
    pt_bins: np.ndarray = DEFAULT_PT_BINS,
    eta_bins: np.ndarray = DEFAULT_ETA_BINS,
) -> dict[str, object]:
    """Track metrics for all pT and ``pT > pt_cut`` and efficiency vs pT / eta, where the
    per-space-point quantities are given."""
    kw = {"min_hits": min_hits, "min_track_hits": min_track_hits}
    out: dict[str, object] = {"all": track_metrics(labels, particle_id, **kw)}
    if pt is not None:
        out[f"pt>{pt_cut:g}"] = track_metrics(labels, particle_id, pt=pt, pt_min=pt_cut, **kw)
        out["eff_vs_pt"] = efficiency_vs(labels, particle_id, pt, pt_bins, **kw)
    if eta is not None:
        out["eff_vs_eta"] = efficiency_vs(labels, particle_id, eta, eta_bins, **kw)
    return out


def trackml_score(
    labels: np.ndarray, particle_id: np.ndarray, weights: np.ndarray | None = None
) -> float:
    """TrackML-style score in [0, 1] (see the module docstring); label -1 = no track."""
    lab = np.asarray(labels, dtype=np.int64).reshape(-1)
    pid = _pid(particle_id)
    if lab.size != pid.size:
        raise ValueError(f"trackml_score: {lab.size} labels for {pid.size} particle ids")
    if weights is None:
        w = (pid != 0).astype(np.float64)
    else:
        w = np.asarray(weights, dtype=np.float64).reshape(-1)
        if w.size != lab.size:
            raise ValueError(f"trackml_score: {w.size} weights for {lab.size} space points")
    total = w.sum()
    if total <= 0:
        return float("nan")
    uniq, pinv, n_p = np.unique(pid, return_inverse=True, return_counts=True)
    pinv = pinv.reshape(-1)
    valid = lab >= 0
    if not valid.any():
        return 0.0
    n_t = np.bincount(lab[valid])
    npart = uniq.size
    key = lab[valid] * npart + pinv[valid]
    pair, inv, shared = np.unique(key, return_inverse=True, return_counts=True)
    t, p = pair // npart, pair % npart
    good = (2 * shared > n_t[t]) & (2 * shared > n_p[p]) & (uniq[p] != 0)
    w_pair = np.bincount(inv.reshape(-1), weights=w[valid], minlength=pair.size)
    return float(w_pair[good].sum() / total)


def _pair_keys(edges: np.ndarray, n: int) -> np.ndarray:
    """Sorted unique undirected keys ``lo * n + hi`` of ``edges [2, E]``."""
    e = np.asarray(edges, dtype=np.int64).reshape(2, -1)
    return np.unique(np.minimum(e[0], e[1]) * n + np.maximum(e[0], e[1]))


@dataclass(frozen=True)
class StageEdges:
    """Edge counts of one stage: consecutive truth edges and how many it found; predicted
    edges and how many join two space points of one particle (all-pairs truth)."""

    n_true: int = 0
    n_found: int = 0
    n_pred: int = 0
    n_pure: int = 0

    def __add__(self, other: StageEdges) -> StageEdges:
        return StageEdges(self.n_true + other.n_true, self.n_found + other.n_found,
                          self.n_pred + other.n_pred, self.n_pure + other.n_pure)

    @property
    def efficiency(self) -> float:
        return _ratio(self.n_found, self.n_true)

    @property
    def purity(self) -> float:
        return _ratio(self.n_pure, self.n_pred)

    def metrics(self) -> EdgeMetrics:
        """As :class:`EdgeMetrics` (``n_true_pred``: the found truth edges)."""
        return EdgeMetrics(n_true=self.n_true, n_pred=self.n_pred, n_true_pred=self.n_found,
                           efficiency=self.efficiency, purity=self.purity)


@dataclass(frozen=True)
class EdgeTruth:
    """One event's edge truth, sorted once and shared by the figures of every stage (the
    graph, the filter, the GNN, the tracks): the truth sort costs more than a stage's
    own figures."""

    particle_id: np.ndarray  # uint64 per space point
    true_keys: np.ndarray  # sorted undirected keys of the consecutive truth edges

    @classmethod
    def of(cls, particle_id: np.ndarray, r: np.ndarray, *, pt: np.ndarray | None = None,
           pt_min: float | None = None) -> EdgeTruth:
        """Consecutive truth edges by ``r``; with ``pt_min``, only those of particles with
        ``pt > pt_min`` (``pt`` per space point)."""
        pid = _pid(particle_id)
        t = true_edges(pid, r, mode="consecutive")
        if pt_min is not None:
            if pt is None:
                raise ValueError("EdgeTruth: pt_min needs pt per space point")
            t = t[:, np.asarray(pt, dtype=np.float64).reshape(-1)[t[0]] > pt_min]
        return cls(pid, _pair_keys(t, pid.size))

    def stage(self, edges: np.ndarray) -> StageEdges:
        """The counts of one stage's ``edges [2, E]`` (direction and repeats ignored)."""
        pid = self.particle_id
        n = pid.size
        pred = _pair_keys(edges, n)
        a, b = pred // n, pred % n
        pa = pid[a]
        n_pure = int(((pa == pid[b]) & (pa != 0)).sum())
        n_found = int(np.isin(self.true_keys, pred, assume_unique=True).sum())
        return StageEdges(int(self.true_keys.size), n_found, int(pred.size), n_pure)


def stage_edge_metrics(
    edges: np.ndarray,
    particle_id: np.ndarray,
    r: np.ndarray,
    *,
    pt: np.ndarray | None = None,
    pt_min: float | None = None,
) -> EdgeMetrics:
    """Edge figures of one pipeline stage, as the benchmark reports them.

    Efficiency: consecutive truth edges (see :func:`true_edges`) found, direction ignored;
    with ``pt_min``, only truth edges of particles with ``pt > pt_min`` (``pt`` per space
    point). Purity: share of the predicted edges joining two space points of one particle
    (all-pairs truth: a same-particle edge that skips a layer is not impure). Several
    stages of one event: :class:`EdgeTruth` once, then :meth:`EdgeTruth.stage`.
    """
    return EdgeTruth.of(particle_id, r, pt=pt, pt_min=pt_min).stage(edges).metrics()


def sum_edge_metrics(parts: list[EdgeMetrics]) -> EdgeMetrics:
    """Micro-average of per-event :func:`stage_edge_metrics` (purity weighted by edges)."""
    n_true = sum(m.n_true for m in parts)
    n_pred = sum(m.n_pred for m in parts)
    n_found = sum(m.n_true_pred for m in parts)
    n_same = sum(m.purity * m.n_pred for m in parts if m.n_pred)
    return EdgeMetrics(
        n_true=n_true,
        n_pred=n_pred,
        n_true_pred=n_found,
        efficiency=_ratio(n_found, n_true),
        purity=_ratio(round(n_same), n_pred),
    )


def merge_events(per_event: Sequence[Mapping[str, np.ndarray]], labels: Sequence[np.ndarray]
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Concatenate events with labels and particle ids made unique across events."""
    labs, pids, pts = [], [], []
    lab_off = 0
    pid_off = 1
    for a, lab in zip(per_event, labels, strict=True):
        lab = np.asarray(lab, dtype=np.int64)
        labs.append(np.where(lab >= 0, lab + lab_off, -1))
        lab_off += int(lab.max()) + 1 if lab.size and lab.max() >= 0 else 0
        uniq, inv = np.unique(a["particle_id"], return_inverse=True)
        local = inv.reshape(-1).astype(np.int64) + pid_off
        local[a["particle_id"] == 0] = 0
        pids.append(local.astype(np.uint64))
        pid_off += uniq.size + 1
        pts.append(a["pt"])
    return np.concatenate(labs), np.concatenate(pids), np.concatenate(pts)
