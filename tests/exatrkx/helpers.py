"""Shared helpers for the exatrkx tests: reference data and toy events."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REFERENCE_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "reference-data"
SERVICE_INPUTS = REFERENCE_DIR / "exatrkx-service" / "triton_service" / "model_repos" / "inputs"

# Barrel layer radii (mm) of a TrackML-like detector.
LAYERS_MM = np.array([32.0, 72.0, 116.0, 172.0, 260.0, 360.0, 500.0, 660.0, 820.0, 1020.0])


def load_reference(name: str) -> np.ndarray:
    """One reference-service stage dump (no header, comma separated), or skip the test."""
    path = SERVICE_INPUTS / name
    if not path.is_file():
        pytest.skip(f"reference data not found: {path}")
    return np.loadtxt(path, delimiter=",", ndmin=1)


def toy_event(
    n_tracks: int = 20, seed: int = 0, noise: int = 0, layers: np.ndarray = LAYERS_MM
) -> dict[str, np.ndarray]:
    """Helix-like toy tracks from near the origin, one hit per barrel layer.

    phi = phi0 + c * r (c = 1 / 2R, pT = 0.3 * 2 T * R / 1000 GeV), z = z0 + r sinh(eta);
    phi0 keeps clear of the +-pi seam. Returns x, y, z (mm), particle_id (uint64, 0 = noise),
    pt and eta per space point, space points shuffled.
    """
    rng = np.random.default_rng(seed)
    phi0 = rng.uniform(-np.pi + 0.4, np.pi - 0.4, n_tracks)
    curv = rng.uniform(-2.5e-4, 2.5e-4, n_tracks)  # rad / mm
    eta = rng.uniform(-2.0, 2.0, n_tracks)
    z0 = rng.normal(0.0, 30.0, n_tracks)
    pt = 0.6 / (2.0 * np.maximum(np.abs(curv), 1e-6)) / 1000.0
    r = np.tile(layers, n_tracks) + rng.normal(0.0, 0.5, n_tracks * layers.size)
    tid = np.repeat(np.arange(n_tracks), layers.size)
    phi = phi0[tid] + curv[tid] * r + rng.normal(0.0, 5e-4, r.size)
    z = z0[tid] + r * np.sinh(eta[tid]) + rng.normal(0.0, 0.5, r.size)
    pid = (tid + 1).astype(np.uint64)
    pts, etas = pt[tid], eta[tid]
    if noise:
        rn = rng.choice(layers, noise)
        phin = rng.uniform(-np.pi, np.pi, noise)
        zn = rng.uniform(-1000.0, 1000.0, noise)
        r, phi, z = np.concatenate([r, rn]), np.concatenate([phi, phin]), np.concatenate([z, zn])
        pid = np.concatenate([pid, np.zeros(noise, dtype=np.uint64)])
        pts, etas = np.concatenate([pts, np.zeros(noise)]), np.concatenate([etas, np.zeros(noise)])
    order = rng.permutation(r.size)
    return {
        "x": (r * np.cos(phi))[order],
        "y": (r * np.sin(phi))[order],
        "z": z[order],
        "particle_id": pid[order],
        "pt": pts[order],
        "eta": etas[order],
    }
