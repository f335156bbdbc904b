"""Physics of the toy simulation: surfaces, helices, multiplicities, spectra, HNL decays."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sonic_exatrkx.io.acts_csv import attach_truth, split_particle_id
from sonic_exatrkx.sim import Geometry, SimulationConfig, simulate_event
from sonic_exatrkx.sim.generator import generate_particles
from sonic_exatrkx.sim.propagation import highland_theta0

from .conftest import layer_of

TOL = 2e-3  # mm: float32 positions at r ~ 1 m are good to ~1e-4 mm


@pytest.fixture(scope="module")
def ideal_event(ideal_config: SimulationConfig) -> dict[str, pd.DataFrame]:
    return simulate_event(ideal_config, 3)


@pytest.fixture(scope="module")
def realistic_event() -> dict[str, pd.DataFrame]:
    return simulate_event(SimulationConfig(sample="hnl", pileup=10, seed=11), 0)


def _check_on_surfaces(geometry: Geometry, gid: np.ndarray, x: np.ndarray, y: np.ndarray,
                       z: np.ndarray, r_tol: float, z_tol: float) -> None:
    idx = layer_of(geometry, gid)
    g = geometry.arrays
    barrel = g.is_barrel[idx]
    r = np.hypot(x, y)
    pos, hl = g.position[idx], g.half_length[idx]
    assert np.all(np.abs(r - pos)[barrel] < r_tol)
    assert np.all((np.abs(z) <= hl + z_tol)[barrel])
    assert np.all(np.abs(z - pos)[~barrel] < z_tol)
    assert np.all((r >= g.r_min[idx] - r_tol)[~barrel])
    assert np.all((r <= g.r_max[idx] + r_tol)[~barrel])
    assert barrel.any() and (~barrel).any()


def test_hits_lie_on_their_layer_surfaces(realistic_event, geometry: Geometry) -> None:
    h = realistic_event["hits"]
    _check_on_surfaces(geometry, h.geometry_id.to_numpy(), h.tx.to_numpy(np.float64),
                       h.ty.to_numpy(np.float64), h.tz.to_numpy(np.float64), TOL, TOL)


def test_spacepoints_stay_on_their_surfaces(realistic_event, geometry: Geometry) -> None:
    # smearing moves points along the surface (r*phi and z, or r*phi and r), not off it
    sp = realistic_event["spacepoint"]
    _check_on_surfaces(geometry, sp.geometry_id_1.to_numpy(), sp.x.to_numpy(np.float64),
                       sp.y.to_numpy(np.float64), sp.z.to_numpy(np.float64), 5.0, TOL)


def test_geometry_id_of_hits_is_the_module_containing_them(realistic_event,
                                                           geometry: Geometry) -> None:
    h = realistic_event["hits"]
    modules = geometry.module_frame().set_index("geometry_id")
    m = modules.loc[h.geometry_id.to_numpy()]
    dphi = np.angle(np.exp(1j * (np.arctan2(h.ty, h.tx).to_numpy() - m.phi.to_numpy())))
    assert np.all(np.abs(dphi) <= m.width_phi.to_numpy() / 2 + 1e-5)
    barrel = (m.kind == "barrel").to_numpy()
    along = np.where(barrel, h.tz.to_numpy(), np.hypot(h.tx, h.ty).to_numpy())
    centre = np.where(barrel, m.cz.to_numpy(), m.r.to_numpy())
    assert np.all(np.abs(along - centre) <= m.length.to_numpy() / 2 + 1e-3)


def _circle_radius(x: np.ndarray, y: np.ndarray) -> float:
    """Algebraic (Kasa) circle fit: exact for points on a circle."""
    x0, y0 = x.mean(), y.mean()
    u, v = x - x0, y - y0
    a = np.column_stack([u, v, np.ones_like(u)])
    sol, *_ = np.linalg.lstsq(a, -(u**2 + v**2), rcond=None)
    return float(np.sqrt(sol[0] ** 2 / 4 + sol[1] ** 2 / 4 - sol[2]))


@pytest.mark.parametrize("sample", ["minbias", "hnl"])
def test_fitted_curvature_matches_true_pt(ideal_config: SimulationConfig, sample: str) -> None:
    cfg = ideal_config.replace(sample=sample, pileup=2 if sample == "hnl" else 5)
    ev = simulate_event(cfg, 1)
    sp = ev["spacepoint"]
    pid = attach_truth(sp, ev["measurement-simhit-map"], ev["hits"])
    assert np.all(pid != 0)  # no noise configured
    parts = ev["particles"].set_index("particle_id")
    x, y = sp.x.to_numpy(np.float64), sp.y.to_numpy(np.float64)
    order = np.argsort(pid, kind="stable")
    ids, starts, counts = np.unique(pid[order], return_index=True, return_counts=True)
    checked = 0
    for p, s, c in zip(ids, starts, counts, strict=True):
        if c < 4:
            continue
        sel = order[s:s + c]
        row = parts.loc[p]
        pt_true = float(np.hypot(row.px, row.py))
        pt_fit = 0.299792458e-3 * cfg.bfield * abs(row.q) * _circle_radius(x[sel], y[sel])
        assert pt_fit == pytest.approx(pt_true, rel=0.01), (p, c, pt_true, pt_fit)
        checked += 1
    assert checked > 50


def test_barrel_hit_multiplicity(ideal_event, ideal_config: SimulationConfig) -> None:
    """Central prompt particles hit every barrel layer below their apex 2R exactly once,
    in increasing radius."""
    parts = ideal_event["particles"]
    hits = ideal_event["hits"]
    g = ideal_config.geometry.arrays
    pt = np.hypot(parts.px, parts.py).to_numpy(np.float64)
    eta = np.arcsinh(parts.pz.to_numpy(np.float64) / pt)
    two_r = 2 * pt / (0.299792458e-3 * ideal_config.bfield)
    radii = g.barrel_r
    near = np.min(np.abs(two_r[:, None] - radii[None, :]), axis=1) < 2.0
    central = (np.abs(eta) < 0.35) & (parts.q != 0).to_numpy() & ~near
    assert central.sum() > 20
    idx = layer_of(ideal_config.geometry, hits.geometry_id.to_numpy())
    hb = hits[g.is_barrel[idx]].assign(r=np.hypot(hits.tx, hits.ty)[g.is_barrel[idx]])
    per = hb.groupby("particle_id")
    n_barrel = per.size()
    for p, tr in zip(parts.particle_id[central], two_r[central], strict=True):
        expected = int(np.sum(radii < tr))
        assert n_barrel.get(p, 0) == expected, (p, tr)
        if expected:
            mine = per.get_group(p).sort_values("index")
            assert np.all(np.diff(mine.r.to_numpy()) > 0)
            assert mine["index"].tolist() == list(range(expected))
    # every central particle with pT > 1 GeV reaches all 10 barrel layers
    fast = central & (pt > 1.0)
    assert np.all(n_barrel.reindex(parts.particle_id[fast]).to_numpy() == radii.size)


def test_prompt_spectrum_is_realistic() -> None:
    cfg = SimulationConfig(sample="minbias", pileup=200, seed=3)
    parts = generate_particles(np.random.default_rng(0), cfg)
    pt = np.hypot(parts.px, parts.py)
    eta = np.arcsinh(parts.pz / pt)
    assert 6000 < len(parts) < 14000
    assert 0.33 < np.median(pt) < 0.45
    assert 0.07 < np.mean(pt > 1.0) < 0.15
    assert np.all(np.abs(eta) < 3.0)
    counts, _ = np.histogram(eta, bins=6, range=(-3, 3))
    assert counts.min() > 0.8 * counts.mean()
    assert set(np.unique(np.abs(parts.pdg))) <= {11, 13, 211, 321, 2212}
    assert np.all(np.abs(parts.q) == 1)


def test_pileup_vertices_are_numbered_and_smeared() -> None:
    parts = generate_particles(np.random.default_rng(1), SimulationConfig(sample="minbias",
                                                                         pileup=30))
    vp = parts.vertex_primary
    n_vertices = vp.max()
    assert 15 < n_vertices < 50 and np.array_equal(np.unique(vp), np.arange(1, n_vertices + 1))
    vz = np.array([parts.vz[vp == v][0] for v in range(1, n_vertices + 1)])
    assert 20 < vz.std() < 100
    solo = generate_particles(np.random.default_rng(1), SimulationConfig(sample="hnl"))
    assert np.all(solo.vertex_primary == 1)


def test_hnl_decays_at_a_displaced_vertex(geometry: Geometry) -> None:
    cfg = SimulationConfig(sample="hnl", material_scale=0.0)
    radii, masses = [], []
    for event in range(30):
        parts = generate_particles(np.random.default_rng(event), cfg)
        hnl = np.flatnonzero(parts.pdg == 9900012)
        assert hnl.size == 1 and parts.q[hnl[0]] == 0
        dau = parts.vertex_secondary == 1
        assert dau.sum() in (3, 4) or (dau.sum() == 2)
        assert parts.q[dau].sum() == 0 and np.count_nonzero(parts.q[dau]) in (2, 4)
        # four-momentum conservation: daughters add up to the HNL
        e = np.sqrt(parts.px**2 + parts.py**2 + parts.pz**2 + parts.m**2)
        for comp in (parts.px, parts.py, parts.pz, e):
            assert comp[dau].sum() == pytest.approx(comp[hnl[0]], rel=1e-9, abs=1e-9)
        p_dau = np.array([comp[dau].sum() for comp in (e, parts.px, parts.py, parts.pz)])
        masses.append(np.sqrt(p_dau[0] ** 2 - np.sum(p_dau[1:] ** 2)))
        assert masses[-1] == pytest.approx(parts.m[hnl[0]], rel=1e-6)
        r_sv = np.hypot(parts.vx[dau], parts.vy[dau])
        assert np.ptp(r_sv) == 0
        radii.append(r_sv[0])
        # prompt tracks (2-10 hard + underlying event) come from the primary vertex
        assert np.sum((parts.vertex_secondary == 0) & (parts.q != 0)) >= 2
    radii = np.array(radii)
    assert np.all(radii <= cfg.hnl_max_decay_radius + 1e-6)
    assert np.median(radii) > 5.0  # displaced: mm to tens of cm
    assert min(masses) >= 1.0 and max(masses) <= 10.0


def test_displaced_daughters_only_hit_layers_outside_their_vertex(ideal_config) -> None:
    cfg = ideal_config.replace(sample="hnl", pileup=0, hnl_decay_length=150.0)
    geometry = cfg.geometry
    for event in range(8):
        ev = simulate_event(cfg, event)
        parts, hits = ev["particles"], ev["hits"]
        sv = split_particle_id(parts.particle_id)["particle_id_sv"].to_numpy() > 0
        r0 = dict(zip(parts.particle_id[sv], np.hypot(parts.vx, parts.vy)[sv], strict=True))
        mine = hits[hits.particle_id.isin(list(r0))]
        idx = layer_of(geometry, mine.geometry_id.to_numpy())
        barrel = geometry.arrays.is_barrel[idx]
        r_hit = np.hypot(mine.tx, mine.ty).to_numpy()[barrel]
        r_start = mine.particle_id.map(r0).to_numpy()[barrel]
        assert np.all(r_hit > r_start)
        neutral = parts.particle_id[parts.q == 0]
        assert not hits.particle_id.isin(neutral).any()


def test_highland_formula() -> None:
    # PDG: 13.6 MeV / (beta c p) z sqrt(x/X0) (1 + 0.038 ln(x z^2 / (X0 beta^2)))
    theta = highland_theta0(np.array([1.0]), np.array([1.0]), np.array([1.0]),
                            np.array([0.02]))
    assert theta[0] == pytest.approx(0.0136 * np.sqrt(0.02) * (1 + 0.038 * np.log(0.02)))


def test_multiple_scattering_kicks_have_the_highland_width() -> None:
    from sonic_exatrkx.sim.propagation import max_hits, propagate

    geometry = Geometry.trackml_like()
    n = 4000
    rng = np.random.default_rng(5)
    phi = rng.uniform(-np.pi, np.pi, n)
    p = 1.0
    zeros = np.zeros(n)
    kicks = rng.standard_normal((n, max_hits(geometry), 2))
    hits = propagate(geometry, 2.0, zeros, zeros, zeros, zeros, p * np.cos(phi),
                     p * np.sin(phi), zeros, np.ones(n), np.full(n, 0.105658), kicks=kicks)
    first = hits.index == 0  # r = 32 mm pixel layer, normal incidence at pT = 1 GeV
    dtheta = hits.dpz[first] / p
    beta = p / np.hypot(p, 0.105658)
    expected = highland_theta0(np.array([p]), np.array([beta]), np.array([1.0]),
                               np.array([0.02 / np.cos(np.arcsin(0.032 * 0.3 / p))]))[0]
    assert dtheta.std() == pytest.approx(expected, rel=0.05)
    # |p| is conserved by scattering
    p_after = np.sqrt((hits.px + hits.dpx) ** 2 + (hits.py + hits.dpy) ** 2
                      + (hits.pz + hits.dpz) ** 2)
    assert np.allclose(p_after, p, rtol=1e-12)
