"""Node features from x, y, z."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sonic_exatrkx.exatrkx import FeatureConfig, compute_features


def test_default_features() -> None:
    x = np.array([100.0, 0.0, -300.0])
    y = np.array([0.0, 500.0, 0.0])
    z = np.array([-1000.0, 20.0, 0.0])
    f = compute_features(x, y, z)
    assert f.dtype == np.float32 and f.shape == (3, 3)
    np.testing.assert_allclose(f[:, 0], [0.1, 0.5, 0.3], rtol=1e-6)
    np.testing.assert_allclose(f[:, 1], [0.0, 0.5, 1.0], rtol=1e-6)  # phi/pi, phi in (-pi, pi]
    np.testing.assert_allclose(f[:, 2], [-1.0, 0.02, 0.0], rtol=1e-6)


def test_reference_and_custom_configs() -> None:
    ref = FeatureConfig.reference()
    assert ref.names == ("r", "phi", "z") and ref.scales == (3000.0, math.pi, 400.0)
    f = compute_features([3000.0], [0.0], [400.0], ref)
    np.testing.assert_allclose(f, [[1.0, 0.0, 1.0]])
    cfg = FeatureConfig(names=("r", "phi", "z", "eta"), scales=(1000, math.pi, 1000, 1))
    f = compute_features([100.0], [0.0], [100.0], cfg)
    assert f.shape == (1, 4)
    np.testing.assert_allclose(f[0, 3], math.asinh(1.0), rtol=1e-6)
    assert FeatureConfig.from_dict(cfg.to_dict()) == cfg


def test_empty_and_validation() -> None:
    assert compute_features([], [], []).shape == (0, 3)
    with pytest.raises(ValueError, match="scales"):
        FeatureConfig(names=("r", "phi"), scales=(1000.0,))
    with pytest.raises(ValueError, match="unknown"):
        FeatureConfig(names=("r", "theta"), scales=(1.0, 1.0))
    with pytest.raises(ValueError, match="> 0"):
        FeatureConfig(scales=(1000.0, 0.0, 1000.0))
    with pytest.raises(ValueError, match="duplicate"):
        FeatureConfig(names=("r", "r"), scales=(1.0, 1.0))
    with pytest.raises(ValueError, match="lengths differ"):
        compute_features([1.0, 2.0], [1.0], [1.0])
    with pytest.raises(ValueError, match=r"stage 'features'.*row 2"):
        compute_features([1.0, 2.0, np.nan], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0])
