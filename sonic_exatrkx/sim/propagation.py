"""Helix propagation through the layers of a `Geometry` in a uniform solenoid field.

Charged particles move on helices about z (radius R[m] = pT[GeV] / (0.3 |q| B[T])). Each
step finds, for all live particles at once, the next *hit* analytically: the crossings of
every barrel cylinder outside the particle (circle-circle intersection, kept if |z| is
within the half-length) and of every disc plane ahead in z (linear in z, kept if r is
within a ring) form a small (particles x surfaces) matrix whose row minimum is the next
hit. Between hits the helix is unchanged, so one step per hit is exact. Particles stop
at the farthest point of their circle from the beam line (loopers end after the first
half-turn outward) or when no surface ahead is hit.

Simplifications, chosen because the toy must be fast and easy to reason about:
- a particle produced at radius r0 only reaches barrel layers with r > r0 (displaced
  daughters flying inward do not hit inner layers twice);
- each crossing of a sensitive layer within its extent is one simulated hit; there is
  no material outside sensitive layers and no energy loss;
- multiple scattering is a Gaussian kick of the direction at each hit (Highland
  formula with the layer's x/X0 divided by the cosine of the incidence angle).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sonic_exatrkx.sim.generator import C_MM_PER_NS
from sonic_exatrkx.sim.geometry import Geometry

__all__ = ["Hits", "highland_theta0", "max_hits", "propagate"]

TWO_PI = 2.0 * np.pi
# Curvature constant: R[mm] = pT[GeV] / (_K * |q| * B[T])
_K = 0.299792458e-3
_EPS = 1e-6  # mm: "strictly ahead of the current position"


@dataclass
class Hits:
    """Simulated hits as columns; `particle` indexes the propagated particle arrays."""

    particle: np.ndarray
    layer: np.ndarray
    index: np.ndarray
    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    t: np.ndarray
    px: np.ndarray
    py: np.ndarray
    pz: np.ndarray
    e: np.ndarray
    dpx: np.ndarray
    dpy: np.ndarray
    dpz: np.ndarray

    def __len__(self) -> int:
        return int(self.particle.size)


def highland_theta0(p: np.ndarray, beta: np.ndarray, q: np.ndarray,
                    x_x0: np.ndarray) -> np.ndarray:
    """RMS plane scattering angle (PDG Highland formula), p in GeV."""
    x_x0 = np.maximum(x_x0, 1e-12)
    corr = 1.0 + 0.038 * np.log(x_x0 * q**2 / beta**2)
    return 0.0136 / (beta * p) * np.abs(q) * np.sqrt(x_x0) * np.maximum(corr, 0.0)


def _scatter(px: np.ndarray, py: np.ndarray, pz: np.ndarray, theta0: np.ndarray,
             normals: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Kick directions by two independent Gaussian plane angles (`normals` (n, 2) are
    standard normal draws, scaled by `theta0`); |p| is kept."""
    p = np.sqrt(px**2 + py**2 + pz**2)
    ux, uy, uz = px / p, py / p, pz / p
    # e1 = unit(u x z), e2 = u x e1: both perpendicular to u
    norm = np.hypot(ux, uy)
    along_z = norm < 1e-12
    safe = np.where(along_z, 1.0, norm)
    e1x = np.where(along_z, 1.0, uy / safe)
    e1y = np.where(along_z, 0.0, -ux / safe)
    e2x, e2y, e2z = -uz * e1y, uz * e1x, ux * e1y - uy * e1x
    a1 = np.tan(normals[:, 0] * theta0)
    a2 = np.tan(normals[:, 1] * theta0)
    nx, ny, nz = ux + a1 * e1x + a2 * e2x, uy + a1 * e1y + a2 * e2y, uz + a2 * e2z
    scale = p / np.sqrt(nx**2 + ny**2 + nz**2)
    return nx * scale, ny * scale, nz * scale


def max_hits(geometry: Geometry) -> int:
    """Most hits one particle can make: each cylinder and disc plane once."""
    g = geometry.arrays
    return int(g.barrel_r.size + g.plane_z.size)


# rows of the per-particle state matrix (one column per live particle)
(_X, _Y, _Z, _T, _PX, _PY, _PZ, _KQ, _H, _P, _E, _ID, _NH, _OUT) = range(14)


def propagate(geometry: Geometry, bfield: float,
              x: np.ndarray, y: np.ndarray, z: np.ndarray, t: np.ndarray,
              px: np.ndarray, py: np.ndarray, pz: np.ndarray, q: np.ndarray, m: np.ndarray,
              kicks: np.ndarray | None = None, material_scale: float = 1.0) -> Hits:
    """Propagate particles (arrays of equal length) and return their hits in step order.

    `kicks` (n, max_hits(geometry), 2) holds standard normal draws: hit k of particle i
    is scattered with kicks[i, k]. Drawing them up front makes each particle's path
    independent of which other particles (or events) are propagated in the same call,
    so events can be batched for speed and still come out bit-identical.
    Neutral particles and those with pT == 0 make no hits.
    The state of all live particles is one (14, n) matrix, so dropping finished
    particles is one fancy-index per step; one step finds the next hit of every particle.
    """
    g = geometry.arrays
    cap = max_hits(geometry)
    if material_scale > 0 and (kicks is None or kicks.shape[1:] != (cap, 2)
                               or kicks.shape[0] != x.size):
        raise ValueError(f"kicks: expected shape ({x.size}, {cap}, 2), got "
                         f"{None if kicks is None else kicks.shape}")
    live = np.flatnonzero((q != 0) & (np.hypot(px, py) > 0))
    p_abs = np.sqrt(px**2 + py**2 + pz**2)
    S = np.empty((14, live.size))
    for row, col in ((_X, x), (_Y, y), (_Z, z), (_T, t), (_PX, px), (_PY, py), (_PZ, pz)):
        S[row] = col[live]
    S[_KQ] = _K * np.abs(q[live]) * abs(bfield)
    S[_H] = np.sign(q[live]) * (1.0 if bfield > 0 else -1.0)  # +1: clockwise seen from +z
    S[_P] = p_abs[live]
    S[_E] = np.sqrt(p_abs[live] ** 2 + m[live] ** 2)
    S[_ID] = live
    S[_NH] = 0.0
    S[_OUT] = 0.0  # 1 once the particle has moved outward at a step start
    chunks: list[tuple[np.ndarray, ...]] = []
    nb, nplanes = g.barrel_r.size, g.plane_z.size
    b_r = g.barrel_r[None, :]
    b_hl = g.half_length[g.barrel_layer][None, :]

    for _ in range(cap):
        if S.shape[1] == 0:
            break
        n = S.shape[1]
        X, Y, Z, PX, PY, PZ, H = S[_X], S[_Y], S[_Z], S[_PX], S[_PY], S[_PZ], S[_H]
        pt = np.hypot(PX, PY)
        cphi, sphi = PX / pt, PY / pt
        R = pt / S[_KQ]
        hR = H * R
        cx, cy = X + hR * sphi, Y - hR * cphi
        d = np.hypot(cx, cy)
        r_cur = np.hypot(X, Y)
        tz = PZ / pt
        out = (S[_OUT] > 0) | ((X * cphi + Y * sphi) >= 0.0)
        S[_OUT] = out
        # rotation angle (in the direction of motion) from here to the farthest point of
        # the circle from the z axis; the radius vector from the centre is h*(-sin, cos)
        ang = -H * np.arctan2(H * (-sphi * cy - cphi * cx), H * (-sphi * cx + cphi * cy))
        s_turn = R * np.where(ang < 0, ang + TWO_PI, ang)
        # already past the apex (e.g. kicked there): the outward half-turn is over
        s_turn = np.where(out & (s_turn > np.pi * R * (1 + 1e-9)), -1.0, s_turn)

        # -- barrel hits ahead: every cylinder outside r_cur, crossed before the apex at an
        # angle atan2(hp, a - d) short of it (a, hp: intersection chord, centre frame)
        best_s = np.full(n, np.inf)
        best_l = np.zeros(n, np.int64)
        if nb:
            dd = np.maximum(d, 1e-12)[:, None]
            a = (b_r**2 - (R**2)[:, None] + dd**2) / (2 * dd)
            hp2 = b_r**2 - a**2
            sb = s_turn[:, None] - R[:, None] * np.arctan2(np.sqrt(np.maximum(hp2, 0.0)),
                                                           a - dd)
            zb = Z[:, None] + tz[:, None] * sb
            ok = (b_r > r_cur[:, None] + _EPS) & (hp2 >= 0) & (np.abs(zb) <= b_hl) & (sb > 0)
            sb = np.where(ok, sb, np.inf)
            kb = np.argmin(sb, axis=1)
            best_s = sb[np.arange(n), kb]
            best_l = g.barrel_layer[kb]
            best_b = np.isfinite(best_s)
        else:
            best_b = np.zeros(n, bool)

        # -- disc hits ahead: the planes in the direction of flight, up to the apex
        if nplanes:
            k = np.searchsorted(g.plane_z, Z)
            on = g.plane_z[np.minimum(k, nplanes - 1)] == Z  # sitting on a plane
            up = tz > 0
            j0 = np.where(up, k + on, k - 1)
            n_ahead = np.where(up, nplanes - j0, j0 + 1)
            width = int(n_ahead.max()) if n else 0
            if width > 0:
                jj = j0[:, None] + np.where(up, 1, -1)[:, None] * np.arange(width)[None, :]
                okj = (jj >= 0) & (jj < nplanes) & (tz != 0)[:, None]
                jc = np.clip(jj, 0, nplanes - 1)
                with np.errstate(divide="ignore", invalid="ignore"):
                    sd = (g.plane_z[jc] - Z[:, None]) / tz[:, None]
                okj &= (sd > 0) & (sd <= s_turn[:, None] * (1 + 1e-9) + 1e-9)
                th = -(H / R)[:, None] * np.where(okj, sd, 0.0)
                ct, st = np.cos(th), np.sin(th)
                xd = cx[:, None] - hR[:, None] * (sphi[:, None] * ct + cphi[:, None] * st)
                yd = cy[:, None] + hR[:, None] * (cphi[:, None] * ct - sphi[:, None] * st)
                rd = np.hypot(xd, yd)
                ring = np.full(jc.shape, -1, np.int64)
                for kk in range(g.ring_rmin.shape[1]):
                    inside = (rd >= g.ring_rmin[jc, kk]) & (rd <= g.ring_rmax[jc, kk])
                    ring = np.where(inside & (ring < 0), kk, ring)
                sd = np.where(okj & (ring >= 0), sd, np.inf)
                kd = np.argmin(sd, axis=1)
                rows = np.arange(n)
                s_disc = sd[rows, kd]
                disc = s_disc < best_s
                best_s = np.where(disc, s_disc, best_s)
                best_l = np.where(disc, g.ring_layer[jc[rows, kd], np.maximum(ring[rows, kd],
                                                                               0)], best_l)
                best_b &= ~disc

        # particles with no hit left before their apex are done
        go = np.isfinite(best_s)
        if not go.all():
            keep = np.flatnonzero(go)
            if keep.size == 0:
                break
            S = S[:, keep]
            pt, cphi, sphi, R, hR, cx, cy, tz, best_s, best_l, best_b = (
                v[keep] for v in (pt, cphi, sphi, R, hR, cx, cy, tz, best_s, best_l, best_b))
        s, lay = best_s, best_l

        # -- move along the helix by s: the direction turns by -h * s / R ----------------
        theta = -S[_H] * s / R
        ct, st = np.cos(theta), np.sin(theta)
        cn, sn = cphi * ct - sphi * st, sphi * ct + cphi * st
        Xn, Yn = cx - hR * sn, cy + hR * cn
        # snap onto the surface exactly (removes round-off drift)
        scale = np.where(best_b, g.position[lay] / np.hypot(Xn, Yn), 1.0)
        S[_X], S[_Y] = Xn * scale, Yn * scale
        S[_Z] = np.where(best_b, S[_Z] + s * tz, g.position[lay])
        S[_T] += s * S[_E] / (pt * C_MM_PER_NS)
        S[_PX], S[_PY] = pt * cn, pt * sn

        bpx, bpy, bpz = S[_PX].copy(), S[_PY].copy(), S[_PZ].copy()
        ph, eh = S[_P], S[_E]
        apx, apy, apz = bpx, bpy, bpz
        if material_scale > 0:
            x_x0 = g.material[lay] * material_scale
            xh, yh = S[_X], S[_Y]
            cos_inc = np.where(best_b, (xh * bpx + yh * bpy) / (np.hypot(xh, yh) * ph),
                               bpz / ph)
            cos_inc = np.maximum(np.abs(cos_inc), 0.05)
            theta0 = highland_theta0(ph, ph / eh, S[_KQ] / (_K * abs(bfield)), x_x0 / cos_inc)
            theta0 = np.where(x_x0 > 0, theta0, 0.0)
            ids = S[_ID].astype(np.int64)
            apx, apy, apz = _scatter(bpx, bpy, bpz, theta0,
                                     kicks[ids, S[_NH].astype(np.int64)])
        chunks.append((S[_ID].astype(np.int64), lay, S[_NH].astype(np.int64), S[_X].copy(),
                       S[_Y].copy(), S[_Z].copy(), S[_T].copy(), bpx, bpy, bpz, eh.copy(),
                       apx - bpx, apy - bpy, apz - bpz))
        S[_NH] += 1.0
        S[_PX], S[_PY], S[_PZ] = apx, apy, apz

    if not chunks:
        empty_i = np.zeros(0, np.int64)
        empty_f = np.zeros(0, np.float64)
        return Hits(empty_i, empty_i, empty_i, *([empty_f] * 11))
    cols = [np.concatenate(c) for c in zip(*chunks, strict=True)]
    return Hits(*cols)
