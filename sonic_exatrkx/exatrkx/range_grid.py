"""Ranges on a grid: a module map's windows stored as one byte per bound.

A map's window of a quantity for one module pair is ``[lo, hi]``; on a :class:`RangeGrid`
it is a pair of integer codes on a grid spanning the pair's *layer pair* (all module pairs
between the same two layers), ``origin + code * step``, rounded outwards: a window only
ever widens, by at most one step (a 255th of the layer pair's range with 8 bits), and the
file of a map shrinks about fourfold (:meth:`~.module_map.ModuleMap.on_grid`). Its own
module: the grid knows nothing of modules or doublets, the map nothing of codes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sonic_exatrkx.checks import check_count

from .errors import ExaTrkXConfigError

__all__ = ["RangeGrid", "round_out"]


def round_out(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float32 bounds that contain the float64 ``[lo, hi]``."""
    lo32, hi32 = lo.astype(np.float32), hi.astype(np.float32)
    lo32 = np.where(lo32.astype(np.float64) > lo, np.nextafter(lo32, np.float32(-np.inf)), lo32)
    hi32 = np.where(hi32.astype(np.float64) < hi, np.nextafter(hi32, np.float32(np.inf)), hi32)
    return lo32, hi32



@dataclass(frozen=True, eq=False)
class RangeGrid:
    """Ranges as integer codes on a grid per layer pair: pair ``p``'s range of quantity
    ``q`` is ``origin + code * step`` of its layer pair ``layer_pair[p]``, the float32
    rounded outwards (``ranges()``; the same float32 on every load).

    ``origin_step``: float64 ``[L, Q, 2]``; ``layer_pair``: int32 ``[P]``; ``codes``:
    uint8 ``[P, Q, 2]``."""

    origin_step: np.ndarray
    layer_pair: np.ndarray
    codes: np.ndarray

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "origin_step", np.ascontiguousarray(self.origin_step, dtype=np.float64))
        set_(self, "layer_pair", np.ascontiguousarray(self.layer_pair, dtype=np.int32)
             .reshape(-1))
        set_(self, "codes", np.ascontiguousarray(self.codes, dtype=np.uint8))
        n_lp, lp = self.origin_step.shape[0], self.layer_pair
        if (self.origin_step.ndim != 3 or self.codes.ndim != 3
                or self.codes.shape[0] != lp.size
                or self.codes.shape[1:] != self.origin_step.shape[1:]
                or (lp.size and not 0 <= lp.min() <= lp.max() < n_lp)):
            raise ExaTrkXConfigError(
                f"RangeGrid: origin_step {self.origin_step.shape}, layer_pair "
                f"{self.layer_pair.shape} and codes {self.codes.shape} do not fit together")

    def ranges(self) -> np.ndarray:
        """float32 ``[P, Q, 2]``: each code's value, rounded outwards."""
        g = self.origin_step[self.layer_pair]
        value = g[:, :, :1] + self.codes.astype(np.float64) * g[:, :, 1:]
        lo32, hi32 = round_out(value[:, :, 0], value[:, :, 1])
        return np.stack([lo32, hi32], axis=2)

    @classmethod
    def containing(cls, ranges: np.ndarray, layer_pair: np.ndarray, bits: int = 8
                   ) -> RangeGrid:
        """The grid whose ranges contain ``ranges`` (float ``[P, Q, 2]``), ``2**bits``
        codes spanning each layer pair's lowest minimum to highest maximum."""
        check_count(bits, "RangeGrid: bits", error=ExaTrkXConfigError)
        if bits > 8:
            raise ExaTrkXConfigError(f"RangeGrid: at most 8 bits, got {bits}")
        levels = (1 << bits) - 1
        r = np.asarray(ranges, dtype=np.float64)
        lp = np.asarray(layer_pair, dtype=np.int64).reshape(-1)
        n_lp = int(lp.max()) + 1 if lp.size else 0
        lo = np.full((n_lp, r.shape[1]), np.inf)
        hi = np.full((n_lp, r.shape[1]), -np.inf)
        np.minimum.at(lo, lp, r[:, :, 0])
        np.maximum.at(hi, lp, r[:, :, 1])
        # a step a hair above width / levels: the top code lies above the highest maximum
        step = np.maximum(hi - lo, 1e-12) / levels * (1 + 1e-9)
        origin_step = np.stack([lo, step], axis=2)
        g = origin_step[lp]
        x = (r - g[:, :, :1]) / g[:, :, 1:]
        codes = np.stack([np.floor(x[:, :, 0]), np.ceil(x[:, :, 1])], axis=2)
        codes = np.clip(codes, 0, levels)
        # float64 rounding may leave a code a hair inside its bound: move it out
        value = g[:, :, :1] + codes * g[:, :, 1:]
        codes[:, :, 0] -= (value[:, :, 0] > r[:, :, 0]) & (codes[:, :, 0] > 0)
        codes[:, :, 1] += (value[:, :, 1] < r[:, :, 1]) & (codes[:, :, 1] < levels)
        grid = cls(origin_step, lp, codes.astype(np.uint8))
        got = grid.ranges()
        if not ((got[:, :, 0] <= r[:, :, 0]).all() and (got[:, :, 1] >= r[:, :, 1]).all()):
            raise AssertionError("RangeGrid.containing: a range is not contained")
        return grid
