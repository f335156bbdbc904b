"""Shared fixtures: small configs so the whole sim suite stays well under 30 s."""

from __future__ import annotations

import numpy as np
import pytest

from sonic_exatrkx.sim import Geometry, SimulationConfig

NO_SMEARING = {"pixel": (0.0, 0.0), "short_strip": (0.0, 0.0), "long_strip": (0.0, 0.0)}


@pytest.fixture(scope="session")
def geometry() -> Geometry:
    return Geometry.trackml_like()


@pytest.fixture(scope="session")
def ideal_config(geometry: Geometry) -> SimulationConfig:
    """No material, no smearing, no noise, full efficiency: exact helices."""
    return SimulationConfig(sample="minbias", pileup=5, seed=7, material_scale=0.0,
                            resolution=NO_SMEARING, noise_fraction=0.0, efficiency=1.0,
                            geometry=geometry)


def layer_of(geometry: Geometry, geometry_id: np.ndarray) -> np.ndarray:
    """Row index in geometry.layers of each packed geometry id."""
    from sonic_exatrkx.sim import unpack_geometry_id

    vol, lay, _ = unpack_geometry_id(geometry_id)
    keys = np.array([la.volume_id * 4096 + la.layer_id for la in geometry.layers])
    order = np.argsort(keys)
    pos = np.searchsorted(keys[order], vol * 4096 + lay)
    assert np.all(keys[order][pos] == vol * 4096 + lay), "unknown (volume, layer)"
    return order[pos]
