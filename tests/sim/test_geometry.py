"""Geometry: TrackML-like layout, ACTS geometry-id packing, CSV round trip, bad layouts."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from sonic_exatrkx.sim import Geometry, GeometryError, Layer, pack_geometry_id, unpack_geometry_id


def test_trackml_like_layout_matches_formats_md(geometry: Geometry) -> None:
    barrels = {la.subsystem: [] for la in geometry.layers}
    for la in geometry.layers:
        if la.kind == "barrel":
            barrels[la.subsystem].append(la.position)
    assert barrels["pixel"] == [32, 72, 116, 172]
    assert barrels["short_strip"] == [260, 360, 500, 660]
    assert barrels["long_strip"] == [820, 1020]
    pixel_discs = sorted({abs(la.position) for la in geometry.layers
                          if la.kind == "disc" and la.subsystem == "pixel"})
    assert len(pixel_discs) == 7 and pixel_discs[0] == 600 and pixel_discs[-1] == 1500
    strip_discs = [abs(la.position) for la in geometry.layers
                   if la.kind == "disc" and la.subsystem != "pixel"]
    assert min(strip_discs) == 1220 and max(strip_discs) == 2950


def test_geometry_id_uses_acts_bit_layout() -> None:
    # volume bits 56-63, layer 36-47, sensitive 8-27 (Acts::GeometryIdentifier)
    gid = pack_geometry_id(8, 2, 1)
    assert int(gid) == (8 << 56) | (2 << 36) | (1 << 8)
    vol, lay, sen = unpack_geometry_id(np.array([gid, pack_geometry_id(255, 4095, 2**20 - 1)]))
    assert vol.tolist() == [8, 255] and lay.tolist() == [2, 4095] and sen.tolist() == [1, 2**20 - 1]


def test_modules_have_unique_ids_and_csv_round_trip(geometry: Geometry, tmp_path) -> None:
    modules = geometry.module_frame()
    assert len(modules) == geometry.n_modules > 1000
    assert modules["geometry_id"].is_unique
    assert modules["geometry_id"].dtype == np.uint64
    path = geometry.to_csv(tmp_path / "layers.csv")
    assert Geometry.from_csv(path) == geometry
    geometry.to_csv(tmp_path / "modules.csv", modules=True)
    assert (tmp_path / "modules.csv").stat().st_size > 10000


def _replace_layer(geometry: Geometry, index: int, **changes) -> tuple[Layer, ...]:
    layers = list(geometry.layers)
    layers[index] = dataclasses.replace(layers[index], **changes)
    return tuple(layers)


def _first(geometry: Geometry, kind: str) -> int:
    return next(i for i, la in enumerate(geometry.layers) if la.kind == kind)


@pytest.mark.parametrize(
    ("kind", "changes", "option"),
    [
        ("barrel", {"position": 72.0}, "position"),          # two barrels at r=72
        ("barrel", {"half_length": -1.0}, "half_length"),
        ("barrel", {"n_phi": 0}, "n_phi"),
        ("barrel", {"material": -0.1}, "material"),
        ("barrel", {"kind": "cone"}, "kind"),
        ("barrel", {"subsystem": "calorimeter"}, "subsystem"),
        ("disc", {"r_min": 200.0, "r_max": 100.0}, "r_min"),
        ("disc", {"position": -300.0}, "position"),          # disc cuts the pixel barrel
    ],
)
def test_impossible_geometry_names_the_field(geometry: Geometry, kind: str, changes: dict,
                                             option: str) -> None:
    with pytest.raises(GeometryError) as err:
        Geometry(_replace_layer(geometry, _first(geometry, kind), **changes))
    assert err.value.option == option
    assert option in str(err.value)


def test_empty_geometry_is_rejected() -> None:
    with pytest.raises(GeometryError, match="layers"):
        Geometry(())
