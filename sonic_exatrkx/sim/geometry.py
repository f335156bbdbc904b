"""Detector geometry of the toy simulation: a table of layers, each split into modules.

The default is the TrackML-like layout of formats.md: pixel, short-strip and long-strip
barrels (cylinders) plus endcap discs on both sides, in a 2 T solenoid. A layer is one
row (`Layer`); the `Geometry` holds the rows, checks they describe a buildable detector
(no overlapping surfaces, ids that fit their bit fields) and precomputes the lookup arrays
the propagation needs. Every module has an ACTS packed `geometry_id`, so hits and
measurements carry a meaningful uint64 id end to end.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from functools import cached_property
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd

from sonic_exatrkx.checks import count_problem

__all__ = [
    "SUBSYSTEMS",
    "Geometry",
    "GeometryError",
    "Layer",
    "pack_geometry_id",
    "unpack_geometry_id",
]

SUBSYSTEMS = ("pixel", "short_strip", "long_strip")
KINDS = ("barrel", "disc")

# ACTS GeometryIdentifier bit layout (acts-project/acts,
# Core/include/Acts/Geometry/GeometryIdentifier.hpp, kVolumeMask ... kExtraMask):
# volume bits 56-63, boundary 48-55, layer 36-47, approach 28-35, sensitive 8-27,
# extra 0-7. We fill volume, layer and sensitive; the others stay 0.
_VOLUME_SHIFT, _VOLUME_BITS = 56, 8
_LAYER_SHIFT, _LAYER_BITS = 36, 12
_SENSITIVE_SHIFT, _SENSITIVE_BITS = 8, 20


class GeometryError(ValueError):
    """The geometry cannot be built; `option` names the offending layer field."""

    def __init__(self, option: str, message: str) -> None:
        self.option = option
        super().__init__(f"geometry: {option}: {message}")


def pack_geometry_id(volume: np.ndarray | int, layer: np.ndarray | int,
                     sensitive: np.ndarray | int) -> np.ndarray:
    """Pack (volume, layer, sensitive) into ACTS uint64 geometry ids (vectorised)."""
    v = np.asarray(volume, dtype=np.uint64)
    ly = np.asarray(layer, dtype=np.uint64)
    s = np.asarray(sensitive, dtype=np.uint64)
    return (
        (v << np.uint64(_VOLUME_SHIFT))
        | (ly << np.uint64(_LAYER_SHIFT))
        | (s << np.uint64(_SENSITIVE_SHIFT))
    )


def unpack_geometry_id(geometry_id: np.ndarray | int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split ACTS uint64 geometry ids into (volume, layer, sensitive) arrays."""
    g = np.asarray(geometry_id, dtype=np.uint64)

    def field(shift: int, bits: int) -> np.ndarray:
        return ((g >> np.uint64(shift)) & np.uint64((1 << bits) - 1)).astype(np.int64)

    return (field(_VOLUME_SHIFT, _VOLUME_BITS), field(_LAYER_SHIFT, _LAYER_BITS),
            field(_SENSITIVE_SHIFT, _SENSITIVE_BITS))


@dataclass(frozen=True)
class Layer:
    """One sensitive layer: a barrel cylinder or an endcap disc, in mm.

    Barrel: `position` is the radius, the surface spans |z| <= `half_length`; modules are
    `n_phi` x `n_long` tiles in (phi, z). Disc: `position` is the signed z, the surface
    spans `r_min` <= r <= `r_max`; modules are `n_phi` x `n_long` tiles in (phi, r).
    `material` is the thickness in radiation lengths (x/X0) at normal incidence.
    """

    volume_id: int
    layer_id: int
    subsystem: str
    kind: str
    position: float
    half_length: float = 0.0
    r_min: float = 0.0
    r_max: float = 0.0
    n_phi: int = 1
    n_long: int = 1
    material: float = 0.02

    @property
    def area(self) -> float:
        """Sensitive area in mm^2 (noise hits are spread in proportion to it)."""
        if self.kind == "barrel":
            return 2.0 * math.pi * self.position * 2.0 * self.half_length
        return math.pi * (self.r_max**2 - self.r_min**2)


def _barrel(volume: int, subsystem: str, radii: Sequence[float], half_length: float,
            module_width: float, module_length: float, material: float) -> list[Layer]:
    return [
        Layer(volume, 2 * (i + 1), subsystem, "barrel", float(r), half_length=half_length,
              n_phi=math.ceil(2 * math.pi * r / module_width),
              n_long=math.ceil(2 * half_length / module_length), material=material)
        for i, r in enumerate(radii)
    ]


def _endcaps(volumes: tuple[int, int], subsystem: str, zs: Sequence[float], r_min: float,
             r_max: float, module_width: float, module_length: float,
             material: float) -> list[Layer]:
    """Discs at -z (first volume) and +z (second), numbered by increasing z as in TrackML."""
    n_phi = math.ceil(2 * math.pi * 0.5 * (r_min + r_max) / module_width)
    n_long = math.ceil((r_max - r_min) / module_length)
    neg = [-float(z) for z in sorted(zs, reverse=True)]
    pos = [float(z) for z in sorted(zs)]
    out = []
    for volume, side in zip(volumes, (neg, pos), strict=True):
        out += [
            Layer(volume, 2 * (i + 1), subsystem, "disc", z, r_min=r_min, r_max=r_max,
                  n_phi=n_phi, n_long=n_long, material=material)
            for i, z in enumerate(side)
        ]
    return out


@dataclass(frozen=True)
class Geometry:
    """The detector: an ordered tuple of `Layer` rows (validated on construction)."""

    layers: tuple[Layer, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))
        _validate(self.layers)

    # -- construction -------------------------------------------------------------------
    @classmethod
    def trackml_like(cls, pixel_material: float = 0.02,
                     strip_material: float = 0.03) -> Geometry:
        """TrackML-like layout (formats.md): volumes 7-9 pixel, 12-14 short strip,
        16-18 long strip, with TrackML's volume numbering."""
        pix_z = (600, 700, 820, 960, 1100, 1300, 1500)
        strip_z = (1220, 1500, 1800, 2150, 2500, 2950)
        layers = (
            _endcaps((7, 9), "pixel", pix_z, 30.0, 175.0, 17.0, 40.0, pixel_material)
            + _barrel(8, "pixel", (32, 72, 116, 172), 455.0, 17.0, 60.0, pixel_material)
            + _endcaps((12, 14), "short_strip", strip_z, 230.0, 700.0, 48.0, 100.0,
                       strip_material)
            + _barrel(13, "short_strip", (260, 360, 500, 660), 1030.0, 48.0, 108.0,
                      strip_material)
            + _endcaps((16, 18), "long_strip", strip_z, 720.0, 1020.0, 100.0, 150.0,
                       strip_material)
            + _barrel(17, "long_strip", (820, 1020), 1030.0, 100.0, 216.0, strip_material)
        )
        return cls(tuple(layers))

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> Geometry:
        """Build from a layer table (the format `to_csv` writes)."""
        names = [f.name for f in fields(Layer)]
        missing = [n for n in ("volume_id", "layer_id", "subsystem", "kind", "position")
                   if n not in frame.columns]
        if missing:
            raise GeometryError(missing[0], f"layer table lacks column(s) {missing}")
        rows = frame[[n for n in names if n in frame.columns]].to_dict("records")
        layers = []
        for row in rows:
            kw = {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
            layers.append(Layer(**kw))
        return cls(tuple(layers))

    @classmethod
    def from_csv(cls, path: str | PathLike[str]) -> Geometry:
        """Read a layer table written by `to_csv`."""
        return cls.from_frame(pd.read_csv(path))

    # -- tables -------------------------------------------------------------------------
    def layer_frame(self) -> pd.DataFrame:
        """One row per layer (all `Layer` fields)."""
        return pd.DataFrame([asdict(layer) for layer in self.layers])

    def module_frame(self) -> pd.DataFrame:
        """One row per module: geometry_id, ids, subsystem and module centre/extent."""
        parts = []
        for layer in self.layers:
            iphi, il = np.meshgrid(np.arange(layer.n_phi), np.arange(layer.n_long))
            iphi, il = iphi.ravel(), il.ravel()
            sensitive = 1 + il * layer.n_phi + iphi
            phi_c = (iphi + 0.5) * (2 * np.pi / layer.n_phi)
            if layer.kind == "barrel":
                step = 2 * layer.half_length / layer.n_long
                r_c = np.full(iphi.size, layer.position)
                z_c = -layer.half_length + (il + 0.5) * step
            else:
                step = (layer.r_max - layer.r_min) / layer.n_long
                r_c = layer.r_min + (il + 0.5) * step
                z_c = np.full(iphi.size, layer.position)
            parts.append(pd.DataFrame({
                "geometry_id": pack_geometry_id(layer.volume_id, layer.layer_id, sensitive),
                "volume_id": layer.volume_id,
                "layer_id": layer.layer_id,
                "sensitive_id": sensitive,
                "subsystem": layer.subsystem,
                "kind": layer.kind,
                "cx": r_c * np.cos(phi_c),
                "cy": r_c * np.sin(phi_c),
                "cz": z_c,
                "r": r_c,
                "phi": phi_c,
                "width_phi": 2 * np.pi / layer.n_phi,
                "length": step,
            }))
        return pd.concat(parts, ignore_index=True)

    def to_csv(self, path: str | PathLike[str], modules: bool = False) -> Path:
        """Write the layer table (or, with `modules=True`, the module table) as CSV."""
        path = Path(path)
        frame = self.module_frame() if modules else self.layer_frame()
        frame.to_csv(path, index=False)
        return path

    @property
    def n_modules(self) -> int:
        return sum(layer.n_phi * layer.n_long for layer in self.layers)

    @cached_property
    def arrays(self) -> _GeometryArrays:
        """Lookup arrays for vectorised propagation (built once per geometry)."""
        return _GeometryArrays(self.layers)


class _GeometryArrays:
    """Per-layer columns as numpy arrays, plus the sorted surfaces used for stepping."""

    def __init__(self, layers: Sequence[Layer]) -> None:
        self.n_layers = len(layers)
        self.is_barrel = np.array([la.kind == "barrel" for la in layers])
        self.position = np.array([la.position for la in layers], dtype=np.float64)
        self.half_length = np.array([la.half_length for la in layers], dtype=np.float64)
        self.r_min = np.array([la.r_min for la in layers], dtype=np.float64)
        self.r_max = np.array([la.r_max for la in layers], dtype=np.float64)
        self.n_phi = np.array([la.n_phi for la in layers], dtype=np.int64)
        self.n_long = np.array([la.n_long for la in layers], dtype=np.int64)
        self.material = np.array([la.material for la in layers], dtype=np.float64)
        self.volume_id = np.array([la.volume_id for la in layers], dtype=np.int64)
        self.layer_id = np.array([la.layer_id for la in layers], dtype=np.int64)
        self.subsystem = np.array([SUBSYSTEMS.index(la.subsystem) for la in layers])
        self.area = np.array([la.area for la in layers], dtype=np.float64)

        # Barrel cylinders sorted by radius: the next one outward is a searchsorted away.
        b = np.flatnonzero(self.is_barrel)
        order = np.argsort(self.position[b], kind="stable")
        self.barrel_layer = b[order]
        self.barrel_r = self.position[self.barrel_layer]

        # Disc planes: unique signed z, each holding up to K radial rings (subsystems).
        d = np.flatnonzero(~self.is_barrel)
        self.plane_z = np.unique(self.position[d]) if d.size else np.zeros(0)
        k = 1
        if d.size:
            k = max(int(np.sum(self.position[d] == z)) for z in self.plane_z)
        n_planes = self.plane_z.size
        self.ring_rmin = np.full((n_planes, k), np.inf)
        self.ring_rmax = np.full((n_planes, k), -np.inf)
        self.ring_layer = np.zeros((n_planes, k), dtype=np.int64)
        for p, z in enumerate(self.plane_z):
            members = d[self.position[d] == z]
            self.ring_rmin[p, : members.size] = self.r_min[members]
            self.ring_rmax[p, : members.size] = self.r_max[members]
            self.ring_layer[p, : members.size] = members


def _validate(layers: Iterable[Layer]) -> None:
    """Reject geometries the propagation cannot handle, naming the field at fault."""
    layers = list(layers)
    if not layers:
        raise GeometryError("layers", "a geometry needs at least one layer")
    seen: set[tuple[int, int]] = set()
    for i, la in enumerate(layers):
        where = f"layer #{i} (volume {la.volume_id}, layer {la.layer_id})"
        if la.kind not in KINDS:
            raise GeometryError("kind", f"{where}: kind {la.kind!r} is not one of {KINDS}")
        if la.subsystem not in SUBSYSTEMS:
            raise GeometryError("subsystem", f"{where}: subsystem {la.subsystem!r} is not one "
                                f"of {SUBSYSTEMS}")
        if not 0 < la.volume_id < (1 << _VOLUME_BITS):
            raise GeometryError("volume_id", f"{where}: must be in 1..{(1 << _VOLUME_BITS) - 1}")
        if not 0 < la.layer_id < (1 << _LAYER_BITS):
            raise GeometryError("layer_id", f"{where}: must be in 1..{(1 << _LAYER_BITS) - 1}")
        if (la.volume_id, la.layer_id) in seen:
            raise GeometryError("layer_id", f"{where}: duplicate (volume, layer) pair")
        seen.add((la.volume_id, la.layer_id))
        for name in ("n_phi", "n_long"):
            problem = count_problem(getattr(la, name))
            if problem:
                raise GeometryError(name, f"{where}: module count {problem}")
        if la.n_phi * la.n_long >= (1 << _SENSITIVE_BITS):
            raise GeometryError("n_phi", f"{where}: {la.n_phi * la.n_long} modules do not fit "
                                f"the {_SENSITIVE_BITS}-bit sensitive field")
        if not (math.isfinite(la.material) and 0 <= la.material < 1):
            raise GeometryError("material", f"{where}: x/X0 must be in [0, 1), got "
                                f"{la.material}")
        if la.kind == "barrel":
            if not (math.isfinite(la.position) and la.position > 0):
                raise GeometryError("position", f"{where}: barrel radius must be > 0, got "
                                    f"{la.position}")
            if not (math.isfinite(la.half_length) and la.half_length > 0):
                raise GeometryError("half_length", f"{where}: must be > 0, got "
                                    f"{la.half_length}")
        else:
            if not (math.isfinite(la.position) and la.position != 0):
                raise GeometryError("position", f"{where}: disc z must be finite and != 0, "
                                    f"got {la.position}")
            if not (0 <= la.r_min < la.r_max and math.isfinite(la.r_max)):
                raise GeometryError("r_min", f"{where}: need 0 <= r_min < r_max, got "
                                    f"r_min={la.r_min}, r_max={la.r_max}")
    barrels = [la for la in layers if la.kind == "barrel"]
    radii = sorted(la.position for la in barrels)
    for a, b in zip(radii, radii[1:], strict=False):
        if a == b:
            raise GeometryError("position", f"two barrel layers share radius {a} mm")
    discs = [la for la in layers if la.kind == "disc"]
    for i, a in enumerate(discs):
        for b in discs[i + 1:]:
            if a.position == b.position and a.r_min < b.r_max and b.r_min < a.r_max:
                raise GeometryError("r_min", f"discs (volume {a.volume_id}, layer "
                                    f"{a.layer_id}) and (volume {b.volume_id}, layer "
                                    f"{b.layer_id}) overlap at z={a.position} mm")
        for br in barrels:
            if abs(a.position) <= br.half_length and a.r_min <= br.position <= a.r_max:
                raise GeometryError("position", f"disc (volume {a.volume_id}, layer "
                                    f"{a.layer_id}) at z={a.position} mm cuts through barrel "
                                    f"(volume {br.volume_id}, layer {br.layer_id}) at "
                                    f"r={br.position} mm")
