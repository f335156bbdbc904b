"""Truth labels: split / packed particle ids, attach_truth, and TrackML conversion."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from sonic_exatrkx.io import (
    BadReferenceError,
    InputFormatError,
    MissingEventFileError,
    attach_truth,
    combine_particle_id,
    read_hits,
    read_measurement_simhit_map,
    read_measurements,
    read_particles,
    read_spacepoints,
    read_spacepoints_root,
    read_trackml_event,
    split_particle_id,
    trackml_paths,
    trackml_to_event,
    write_table,
)
from sonic_exatrkx.io.schema import (
    HITS_SPLIT,
    PARTICLE_ID_PARTS,
    PARTICLES,
    SPACEPOINT_SINGLE,
)

from .conftest import FATRAS, MOCK_DATA


def _split_hits_file(ref: Path, tmp_path: Path) -> tuple[pd.DataFrame, Path]:
    """The mock_data hits rewritten with the ACTS v44 split particle id columns."""
    hits = read_hits(ref / MOCK_DATA / "event000000000-hits.csv")
    split = pd.concat([split_particle_id(hits["particle_id"]),
                       hits.drop(columns="particle_id")], axis=1)
    path = tmp_path / "event000000000-hits.csv"
    write_table(path, split, HITS_SPLIT)
    return hits, path


def test_split_hits_kept_as_read(ref: Path, tmp_path: Path) -> None:
    hits, path = _split_hits_file(ref, tmp_path)
    assert path.read_text().startswith(",".join(PARTICLE_ID_PARTS) + ",geometry_id,")
    split = read_hits(path)
    assert list(split.columns) == list(HITS_SPLIT.columns)
    assert split.dtypes.to_dict() == HITS_SPLIT.columns
    # Packing the split barcode gives ACTS's single uint64 encoding of the same hits.
    np.testing.assert_array_equal(combine_particle_id(split), hits["particle_id"].to_numpy())
    assert_frame_equal(split.drop(columns=list(PARTICLE_ID_PARTS)),
                       hits.drop(columns="particle_id"), check_exact=True)


def test_combine_particle_id_fields() -> None:
    parts = pd.DataFrame({"particle_id_pv": np.array([1, 4095, 0], np.uint32),
                          "particle_id_sv": np.array([0, 4095, 3], np.uint32),
                          "particle_id_part": np.array([14, 65535, 0], np.uint32),
                          "particle_id_gen": np.array([1, 255, 0], np.uint32),
                          "particle_id_subpart": np.array([2, 65535, 9], np.uint32)})
    packed = combine_particle_id(parts)
    assert packed.dtype == np.uint64
    assert packed.tolist() == [(1 << 52) | (14 << 24) | (1 << 16) | 2, 2**64 - 1,
                               (3 << 40) | 9]
    assert_frame_equal(split_particle_id(packed), parts)
    too_wide = parts.assign(particle_id_part=np.array([0, 65536, 0], np.uint32))
    with pytest.raises(ValueError, match=r"particle_id_part values must be in \[0, 65535\]"):
        combine_particle_id(too_wide)


def test_attach_truth_same_with_split_hits(ref: Path, tmp_path: Path) -> None:
    hits, path = _split_hits_file(ref, tmp_path)
    links = read_measurement_simhit_map(ref / MOCK_DATA /
                                        "event000000000-measurement-simhit-map.csv")
    ids = np.array([1, 2, 0, 1], np.uint64)
    sp = pd.DataFrame({"measurement_id_1": ids, "measurement_id_2": ids})
    np.testing.assert_array_equal(attach_truth(sp, links, read_hits(path)),
                                  attach_truth(sp, links, hits))
    assert attach_truth(sp, links, hits).tolist() == [4503599660924928, 4503599744811008,
                                                       4503599644147712, 4503599660924928]


def test_attach_truth_full_chain_with_noise(ref: Path) -> None:
    """Measurements -> space points (strip pairs and pixels) -> particle of the hit;
    measurements without a hit are noise; a map row without a space point is fine."""
    hits = read_hits(ref / MOCK_DATA / "event000000000-hits.csv")
    meas = read_measurements(ref / MOCK_DATA / "event000000000-measurements.csv")
    links = pd.DataFrame({"measurement_id": np.array([2, 0, 1, 7, 0], np.uint64),
                          "hit_id": np.array([2, 0, 1, 2, 1], np.uint64)})
    first = np.array([0, 1, 2, 5], np.uint64)  # measurement 5 exists in no map row
    sp = pd.DataFrame({"measurement_id_1": first, "measurement_id_2": first[::-1]})
    truth = attach_truth(sp, links, hits)
    # Measurement 0 has two hits: the first map row wins (hit 0).
    expected = [hits["particle_id"].iloc[h] for h in (0, 1, 2)] + [0]
    assert truth.tolist() == expected
    assert set(meas["measurement_id"].tolist()) >= {0, 1, 2}
    empty = attach_truth(sp.iloc[:0], links, hits)
    assert empty.dtype == np.uint64 and empty.size == 0


def test_particles_with_split_ids(ref: Path, tmp_path: Path) -> None:
    particles = read_particles(ref / MOCK_DATA / "event000000000-particles_initial.csv")
    split = pd.concat([split_particle_id(particles["particle_id"]),
                       particles.drop(columns="particle_id")], axis=1)
    path = tmp_path / "event000000000-particles.csv"
    split.to_csv(path, index=False)
    back = read_particles(path)
    assert_frame_equal(back, particles, check_exact=True, check_dtype=True)


def test_fatras_trackml_event_to_our_arrays(ref: Path) -> None:
    directory = ref / FATRAS
    assert trackml_paths(directory, 0)["particles"].name == "event000000000-fatras-particles.csv"
    tables = read_trackml_event(directory, 0, nonfinite="drop")
    hits, truth, particles = tables["hits"], tables["truth"], tables["particles"]
    assert "weight" not in truth.columns and "nhits" not in particles.columns
    event = trackml_to_event(hits, truth, particles)
    sp = event["spacepoint"]
    assert list(sp.columns) == ["measurement_id", "x", "y", "z", "var_r", "var_z"]
    assert sp.dtypes.to_dict() == {c: SPACEPOINT_SINGLE.columns[c] for c in sp.columns}
    assert len(sp) == 555 and (sp[["var_r", "var_z"]].to_numpy() == 0).all()
    np.testing.assert_array_equal(sp["measurement_id"], hits["hit_id"])
    np.testing.assert_array_equal(sp["x"], hits["x"])
    # Particle id per space point, checked against an independent csv-module join.
    with (directory / "event000000000-truth.csv").open(newline="") as handle:
        truth_of = {int(r["hit_id"]): int(r["particle_id"]) for r in csv.DictReader(handle)}
    pid = event["particle_id"]
    assert pid.dtype == np.uint64
    assert pid.tolist() == [truth_of[h] for h in sp["measurement_id"].tolist()]
    assert (pid == 0).sum() > 0  # some noise hits
    assert set(pid.tolist()) <= set(particles["particle_id"].tolist())
    mapped = event["particles"]
    assert list(mapped.columns) == ["particle_id", "vx", "vy", "vz", "px", "py", "pz", "q"]
    assert mapped.dtypes.to_dict() == {c: PARTICLES.columns[c] for c in mapped.columns}
    assert mapped["q"].tolist() == particles["q"].astype(np.float32).tolist()


def test_trackml_weight_and_missing_truth(tmp_path: Path) -> None:
    (tmp_path / "event000000001-hits.csv").write_text(
        "hit_id,x,y,z,volume_id,layer_id,module_id\n1,1,2,3,8,2,1\n2,4,5,6,8,2,2\n")
    (tmp_path / "event000000001-truth.csv").write_text(
        "hit_id,particle_id,tx,ty,tz,tpx,tpy,tpz,weight\n"
        "2,4503668346847232,0,0,0,0,0,0,0.25\n1,0,0,0,0,0,0,0,0\n")
    tables = read_trackml_event(tmp_path, 1, ("hits", "truth"))
    event = trackml_to_event(tables["hits"], tables["truth"])
    assert event["particle_id"].tolist() == [0, 4503668346847232]
    assert event["weight"].tolist() == [0.0, 0.25] and event["weight"].dtype == np.float32
    with pytest.raises(MissingEventFileError, match="-fatras-particles.csv"):
        read_trackml_event(tmp_path, 1)
    short = tables["truth"].iloc[:1]
    with pytest.raises(BadReferenceError, match=r"event000000001-hits.csv line 2, column "
                                                r"'hit_id': hit_id 1 has no row in "
                                                r"event000000001-truth.csv"):
        trackml_to_event(tables["hits"], short)


def test_root_reader_errors(tmp_path: Path, two_measurement_csv: Path) -> None:
    from sonic_exatrkx.io import SpacePointRootWriter

    path = tmp_path / "sp.root"
    with SpacePointRootWriter(path, tree="sp") as writer:
        writer.write(0, read_spacepoints(two_measurement_csv))
    with pytest.raises(InputFormatError, match=r"no tree 'spacePoints' \(TTrees in the file: "
                                               r"\['sp'\]\)"):
        read_spacepoints_root(path)
    assert len(read_spacepoints_root(path, tree="sp")[0]) == 4
    with pytest.raises(FileNotFoundError):
        read_spacepoints_root(tmp_path / "nope.root")


def test_truth_that_does_not_join_is_an_error_naming_the_files(tmp_path):
    """Space point measurement ids of another production: most space points would become
    noise and the fake rate nonsense; the join refuses, with the counts."""
    import shutil

    from sonic_exatrkx.io import acts_csv
    from sonic_exatrkx.io.errors import BadReferenceError
    from sonic_exatrkx.paths import sample_events_dir

    events = tmp_path / "events"
    shutil.copytree(sample_events_dir(), events)
    path = acts_csv.event_path(events, 0, "spacepoint")
    lines = path.read_text().splitlines()
    shifted = [lines[0]] + [",".join([str(int(v) + 1_000_000) if i < 2 else v
                                      for i, v in enumerate(line.split(","))])
                            for line in lines[1:]]
    path.write_text("\n".join(shifted) + "\n")  # measurement ids of another production
    tables = acts_csv.read_event(events, 0, ("spacepoint", "hits", "measurement-simhit-map"))
    with pytest.raises(BadReferenceError) as err:
        acts_csv.attach_truth(tables["spacepoint"], tables["measurement-simhit-map"],
                              tables["hits"])
    message = str(err.value)
    assert message.startswith("event000000000-spacepoint.csv, column 'measurement_id_1'")
    assert "1696 of 1696 space points (100 %)" in message
    assert "event000000000-measurement-simhit-map.csv" in message
    ok = acts_csv.read_event(sample_events_dir(), 0, ("spacepoint", "hits",
                                                      "measurement-simhit-map"))
    truth = acts_csv.attach_truth(ok["spacepoint"], ok["measurement-simhit-map"], ok["hits"])
    assert np.count_nonzero(truth == 0) == 262  # noise alone is well under the limit


def test_root_reader_refuses_a_tree_without_space_points_and_split_events(tmp_path: Path,
                                                                          two_measurement_csv):
    import uproot

    from sonic_exatrkx.io.acts_root import iter_spacepoints_root

    other = tmp_path / "other.root"
    with uproot.recreate(other) as f:
        f.mktree("spacePoints", {"event_id": np.uint32, "energy": np.float32}).extend(
            {"event_id": np.zeros(2, np.uint32), "energy": np.ones(2, np.float32)})
    with pytest.raises(InputFormatError, match=r"other.root: tree 'spacePoints' lacks space "
                                               r"point branches \['measurement_id', 'var_r'"):
        read_spacepoints_root(other)
    sp = read_spacepoints(two_measurement_csv)
    split = tmp_path / "split.root"
    n = len(sp)
    columns = {"event_id": np.array([0, 1] * (n // 2) + [0] * (n % 2), np.uint32),
               **{c: sp[c].to_numpy() for c in ("measurement_id_1", "measurement_id_2",
                                                 "x", "y", "z", "var_r", "var_z")}}
    columns["measurement_id"] = columns.pop("measurement_id_1")
    with uproot.recreate(split) as f:
        f.mktree("spacePoints", {k: v.dtype for k, v in columns.items()}).extend(columns)
    with pytest.raises(InputFormatError, match="rows of event 0 are not contiguous"):
        list(iter_spacepoints_root(split, step_size=1))
    assert sorted(read_spacepoints_root(split)) == [0, 1]  # whole-file read: any order


def test_read_trackml_truth_columns(tmp_path: Path) -> None:
    from sonic_exatrkx.io.trackml import read_trackml_truth

    path = tmp_path / "event000000002-truth.csv"
    path.write_text("hit_id,particle_id,tx,ty,tz,tpx,tpy,tpz,weight\n"
                    "1,4503668346847232,1,2,3,0.5,0.5,1,0.25\n")
    truth = read_trackml_truth(path)
    assert truth["particle_id"].dtype == np.uint64
    assert truth["particle_id"].tolist() == [4503668346847232]
    assert truth["weight"].tolist() == [0.25]
    path.write_text("hit_id,particle_id\n1,2\n")
    with pytest.raises(InputFormatError, match="event000000002-truth.csv"):
        read_trackml_truth(path)
