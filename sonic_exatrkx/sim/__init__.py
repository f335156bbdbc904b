"""Toy detector simulation writing ACTS-format events (data we can make anywhere).

TrackML-like geometry, helices in a uniform solenoid field, multiple scattering,
inefficiency, smearing, noise, pileup, and a heavy-neutral-lepton sample with displaced
vertices. See `event` for the digitisation and truth-chain conventions.
"""

from sonic_exatrkx.sim.config import SAMPLES, ConfigError, SimulationConfig
from sonic_exatrkx.sim.event import STEMS, simulate_event, simulate_events, write_events
from sonic_exatrkx.sim.geometry import (
    Geometry,
    GeometryError,
    Layer,
    pack_geometry_id,
    unpack_geometry_id,
)
from sonic_exatrkx.sim.plot import plot_event

__all__ = [
    "SAMPLES",
    "STEMS",
    "ConfigError",
    "Geometry",
    "GeometryError",
    "Layer",
    "SimulationConfig",
    "pack_geometry_id",
    "plot_event",
    "simulate_event",
    "simulate_events",
    "unpack_geometry_id",
    "write_events",
]
