"""Configuration of the toy simulation, validated when it is built.

A bad value fails here, with the option's name in the message, not deep inside an event
loop three hours into a grid job.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any

from sonic_exatrkx.checks import count_problem
from sonic_exatrkx.sim.geometry import SUBSYSTEMS, Geometry

__all__ = ["SAMPLES", "ConfigError", "SimulationConfig"]

SAMPLES = ("hnl", "ttbar-like", "minbias")

# Gaussian resolution (sigma, mm) per subsystem: (r*phi, z on barrels / r on discs).
# Pixel: 50 x 56 um pitch / sqrt(12). Strips: one 2-D "stereo" space point per crossing,
# coarse along the strip (TrackML short strips 80 um x 1.2 mm; long strips narrower here
# than TrackML's 10.8 mm so the toy stays easy to look at).
DEFAULT_RESOLUTION: Mapping[str, tuple[float, float]] = MappingProxyType({
    "pixel": (0.015, 0.015),
    "short_strip": (0.025, 0.35),
    "long_strip": (0.035, 1.0),
})


class ConfigError(ValueError):
    """A simulation option is invalid; `option` holds its (keyword) name."""

    def __init__(self, option: str, message: str) -> None:
        self.option = option
        super().__init__(f"{option}: {message}")


def _range(name: str, value: Any, lo: float, hi: float, *, lo_open: bool = False,
           hi_open: bool = False) -> None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(name, f"must be a number, got {value!r}") from None
    ok = math.isfinite(v) or (hi == math.inf and v == math.inf and not hi_open)
    ok = ok and (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
    if not ok:
        lb = "(" if lo_open else "["
        rb = ")" if hi_open else "]"
        raise ConfigError(name, f"must be in {lb}{lo}, {hi}{rb}, got {value!r}")


@dataclass(frozen=True)
class SimulationConfig:
    """Everything that decides an event; event i of a config is reproducible on its own.

    Units: mm, ns, GeV, tesla. `pileup` is the Poisson mean of extra minimum-bias vertices.
    `noise_fraction` is the expected share of noise among all space points.
    `material_scale` multiplies every layer's x/X0 (0 turns multiple scattering off).
    `resolution` maps subsystem -> (sigma_rphi, sigma_long) in mm (0 turns smearing off).
    """

    sample: str = "hnl"
    pileup: float = 0.0
    seed: int = 42
    bfield: float = 2.0
    noise_fraction: float = 0.15
    efficiency: float = 0.98
    resolution: Mapping[str, tuple[float, float]] = field(
        default_factory=lambda: dict(DEFAULT_RESOLUTION), hash=False)
    material_scale: float = 1.0
    geometry: Geometry = field(default_factory=Geometry.trackml_like)
    # beam spot
    vertex_sigma_xy: float = 0.015
    vertex_sigma_z: float = 55.0
    vertex_sigma_t: float = 0.18
    # prompt particle spectrum (all samples)
    eta_max: float = 3.0
    pt_min: float = 0.1
    minbias_multiplicity: float = 45.0
    ttbar_multiplicity: float = 250.0
    # heavy neutral lepton sample
    hnl_mass: tuple[float, float] = (1.0, 10.0)
    hnl_pt: tuple[float, float] = (5.0, 50.0)
    hnl_decay_length: float = 100.0
    hnl_max_decay_radius: float = 500.0
    hnl_max_decay_z: float = 1000.0
    hnl_prompt: tuple[int, int] = (2, 10)
    hnl_underlying_event: float = 105.0

    def __post_init__(self) -> None:
        if self.sample not in SAMPLES:
            raise ConfigError("sample", f"unknown sample {self.sample!r}; choose one of "
                              f"{', '.join(SAMPLES)}")
        _range("pileup", self.pileup, 0, 1000)
        problem = count_problem(self.seed, minimum=0)
        if problem:
            raise ConfigError("seed", problem)
        _range("bfield", self.bfield, 0, 10, lo_open=True)
        _range("noise_fraction", self.noise_fraction, 0, 1, hi_open=True)
        _range("efficiency", self.efficiency, 0, 1)
        _range("material_scale", self.material_scale, 0, 20)
        if not isinstance(self.geometry, Geometry):
            raise ConfigError("geometry", f"must be a Geometry, got {type(self.geometry)}")
        res = dict(self.resolution)
        for name in SUBSYSTEMS:
            if name not in res:
                raise ConfigError("resolution", f"no entry for subsystem {name!r}")
            try:
                pair = tuple(float(v) for v in res[name])
            except (TypeError, ValueError):
                raise ConfigError("resolution", f"{name}: expected (sigma0, sigma1) in mm, "
                                  f"got {res[name]!r}") from None
            if len(pair) != 2 or not all(math.isfinite(v) and 0 <= v < 100 for v in pair):
                raise ConfigError("resolution", f"{name}: expected two sigmas in [0, 100) mm,"
                                  f" got {res[name]!r}")
            res[name] = pair
        unknown = set(res) - set(SUBSYSTEMS)
        if unknown:
            raise ConfigError("resolution", f"unknown subsystem(s) {sorted(unknown)}; "
                              f"expected {SUBSYSTEMS}")
        object.__setattr__(self, "resolution", MappingProxyType(res))
        _range("vertex_sigma_xy", self.vertex_sigma_xy, 0, 10)
        _range("vertex_sigma_z", self.vertex_sigma_z, 0, 500)
        _range("vertex_sigma_t", self.vertex_sigma_t, 0, 100)
        _range("eta_max", self.eta_max, 0, 6, lo_open=True)
        _range("pt_min", self.pt_min, 0, 100, lo_open=True)
        _range("minbias_multiplicity", self.minbias_multiplicity, 0, 10000)
        _range("ttbar_multiplicity", self.ttbar_multiplicity, 0, 10000)
        for name in ("hnl_mass", "hnl_pt", "hnl_prompt"):
            pair = getattr(self, name)
            try:
                pair = tuple(pair)
            except TypeError:
                raise ConfigError(name, f"expected a (low, high) pair, got {pair!r}") from None
            object.__setattr__(self, name, pair)
            if len(pair) != 2:
                raise ConfigError(name, f"expected a (low, high) pair, got {pair!r}")
            lo, hi = pair
            _range(name, lo, 0, 1e4)
            _range(name, hi, lo, 1e4)
        if self.hnl_mass[0] < 0.6:
            raise ConfigError("hnl_mass", f"must be >= 0.6 GeV so that every decay channel is "
                              f"open, got {self.hnl_mass!r}")
        if not all(float(v).is_integer() for v in self.hnl_prompt) or self.hnl_prompt[0] < 1:
            raise ConfigError("hnl_prompt", f"expected integers (low >= 1, high), got "
                              f"{self.hnl_prompt!r}")
        _range("hnl_decay_length", self.hnl_decay_length, 0, 1e5, lo_open=True)
        _range("hnl_max_decay_radius", self.hnl_max_decay_radius, 0, 1e4, lo_open=True)
        _range("hnl_max_decay_z", self.hnl_max_decay_z, 0, 1e4, lo_open=True)
        _range("hnl_underlying_event", self.hnl_underlying_event, 0, 10000)

    def replace(self, **changes: Any) -> SimulationConfig:
        """A copy with some options changed (validated again)."""
        known = {f.name for f in fields(self)}
        for name in changes:
            if name not in known:
                raise ConfigError(name, f"unknown option; known: {', '.join(sorted(known))}")
        return replace(self, **changes)
