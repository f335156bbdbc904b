"""Reading the real public ACTS / traccc / TrackML files with the schema's dtypes."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sonic_exatrkx.io import (
    NonFiniteValueError,
    attach_truth,
    combine_particle_id,
    list_events,
    read_event,
    read_hits,
    read_measurement_simhit_map,
    read_measurements,
    read_particles,
    read_spacepoints,
    read_trackml_particles,
    split_particle_id,
)
from sonic_exatrkx.io.schema import (
    HITS,
    MEASUREMENTS,
    PARTICLES,
    SPACEPOINT_SINGLE,
    TRACKML_PARTICLES,
)

from .conftest import (
    CTD_SPACEPOINTS,
    MOCK_DATA,
    SINGLE_TRACKS,
    TRACKML_PARTICLES_CSV,
    float32_of,
)


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_ctd_spacepoints_old_variant_exact(ref: Path) -> None:
    path = ref / CTD_SPACEPOINTS
    df = read_spacepoints(path)
    # Old single-measurement variant without geometry_id: exactly those columns.
    assert list(df.columns) == ["measurement_id", "x", "y", "z", "var_r", "var_z"]
    assert df.dtypes.to_dict() == {c: SPACEPOINT_SINGLE.columns[c] for c in df.columns}
    assert len(df) == 1151
    assert df.attrs["event"] == 100
    # Every value equals an independent parse of the text (csv module + float()).
    rows = _csv_rows(path)
    assert df["measurement_id"].tolist() == [int(r["measurement_id"]) for r in rows]
    for column in ("x", "y", "z", "var_r", "var_z"):
        expected = np.array([float32_of(r[column]) for r in rows], dtype=np.float32)
        np.testing.assert_array_equal(df[column].to_numpy(), expected)
    # Detector facts from SOURCES.md: r in 30.6..1024.8 mm, |z| <= 2955.5 mm.
    r = np.hypot(df["x"], df["y"])
    assert 30.5 < r.min() < 30.7 and 1024.7 < r.max() < 1024.9
    assert np.abs(df["z"]).max() == pytest.approx(2955.5)
    assert list_events(path.parent) == [100]


def test_single_tracks_all_kinds(ref: Path) -> None:
    directory = ref / SINGLE_TRACKS
    assert list_events(directory, "hits") == [0, 1, 2, 3, 4]
    for event in range(5):
        tables = read_event(
            directory, event, ["hits", "measurements", "measurement-simhit-map", "particles"]
        )
        hits, meas, links, particles = (tables[k] for k in
                                        ("hits", "measurements", "measurement-simhit-map",
                                         "particles"))
        assert list(hits.columns) == list(HITS.columns)
        assert hits.dtypes.to_dict() == HITS.columns
        assert list(meas.columns) == list(MEASUREMENTS.columns)
        assert meas.dtypes.to_dict() == MEASUREMENTS.columns
        assert list(particles.columns) == list(PARTICLES.columns)
        assert len(hits) == len(meas) == len(links) == 9 and len(particles) == 1
        assert set(meas["local_key"]) == {"unknown"}
        # Telescope geometry: geometry ids 255, 511, ... (k * 256 - 1).
        assert meas["geometry_id"].tolist() == [256 * k - 1 for k in range(1, 10)]
        assert (meas["geometry_id"] == hits["geometry_id"]).all()


def test_single_tracks_truth_chain(ref: Path) -> None:
    """Space points built from the measurements get the particle of their hit."""
    directory = ref / SINGLE_TRACKS
    for event in range(5):
        tables = read_event(directory, event,
                            ["hits", "measurements", "measurement-simhit-map", "particles"])
        hits, meas, links = (tables[k] for k in ("hits", "measurements",
                                                 "measurement-simhit-map"))
        hit_of = dict(zip(links["measurement_id"].tolist(), links["hit_id"].tolist(),
                          strict=True))
        # Reverse the space point order so the chain cannot rely on row alignment.
        ids = meas["measurement_id"].to_numpy()[::-1]
        sp = pd.DataFrame({"measurement_id_1": ids, "measurement_id_2": ids,
                           "x": np.float32(0), "y": np.float32(0), "z": np.float32(0),
                           "var_r": np.float32(0), "var_z": np.float32(0)})
        got = attach_truth(sp, links, hits)
        expected = [hits["particle_id"].iloc[hit_of[m]] for m in ids.tolist()]
        assert got.dtype == np.uint64
        assert got.tolist() == expected
        assert set(got.tolist()) <= set(tables["particles"]["particle_id"].tolist())


def test_mock_data_uint64_and_local_key(ref: Path) -> None:
    directory = ref / MOCK_DATA
    meas = read_measurements(directory / "event000000000-measurements.csv")
    hits = read_hits(directory / "event000000000-hits.csv")
    geometry = np.uint64(1224979236083738112)  # > 2**53
    assert meas["geometry_id"].dtype == np.uint64
    assert (meas["geometry_id"].to_numpy() == geometry).all()
    assert (hits["geometry_id"].to_numpy() == geometry).all()
    # The "empty-looking" local_key is a raw control byte (ACTS wrote a uint8 as a
    # char); it is kept exactly as a one-character string.
    assert meas["local_key"].tolist() == ["\x06"] * 3
    assert hits["particle_id"].tolist() == [4503599644147712, 4503599660924928,
                                            4503599744811008]
    assert hits["index"].tolist() == [3, 1, 13] and hits["index"].dtype == np.int32


def test_mock_data_particles_initial_stem(ref: Path) -> None:
    directory = ref / MOCK_DATA
    assert list_events(directory, "particles_initial") == [0]
    tables = read_event(directory, 0)  # every readable kind present (cells has no reader)
    assert set(tables) == {"hits", "measurements", "measurement-simhit-map", "particles_initial"}
    particles = tables["particles_initial"]
    assert particles.dtypes.to_dict() == PARTICLES.columns
    assert particles["particle_type"].tolist() == [-321, 211, 211]
    assert particles["vz"].tolist() == [np.float32(-15.1165705), -100.0, 23425.0]
    truth = attach_truth(
        pd.DataFrame({"measurement_id": np.array([2, 0, 1, 99], dtype=np.uint64),
                      "x": np.zeros(4, np.float32), "y": np.zeros(4, np.float32),
                      "z": np.zeros(4, np.float32), "var_r": np.zeros(4, np.float32),
                      "var_z": np.zeros(4, np.float32)}),
        tables["measurement-simhit-map"],
        tables["hits"],
    )
    # Measurement 99 has no hit: noise (0).
    assert truth.tolist() == [4503599744811008, 4503599644147712, 4503599660924928, 0]
    assert set(truth[truth != 0].tolist()) <= set(particles["particle_id"].tolist())


def test_barcode_layout_on_real_ids(ref: Path) -> None:
    """vp in bits 52-63, particle in bits 24-39 (ActsFatras::Barcode before v44)."""
    hits = read_hits(ref / MOCK_DATA / "event000000000-hits.csv")
    split = split_particle_id(hits["particle_id"])
    assert split["particle_id_pv"].tolist() == [1, 1, 1]
    assert split["particle_id_sv"].tolist() == [0, 0, 0]
    assert split["particle_id_part"].tolist() == [1, 2, 7]
    assert split["particle_id_gen"].tolist() == [0, 0, 0]
    assert split["particle_id_subpart"].tolist() == [0, 0, 0]
    np.testing.assert_array_equal(combine_particle_id(split), hits["particle_id"].to_numpy())


def test_trackml_particles_real_event(ref: Path) -> None:
    df = read_trackml_particles(ref / TRACKML_PARTICLES_CSV)
    assert len(df) == 12263
    assert df.dtypes.to_dict() == TRACKML_PARTICLES.columns
    assert df["particle_id"].iloc[0] == 4503668346847232
    assert df["particle_id"].is_unique
    assert set(df["q"].unique().tolist()) == {-1, 1}
    assert df["nhits"].iloc[:2].tolist() == [8, 11] and (df["nhits"] >= 0).all()


def test_real_file_with_nan_positions(ref: Path) -> None:
    """The public ACTS-Fatras event has 75 hits with NaN positions: an error by
    default that names the exact line, or dropped on request."""
    from sonic_exatrkx.io import read_trackml_hits

    path = ref / "phoenix/fatras/event000000000-hits.csv"
    with pytest.raises(NonFiniteValueError) as info:
        read_trackml_hits(path)
    err = info.value
    assert (err.row, err.column, err.event) == (96, "x", 0)  # hit_id 95 is on line 96
    assert "event000000000-hits.csv line 96, column 'x'" in str(err)
    assert path.read_text().splitlines()[95].startswith("95,nan,")
    kept = read_trackml_hits(path, nonfinite="drop")
    assert len(kept) == 630 - 75
    assert np.isfinite(kept[["x", "y", "z"]].to_numpy()).all()
    # The index keeps the file row positions of the surviving hits.
    assert kept.index[:94].tolist() == list(range(94)) and kept.index[94] > 94
    assert (kept["hit_id"].to_numpy() == kept.index.to_numpy() + 1).all()
    assert len(read_trackml_hits(path, nonfinite="keep")) == 630


def test_measurement_simhit_map_dtypes(ref: Path) -> None:
    links = read_measurement_simhit_map(ref / MOCK_DATA /
                                        "event000000000-measurement-simhit-map.csv")
    assert links.dtypes.tolist() == [np.uint64, np.uint64]
    assert links.to_numpy().tolist() == [[0, 0], [1, 1], [2, 2]]


def test_particles_read_through_generic_reader(ref: Path) -> None:
    df = read_particles(ref / SINGLE_TRACKS / "event000000002-particles.csv")
    assert df.dtypes.to_dict() == PARTICLES.columns
    assert df["vy"].iloc[0] == np.float32(103.32698822021484)
