"""What users bring, at the I/O layer: one event file instead of a folder, ACTS output
without space points (built from measurements or hits), NaN positions in ROOT files and
TrackML truth weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sonic_exatrkx.io import (
    BadReferenceError,
    EventDirectoryError,
    InputFormatError,
    NonFiniteValueError,
    SpacePointRootWriter,
    attach_truth,
    read_event,
    read_spacepoints_root,
)
from sonic_exatrkx.io.acts_paths import event_source
from sonic_exatrkx.io.schema import SPACEPOINT_SINGLE
from sonic_exatrkx.io.spacepoints_from import (
    spacepoints_from_hits,
    spacepoints_from_measurements,
)
from sonic_exatrkx.io.trackml import truth_has_weight

from .conftest import MOCK_DATA, SINGLE_TRACKS

HITS_HEADER = ("particle_id,geometry_id,tx,ty,tz,tt,tpx,tpy,tpz,te,deltapx,deltapy,deltapz,"
               "deltae,index\n")
MEAS_HEADER = ("measurement_id,geometry_id,local_key,local0,local1,phi,theta,time,var_local0,"
               "var_local1,var_phi,var_theta,var_time\n")


def _hit(particle: int, x: str, y: str, z: str) -> str:
    return f"{particle},72,{x},{y},{z},0,1,0,0,1,0,0,0,0,0\n"


def _acts_event(tmp_path: Path, hits: list[str], measurements: int,
                links: list[tuple[int, int]]) -> dict[str, pd.DataFrame]:
    """Hits, measurements 0..measurements-1 and the map, written and read back."""
    (tmp_path / "event000000003-hits.csv").write_text(HITS_HEADER + "".join(hits))
    (tmp_path / "event000000003-measurements.csv").write_text(MEAS_HEADER + "".join(
        f"{m},{100 + m},,0.5,0.5,0,1,0,0.01,0.01,0,0,0\n" for m in range(measurements)))
    (tmp_path / "event000000003-measurement-simhit-map.csv").write_text(
        "measurement_id,hit_id\n" + "".join(f"{m},{h}\n" for m, h in links))
    return read_event(tmp_path, 3, ["measurements", "measurement-simhit-map", "hits"],
                      nonfinite="keep")  # type: ignore[return-value]


def test_event_source_folder_or_one_event_file(tmp_path: Path) -> None:
    event = tmp_path / "event000000042-spacepoint.csv"
    event.write_text("measurement_id,x,y,z,var_r,var_z\n")
    assert event_source(tmp_path) == (tmp_path, None)
    assert event_source(event) == (tmp_path, 42)
    other = tmp_path / "tracks.root"
    other.write_bytes(b"root")
    with pytest.raises(EventDirectoryError, match=r"tracks.root: is a file but not an event "
                                                  r"file \(a ROOT file: --input-format root\)"):
        event_source(other)
    with pytest.raises(EventDirectoryError, match="event file does not exist"):
        event_source(tmp_path / "event000000001-spacepoint.csv")


def test_spacepoints_from_measurements_of_the_traccc_samples(ref: Path) -> None:
    """traccc measurements hold local coordinates only: the space points are at the
    measurements' simulated hits, with the measurements' ids, so the truth chain works."""
    for folder in (SINGLE_TRACKS, MOCK_DATA):
        tables = read_event(ref / folder, 0, ["measurements", "measurement-simhit-map",
                                              "hits"])
        meas, links, hits = (tables[k] for k in ("measurements", "measurement-simhit-map",
                                                 "hits"))
        sp = spacepoints_from_measurements(meas, links, hits)
        assert list(sp.columns) == list(SPACEPOINT_SINGLE.columns)
        assert sp.dtypes.to_dict() == SPACEPOINT_SINGLE.columns
        assert sp["measurement_id"].tolist() == meas["measurement_id"].tolist()
        assert sp["geometry_id"].tolist() == meas["geometry_id"].tolist()  # uint64 exact
        hit_of = dict(zip(links["measurement_id"], links["hit_id"], strict=True))
        rows = [hit_of[m] for m in meas["measurement_id"]]
        for ours, theirs in (("x", "tx"), ("y", "ty"), ("z", "tz")):
            np.testing.assert_array_equal(sp[ours], hits[theirs].to_numpy()[rows])
        assert (sp[["var_r", "var_z"]].to_numpy() == 0).all()
        assert sp.attrs["unplaced_measurements"] == 0 and sp.attrs["dropped_nonfinite"] == 0
        truth = attach_truth(sp, links, hits)
        assert truth.tolist() == hits["particle_id"].to_numpy()[rows].tolist()
    geometry = np.uint64(1224979236083738112)  # > 2**53: never through float
    assert (sp["geometry_id"].to_numpy() == geometry).all()


def test_measurements_merged_noise_and_bad_links(tmp_path: Path) -> None:
    tables = _acts_event(tmp_path, [_hit(5, "30", "0", "1"), _hit(6, "0", "72", "2"),
                                    _hit(7, "-116", "0", "3")],
                         measurements=4, links=[(2, 2), (0, 1), (0, 0), (3, 1)])
    sp = spacepoints_from_measurements(*(tables[k] for k in ("measurements",
                                                             "measurement-simhit-map",
                                                             "hits")))
    # Measurement 1 has no simulated hit (noise): no global position, left out, counted.
    # Measurement 0 is a merged cluster of hits 1 and 0: the first hit in map order.
    assert sp["measurement_id"].tolist() == [0, 2, 3]
    assert sp["x"].tolist() == [0, -116, 0] and sp["y"].tolist() == [72, 0, 72]
    assert sp.attrs["unplaced_measurements"] == 1
    bad = _acts_event(tmp_path, [_hit(5, "30", "0", "1")], measurements=1, links=[(0, 4)])
    with pytest.raises(BadReferenceError, match=r"event000000003-measurement-simhit-map.csv "
                                                r"line 2, column 'hit_id': hit_id 4 is past "
                                                r"the end of event000000003-hits.csv"):
        spacepoints_from_measurements(*(bad[k] for k in ("measurements",
                                                         "measurement-simhit-map", "hits")))


def test_nonfinite_and_outside_hit_positions_name_the_hits_line(tmp_path: Path) -> None:
    tables = _acts_event(tmp_path, [_hit(5, "30", "0", "1"), _hit(6, "0", "nan", "2"),
                                    _hit(7, "-116", "0", "3")],
                         measurements=3, links=[(0, 0), (1, 1), (2, 2)])
    args = [tables[k] for k in ("measurements", "measurement-simhit-map", "hits")]
    with pytest.raises(NonFiniteValueError) as err:
        spacepoints_from_measurements(*args)
    assert (err.value.row, err.value.column) == (3, "ty")
    assert str(err.value).startswith("event000000003-hits.csv line 3, column 'ty': "
                                     "non-finite hit position nan")
    kept = spacepoints_from_measurements(*args, nonfinite="drop")
    assert kept["measurement_id"].tolist() == [0, 2] and kept.attrs["dropped_nonfinite"] == 1
    from_hits = spacepoints_from_hits(tables["hits"], nonfinite="drop")
    assert from_hits["measurement_id"].tolist() == [0, 2]  # hit rows, as the map's hit_id
    far = _acts_event(tmp_path, [_hit(5, "30", "0", "1"), _hit(6, "0", "72", "-1e30")],
                      measurements=2, links=[(0, 0), (1, 1)])
    with pytest.raises(InputFormatError, match=r"event000000003-hits.csv line 3, column "
                                               r"'tz': tz = -1e\+30 mm is outside any "
                                               r"detector"):
        spacepoints_from_hits(far["hits"])


def test_spacepoints_from_hits_are_every_simulated_hit(ref: Path) -> None:
    hits = read_event(ref / SINGLE_TRACKS, 1, ["hits"])["hits"]
    sp = spacepoints_from_hits(hits)
    assert sp["measurement_id"].tolist() == list(range(len(hits)))
    np.testing.assert_array_equal(sp["z"], hits["tz"])
    assert sp["geometry_id"].tolist() == hits["geometry_id"].tolist()
    with pytest.raises(ValueError, match="rows were removed"):
        spacepoints_from_hits(hits.iloc[1:])


def test_root_nonfinite_positions_are_an_error_or_dropped(tmp_path: Path) -> None:
    path = tmp_path / "sp.root"
    table = pd.DataFrame({
        "measurement_id": np.arange(4, dtype=np.uint64),
        "x": np.array([1, np.nan, 3, 4], np.float32), "y": np.ones(4, np.float32),
        "z": np.ones(4, np.float32), "var_r": np.array([0, 0, 0, np.inf], np.float32),
        "var_z": np.zeros(4, np.float32)})
    with SpacePointRootWriter(path) as writer:
        writer.write(7, table)
        writer.write(8, table.iloc[:1])
    with pytest.raises(NonFiniteValueError) as err:
        read_spacepoints_root(path)
    assert str(err.value).startswith("sp.root, column 'x': event 7, space point 1: "
                                     "non-finite x = nan")
    assert err.value.event == 7
    events = read_spacepoints_root(path, nonfinite="drop")
    assert events[7]["measurement_id"].tolist() == [0, 2]
    assert events[7].attrs["dropped_nonfinite"] == 2
    assert events[8].attrs["dropped_nonfinite"] == 0


def test_truth_has_weight(tmp_path: Path, ref: Path) -> None:
    truth = tmp_path / "event000000001-truth.csv"
    truth.write_text("hit_id,particle_id,tx,ty,tz,tpx,tpy,tpz,weight\n1,0,0,0,0,0,0,0,0\n")
    assert truth_has_weight(truth)
    assert not truth_has_weight(ref / "phoenix/fatras/event000000000-truth.csv")
    assert not truth_has_weight(tmp_path / "missing.csv")
