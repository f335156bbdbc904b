"""Node features for the ExaTrkX models, computed from space point positions.

Convention (one, used everywhere in this package):

- input: space point ``x, y, z`` in millimetres, one row per space point, row index = space
  point id (the id used by edges and track labels);
- ``r = hypot(x, y)`` in mm, ``phi = atan2(y, x)`` in radians in ``(-pi, pi]``, ``z`` in mm;
- feature column ``k`` is ``quantity[names[k]] / scales[k]``, float32, shape ``[N, F]``.

The default ``FeatureConfig()`` gives ``(r/1000, phi/pi, z/1000)``. The public reference models
(ExaTrkX C++/Triton service) were trained with ``(r/3000, phi/pi, z/400)``:
``FeatureConfig.reference()``. The two must not be mixed, so the scales travel with the saved
models in ``config.json``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import ExaTrkXConfigError

#: Quantities a feature column may hold (all derived from x, y, z in mm).
KNOWN_FEATURES: tuple[str, ...] = ("r", "phi", "z", "x", "y", "eta")


@dataclass(frozen=True)
class FeatureConfig:
    """Which quantities make up the node features, and the divisor of each."""

    names: tuple[str, ...] = ("r", "phi", "z")
    scales: tuple[float, ...] = (1000.0, math.pi, 1000.0)

    def __post_init__(self) -> None:
        names = tuple(str(n) for n in self.names)
        scales = tuple(float(s) for s in self.scales)
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "scales", scales)
        if not names:
            raise ExaTrkXConfigError("FeatureConfig: names must not be empty")
        unknown = [n for n in names if n not in KNOWN_FEATURES]
        if unknown:
            raise ExaTrkXConfigError(
                f"FeatureConfig: unknown feature(s) {unknown}; known: {KNOWN_FEATURES}"
            )
        if len(set(names)) != len(names):
            raise ExaTrkXConfigError(f"FeatureConfig: duplicate feature names in {names}")
        if len(scales) != len(names):
            raise ExaTrkXConfigError(
                f"FeatureConfig: {len(names)} names but {len(scales)} scales ({names}, {scales})"
            )
        bad = [s for s in scales if not (math.isfinite(s) and s > 0)]
        if bad:
            raise ExaTrkXConfigError(f"FeatureConfig: scales must be finite and > 0, got {scales}")

    @classmethod
    def reference(cls) -> FeatureConfig:
        """The scaling of the public reference models: ``(r/3000, phi/pi, z/400)``."""
        return cls(names=("r", "phi", "z"), scales=(3000.0, math.pi, 400.0))

    @property
    def width(self) -> int:
        """Number of feature columns."""
        return len(self.names)

    def index(self, name: str) -> int | None:
        """Column of ``name``, or None when it is not a feature."""
        return self.names.index(name) if name in self.names else None

    def to_dict(self) -> dict[str, Any]:
        return {"names": list(self.names), "scales": list(self.scales)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FeatureConfig:
        return cls(names=tuple(d["names"]), scales=tuple(float(s) for s in d["scales"]))


def check_finite(array: np.ndarray, stage: str, what: str = "input") -> None:
    """Raise a ValueError naming ``stage`` and the first row holding a NaN or inf."""
    a = np.asarray(array)
    if a.size == 0 or not np.issubdtype(a.dtype, np.floating):
        return
    bad = ~np.isfinite(a)
    if bad.any():
        rows = np.flatnonzero(bad.reshape(a.shape[0], -1).any(axis=1))
        raise ValueError(
            f"stage '{stage}': {what} has NaN/inf in {rows.size} row(s), first at row {rows[0]}"
        )


def check_width(features: np.ndarray, expected: int, stage: str) -> None:
    """Raise a ValueError when ``features`` is not ``[N, expected]`` (checked before torch)."""
    shape = tuple(np.shape(features))
    if len(shape) != 2 or shape[1] != expected:
        raise ValueError(
            f"stage '{stage}': expected node features of shape [N, {expected}], got {shape}"
        )


def compute_features(
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    z: Sequence[float] | np.ndarray,
    config: FeatureConfig | None = None,
) -> np.ndarray:
    """Scaled node features ``[N, F]`` float32 from space point positions in mm.

    Computed in float64 and rounded once to float32, so the result does not depend on the
    input precision path.
    """
    cfg = config or FeatureConfig()
    x64, y64, z64 = (np.asarray(a, dtype=np.float64).reshape(-1) for a in (x, y, z))
    if not (x64.shape == y64.shape == z64.shape):
        raise ValueError(
            f"stage 'features': x, y, z lengths differ ({x64.size}, {y64.size}, {z64.size})"
        )
    check_finite(np.stack([x64, y64, z64], axis=1), "features", "space point x/y/z")
    out = np.empty((x64.size, cfg.width), dtype=np.float32)
    r = np.hypot(x64, y64)
    for k, (name, scale) in enumerate(zip(cfg.names, cfg.scales, strict=True)):
        if name == "r":
            q = r
        elif name == "phi":
            q = np.arctan2(y64, x64)
        elif name == "z":
            q = z64
        elif name == "x":
            q = x64
        elif name == "y":
            q = y64
        else:  # eta
            q = np.arcsinh(np.divide(z64, r, out=np.zeros_like(z64), where=r > 0))
        out[:, k] = q / scale
    return out
