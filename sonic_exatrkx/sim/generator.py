"""Event generator: vertices and particles for the toy physics samples.

Samples (all with a Gaussian beam spot; pileup adds Poisson(mu) minimum-bias vertices):
- `minbias`: prompt charged particles, Tsallis-like pT spectrum (median ~0.4 GeV, ~11 %
  above 1 GeV, as TrackML), flat in eta for |eta| < eta_max, negative-binomial multiplicity.
- `ttbar-like`: a busier hard-scatter vertex with the same soft spectrum plus a 10 % hard
  power-law component (jets), so some high-pT tracks.
- `hnl`: W -> lepton + heavy neutral lepton (HNL). The HNL (neutral, no hits) flies an
  exponential distance (lab-frame mean `hnl_decay_length`, truncated inside the tracker)
  and decays into 2 or 4 charged particles (mu pi, e pi, mu mu nu, e mu nu, mu pi pi pi)
  at a displaced secondary vertex; the primary vertex gets the prompt lepton, a few more
  prompt tracks and an underlying event.

Particle ids follow the ACTS barcode (vertex primary | vertex secondary | particle |
generation | sub-particle): the hard scatter is primary vertex 1, pileup vertices 2.., the
HNL decay products are secondary vertex 1 of primary vertex 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from sonic_exatrkx.sim.config import SimulationConfig

__all__ = ["C_MM_PER_NS", "MASS", "Particles", "generate_particles", "particle_barcode"]

C_MM_PER_NS = 299.792458

# PDG masses (GeV) of the species we produce.
MASS = {11: 0.000511, 13: 0.105658, 211: 0.139570, 321: 0.493677, 2212: 0.938272,
        12: 0.0, 14: 0.0, 9900012: 0.0}
HNL_PDG = 9900012

# Prompt charged species: pions dominate, then kaons, protons, a few leptons.
_PROMPT_SPECIES = np.array([211, 321, 2212, 11, 13])
_PROMPT_FRACTION = np.array([0.80, 0.12, 0.05, 0.015, 0.015])
_LEPTONS = (11, 13)

# HNL decay channels: (weight, daughters as (|pdg|, charge relative to the lepton sign s)).
_HNL_CHANNELS: tuple[tuple[float, tuple[tuple[int, int], ...]], ...] = (
    (0.30, ((13, 1), (211, -1))),
    (0.10, ((11, 1), (211, -1))),
    (0.20, ((13, 1), (13, -1), (14, 0))),
    (0.20, ((11, 1), (13, -1), (12, 0))),
    (0.20, ((13, 1), (211, -1), (211, -1), (211, 1))),
)

# Tsallis-like prompt spectrum dN/dpT ~ pT (1 + pT/(n T))^-n, tuned (n=8, T=0.15 GeV,
# pT > 0.1 GeV) to a median of 0.39 GeV and 11 % above 1 GeV.
_TSALLIS_N, _TSALLIS_T, _PT_MAX = 8.0, 0.15, 200.0


def particle_barcode(vp: np.ndarray, vs: np.ndarray, part: np.ndarray,
                     gen: np.ndarray | int = 0, sub: np.ndarray | int = 0) -> np.ndarray:
    """ACTS uint64 particle barcode with the io layer's field layout
    (`sonic_exatrkx.io.acts_csv.BARCODE_LAYOUT`: 12|12|16|8|16 bits from the top)."""
    from sonic_exatrkx.io.acts_csv import BARCODE_LAYOUT

    n = np.broadcast(vp, vs, part, gen, sub).shape
    out = np.zeros(n, dtype=np.uint64)
    for (name, shift, bits), col in zip(BARCODE_LAYOUT, (vp, vs, part, gen, sub),
                                        strict=True):
        v = np.asarray(col, dtype=np.int64)
        if v.size and (v.min() < 0 or v.max() >= (1 << bits)):
            raise ValueError(f"{name} values do not fit the {bits}-bit barcode field")
        out |= np.broadcast_to(v.astype(np.uint64), n) << np.uint64(shift)
    return out


@dataclass
class Particles:
    """Generated particles as columns (float64 kinematics; ids as small ints)."""

    vertex_primary: np.ndarray
    vertex_secondary: np.ndarray
    number: np.ndarray
    pdg: np.ndarray
    q: np.ndarray
    m: np.ndarray
    vx: np.ndarray
    vy: np.ndarray
    vz: np.ndarray
    vt: np.ndarray
    px: np.ndarray
    py: np.ndarray
    pz: np.ndarray

    def __len__(self) -> int:
        return int(self.pdg.size)

    @property
    def barcode(self) -> np.ndarray:
        return particle_barcode(self.vertex_primary, self.vertex_secondary, self.number)

    @staticmethod
    def concat(parts: list[Particles]) -> Particles:
        names = Particles.__dataclass_fields__
        return Particles(**{k: np.concatenate([getattr(p, k) for p in parts]) for k in names})


@lru_cache(maxsize=8)
def _pt_table(pt_min: float) -> tuple[np.ndarray, np.ndarray]:
    """Tabulated inverse CDF of the soft spectrum (log-spaced grid, built once)."""
    grid = np.geomspace(pt_min, max(_PT_MAX, 2 * pt_min), 20001)
    pdf = grid * (1.0 + grid / (_TSALLIS_N * _TSALLIS_T)) ** -_TSALLIS_N
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (pdf[1:] + pdf[:-1]) * np.diff(grid))])
    return cdf / cdf[-1], grid


def _soft_pt(rng: np.random.Generator, n: int, pt_min: float) -> np.ndarray:
    cdf, grid = _pt_table(float(pt_min))
    return np.interp(rng.random(n), cdf, grid)


def _neg_binomial(rng: np.random.Generator, mean: float, size: int, k: float = 5.0) -> np.ndarray:
    """Multiplicities with a negative-binomial spread (k=5) around `mean`."""
    if mean <= 0:
        return np.zeros(size, dtype=np.int64)
    return rng.negative_binomial(k, k / (k + mean), size=size).astype(np.int64)


def _charged_pdg(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Species and charge sign for prompt charged particles -> (signed pdg, charge)."""
    species = _PROMPT_SPECIES[rng.choice(_PROMPT_SPECIES.size, size=n, p=_PROMPT_FRACTION)]
    q = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    return _signed_pdg(species, q), q


def _signed_pdg(species: np.ndarray, q: np.ndarray) -> np.ndarray:
    """PDG sign convention: negative leptons and positive hadrons have positive codes."""
    species = np.asarray(species, dtype=np.int64)
    is_lepton = np.isin(species, _LEPTONS)
    sign = np.where(is_lepton, -np.sign(q), np.sign(q))
    sign = np.where(sign == 0, 1, sign)
    return (species * sign).astype(np.int64)


def _mass_of(pdg: np.ndarray) -> np.ndarray:
    absid = np.abs(pdg)
    keys = np.array(sorted(MASS))
    vals = np.array([MASS[k] for k in keys])
    return vals[np.searchsorted(keys, absid)]


def _momentum(pt: np.ndarray, eta: np.ndarray, phi: np.ndarray) -> tuple[np.ndarray, ...]:
    return pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)


def _beam_spot(rng: np.random.Generator, cfg: SimulationConfig, n: int) -> np.ndarray:
    """(n, 4) vertex positions x, y, z [mm], t [ns]."""
    sig = np.array([cfg.vertex_sigma_xy, cfg.vertex_sigma_xy, cfg.vertex_sigma_z,
                    cfg.vertex_sigma_t])
    return rng.normal(size=(n, 4)) * sig


def _prompt(rng: np.random.Generator, cfg: SimulationConfig, vertices: np.ndarray,
            counts: np.ndarray, vp: np.ndarray, first_number: np.ndarray,
            hard_fraction: float = 0.0) -> Particles:
    """Prompt charged particles: `counts[i]` of them from vertex i (primary id `vp[i]`)."""
    n = int(counts.sum())
    owner = np.repeat(np.arange(counts.size), counts)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    number = np.arange(n) - starts[owner] + first_number[owner]
    pt = _soft_pt(rng, n, cfg.pt_min)
    eta = rng.uniform(-cfg.eta_max, cfg.eta_max, n)
    if hard_fraction > 0:
        # jets: Pareto tail pT >= 1 GeV with dN/dpT ~ pT^-3, central
        hard = rng.random(n) < hard_fraction
        pt = np.where(hard, np.minimum(rng.random(n) ** -0.5, 500.0), pt)
        eta = np.where(hard, rng.uniform(-2.5, 2.5, n), eta)
    phi = rng.uniform(-np.pi, np.pi, n)
    pdg, q = _charged_pdg(rng, n)
    px, py, pz = _momentum(pt, eta, phi)
    v = vertices[owner]
    return Particles(vp[owner].astype(np.int64), np.zeros(n, np.int64), number.astype(np.int64),
                     pdg, q, _mass_of(pdg), v[:, 0], v[:, 1], v[:, 2], v[:, 3], px, py, pz)


def _boost(p4: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """Lorentz-boost rows of (E, px, py, pz) by velocity `beta` (3-vector)."""
    b2 = float(beta @ beta)
    if b2 <= 0:
        return p4.copy()
    gamma = 1.0 / np.sqrt(1.0 - b2)
    bp = p4[:, 1:] @ beta
    coef = (gamma - 1.0) * bp / b2 + gamma * p4[:, 0]
    out = np.empty_like(p4)
    out[:, 0] = gamma * (p4[:, 0] + bp)
    out[:, 1:] = p4[:, 1:] + coef[:, None] * beta[None, :]
    return out


def _decay(rng: np.random.Generator, parent: np.ndarray, mass: float,
           masses: np.ndarray) -> np.ndarray:
    """Decay a parent (E, p) into daughters of `masses` by sequential isotropic two-body
    splits (flat intermediate masses): an approximate but physical n-body phase space."""
    out = np.zeros((masses.size, 4))
    cur, m_cur = parent.astype(np.float64), float(mass)
    for i in range(masses.size - 1):
        m1 = float(masses[i])
        rest = float(masses[i + 1:].sum())
        m2 = float(masses[-1]) if i == masses.size - 2 else rng.uniform(rest, m_cur - m1)
        pstar = np.sqrt(max((m_cur**2 - (m1 + m2) ** 2) * (m_cur**2 - (m1 - m2) ** 2), 0.0))
        pstar /= 2 * m_cur
        cos_t = rng.uniform(-1, 1)
        phi = rng.uniform(-np.pi, np.pi)
        sin_t = np.sqrt(1 - cos_t**2)
        d = pstar * np.array([sin_t * np.cos(phi), sin_t * np.sin(phi), cos_t])
        rest_frame = np.array([[np.sqrt(pstar**2 + m1**2), *d], [np.sqrt(pstar**2 + m2**2), *-d]])
        lab = _boost(rest_frame, cur[1:] / cur[0])
        out[i] = lab[0]
        cur, m_cur = lab[1], m2
    out[-1] = cur
    return out


def _hnl_event(rng: np.random.Generator, cfg: SimulationConfig, pv: np.ndarray) -> Particles:
    """Hard scatter of the `hnl` sample: prompt lepton + HNL + prompt tracks + its decay."""
    # prompt lepton from the W (particle 1) and the HNL (particle 2), both from vertex 1
    lep = _LEPTONS[int(rng.random() < 0.6)]
    s = -1.0 if rng.random() < 0.5 else 1.0
    lep_pt, lep_eta, lep_phi = rng.uniform(20, 45), rng.uniform(-2.5, 2.5), rng.uniform(-np.pi,
                                                                                        np.pi)
    mass = rng.uniform(*cfg.hnl_mass)
    n_pt, n_eta = rng.uniform(*cfg.hnl_pt), rng.uniform(-2.5, 2.5)
    n_phi = lep_phi + np.pi + rng.normal(0, 0.5)  # roughly back to back with the lepton
    npx, npy, npz = (float(v) for v in _momentum(np.array(n_pt), np.array(n_eta),
                                                 np.array(n_phi)))
    pvec = np.array([npx, npy, npz])
    p = float(np.linalg.norm(pvec))
    energy = float(np.hypot(p, mass))
    unit = pvec / p
    # decay length: exponential, truncated so the vertex stays inside the tracker volume
    lmax_r = cfg.hnl_max_decay_radius / max(np.hypot(unit[0], unit[1]), 1e-9)
    zdir = np.sign(unit[2]) if unit[2] != 0 else 1.0
    lmax_z = (cfg.hnl_max_decay_z - zdir * pv[2]) / max(abs(unit[2]), 1e-9)
    lmax = max(min(lmax_r, lmax_z), 0.0)
    lam = cfg.hnl_decay_length
    length = -lam * np.log1p(-rng.random() * -np.expm1(-lmax / lam))
    sv = np.concatenate([pv[:3] + length * unit, [pv[3] + length * energy / (p * C_MM_PER_NS)]])

    # extra prompt tracks: total prompt (lepton included) in hnl_prompt, plus underlying event
    n_extra = int(rng.integers(cfg.hnl_prompt[0], cfg.hnl_prompt[1] + 1)) - 1
    n_extra += int(_neg_binomial(rng, cfg.hnl_underlying_event, 1)[0])
    extra = _prompt(rng, cfg, pv[None, :], np.array([n_extra]), np.array([1]), np.array([3]))

    weights = np.array([c[0] for c in _HNL_CHANNELS])
    channel = _HNL_CHANNELS[int(rng.choice(weights.size, p=weights / weights.sum()))][1]
    species = np.array([d[0] for d in channel])
    dq = np.array([d[1] for d in channel], dtype=np.float64) * s
    dpdg = np.where(np.isin(species, (12, 14)), species, _signed_pdg(species, dq))
    dmass = _mass_of(dpdg)
    p4 = _decay(rng, np.array([energy, npx, npy, npz]), mass, dmass)

    lpx, lpy, lpz = (float(v) for v in _momentum(np.array(lep_pt), np.array(lep_eta),
                                                 np.array(lep_phi)))
    lep_pdg = int(_signed_pdg(np.array([lep]), np.array([-s]))[0])
    nd = species.size
    head = Particles(
        vertex_primary=np.ones(2 + nd, np.int64),
        vertex_secondary=np.array([0, 0] + [1] * nd, np.int64),
        number=np.array([1, 2, *range(1, nd + 1)], np.int64),
        pdg=np.array([lep_pdg, HNL_PDG, *dpdg], np.int64),
        q=np.array([-s, 0.0, *dq]),
        m=np.array([MASS[lep], mass, *dmass]),
        vx=np.array([pv[0], pv[0]] + [sv[0]] * nd),
        vy=np.array([pv[1], pv[1]] + [sv[1]] * nd),
        vz=np.array([pv[2], pv[2]] + [sv[2]] * nd),
        vt=np.array([pv[3], pv[3]] + [sv[3]] * nd),
        px=np.array([lpx, npx, *p4[:, 1]]),
        py=np.array([lpy, npy, *p4[:, 2]]),
        pz=np.array([lpz, npz, *p4[:, 3]]),
    )
    # barcode order: primary-vertex particles (vs=0) first, then the secondary vertex
    prim = Particles.concat([
        Particles(**{k: getattr(head, k)[:2] for k in Particles.__dataclass_fields__}),
        extra,
    ])
    sec = Particles(**{k: getattr(head, k)[2:] for k in Particles.__dataclass_fields__})
    return Particles.concat([prim, sec])


def generate_particles(rng: np.random.Generator, cfg: SimulationConfig) -> Particles:
    """All generated particles of one event, ordered by barcode."""
    n_pu = int(rng.poisson(cfg.pileup)) if cfg.pileup > 0 else 0
    vertices = _beam_spot(rng, cfg, 1 + n_pu)
    parts: list[Particles] = []
    if cfg.sample == "hnl":
        parts.append(_hnl_event(rng, cfg, vertices[0]))
    elif cfg.sample == "ttbar-like":
        counts = _neg_binomial(rng, cfg.ttbar_multiplicity, 1)
        parts.append(_prompt(rng, cfg, vertices[:1], counts, np.array([1]), np.array([1]),
                             hard_fraction=0.10))
    else:  # minbias
        counts = _neg_binomial(rng, cfg.minbias_multiplicity, 1)
        parts.append(_prompt(rng, cfg, vertices[:1], counts, np.array([1]), np.array([1])))
    if n_pu:
        counts = _neg_binomial(rng, cfg.minbias_multiplicity, n_pu)
        parts.append(_prompt(rng, cfg, vertices[1:], counts, np.arange(2, n_pu + 2),
                             np.ones(n_pu, np.int64)))
    return Particles.concat(parts)
