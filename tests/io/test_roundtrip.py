"""Round trips: CSV -> DataFrame -> CSV, CSV -> ROOT (flat / jagged) -> CSV, tracks,
and atomic writing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import uproot
from pandas.testing import assert_frame_equal

from sonic_exatrkx.io import (
    SpacePointRootWriter,
    TrackRootWriter,
    iter_spacepoints_root,
    read_event,
    read_hits,
    read_measurement_simhit_map,
    read_measurements,
    read_particles,
    read_spacepoints,
    read_spacepoints_root,
    read_tracks_csv,
    read_tracks_root,
    root_event_ids,
    spacepoint_schema,
    write_event,
    write_table,
    write_tracks_csv,
)
from sonic_exatrkx.io.schema import (
    HITS,
    MEASUREMENT_SIMHIT_MAP,
    MEASUREMENTS,
    PARTICLES,
    SPACEPOINT,
)

from .conftest import CTD_SPACEPOINTS, MOCK_DATA, SINGLE_TRACKS, frame_from_text

READERS = {
    "hits": (read_hits, HITS),
    "measurements": (read_measurements, MEASUREMENTS),
    "measurement-simhit-map": (read_measurement_simhit_map, MEASUREMENT_SIMHIT_MAP),
    "particles": (read_particles, PARTICLES),
    "particles_initial": (read_particles, PARTICLES),
}


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert_frame_equal(a, b, check_exact=True)


def _events(ref: Path, two_measurement_csv: Path) -> dict[str, dict[int, pd.DataFrame]]:
    """Multi-event inputs of both variants (real file split into 3 events + fixture)."""
    single = read_spacepoints(ref / CTD_SPACEPOINTS)
    parts = np.array_split(np.arange(len(single)), 3)
    two = read_spacepoints(two_measurement_csv)
    return {
        "single": {100 + i: single.iloc[idx].reset_index(drop=True) for i, idx in
                   enumerate(parts)},
        "two": {7: two, 8: two.iloc[::-1].reset_index(drop=True), 9: two.iloc[:1]},
    }


def test_csv_roundtrip_real_files(ref: Path, tmp_path: Path) -> None:
    cases = [(ref / CTD_SPACEPOINTS, read_spacepoints, None)]
    for directory in (ref / MOCK_DATA, ref / SINGLE_TRACKS):
        for path in sorted(directory.glob("event000000000-*.csv")):
            kind = path.stem.split("-", 1)[1]
            if kind in READERS:
                cases.append((path, *READERS[kind]))
    assert len(cases) == 9  # ctd spacepoint + 4 mock_data kinds + 4 single_tracks kinds
    for path, reader, schema in cases:
        first = reader(path)
        out = tmp_path / path.name
        write_table(out, first, schema or spacepoint_schema(first))
        second = reader(out)
        _same(first, second)
        # Same columns as the source file (the file keeps its variant); every value
        # parses to the same float32 / integer as the original text.
        assert out.read_text().splitlines()[0] == path.read_text().splitlines()[0]


def test_float32_shortest_form_roundtrip_is_exact(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    bits = rng.integers(0, 2**32, 20000, dtype=np.uint64).astype(np.uint32)
    values = bits.view(np.float32)
    values = values[np.isfinite(values)]
    special = np.array([0.0, -0.0, 1e-45, -1e-45, 3.4028235e38, 0.1, 1 / 3, 16777217],
                       dtype=np.float32)
    values = np.concatenate([special, values])
    n = values.size
    df = pd.DataFrame({"measurement_id": np.arange(n, dtype=np.uint64) + np.uint64(2**63),
                       "x": values, "y": values[::-1], "z": np.zeros(n, np.float32),
                       "var_r": values, "var_z": np.zeros(n, np.float32)})
    path = tmp_path / "event000000000-spacepoint.csv"
    write_table(path, df, spacepoint_schema(df))
    back = read_spacepoints(path, check_range=False)  # any float32 bit pattern, not physics
    np.testing.assert_array_equal(back["x"].to_numpy().view(np.uint32), values.view(np.uint32))
    _same(back, df)
    # Shortest form: 0.1 is written as "0.1", not as its 17-digit double expansion.
    text = frame_from_text(path.read_text())
    assert text["x"].iloc[5] == "0.1" and text["x"].iloc[1] == "-0.0"
    digits = text["x"].str.split("e").str[0].str.replace(r"[-.]", "", regex=True)
    assert digits.str.strip("0").str.len().max() <= 9  # float32 never needs more than 9


def test_two_measurement_variant(two_measurement_csv: Path, tmp_path: Path) -> None:
    df = read_spacepoints(two_measurement_csv)
    assert list(df.columns) == list(SPACEPOINT.columns)
    assert df.dtypes.to_dict() == SPACEPOINT.columns
    # Pixel rows: empty second id -> first id repeated (ids and geometry ids).
    assert df["measurement_id_2"].tolist() == [0, 2, 4, 5]
    assert df["geometry_id_2"].tolist() == [1224979236083738112, 1224979236083738114,
                                            9007199254740993, 360288038909116416]
    assert df["geometry_id_1"].iloc[2] == 2**64 - 1
    assert df["z"].iloc[2] == np.float32(1.40129846e-45) and df["z"].iloc[2] > 0
    out = tmp_path / "event000000007-spacepoint.csv"
    write_table(out, df, spacepoint_schema(df))
    _same(read_spacepoints(out), df)
    header = out.read_text().splitlines()[0]
    assert header == ("measurement_id_1,measurement_id_2,geometry_id_1,geometry_id_2,"
                      "x,y,z,t,var_r,var_z")


def test_write_and_read_event(ref: Path, tmp_path: Path) -> None:
    tables = read_event(ref / MOCK_DATA, 0)
    write_event(tmp_path, 0, tables)
    back = read_event(tmp_path, 0)
    assert back.keys() == tables.keys()
    for kind, df in tables.items():
        _same(back[kind], df)


@pytest.mark.parametrize("layout", ["flat", "jagged"])
@pytest.mark.parametrize("variant", ["single", "two"])
def test_csv_root_csv_roundtrip(
    ref: Path, two_measurement_csv: Path, tmp_path: Path, layout: str, variant: str
) -> None:
    events = _events(ref, two_measurement_csv)[variant]
    path = tmp_path / "spacepoints.root"
    with SpacePointRootWriter(path, layout=layout) as writer:
        for event, df in events.items():
            writer.write(event, df)
    back = read_spacepoints_root(path)
    assert list(back) == sorted(events)
    assert root_event_ids(path) == sorted(events)
    for event, df in events.items():
        _same(back[event], df)
        # ... and on to CSV and back: the same table, same variant.
        csv_path = tmp_path / f"event{event:09d}-spacepoint.csv"
        write_table(csv_path, back[event], spacepoint_schema(back[event]))
        _same(read_spacepoints(csv_path), df)
    # Chunked iteration gives the same events, also when chunks split an event.
    chunked = dict(iter_spacepoints_root(path, step_size=5))
    assert list(chunked) == sorted(events)
    for event, df in events.items():
        _same(chunked[event], df)


def test_flat_layout_matches_acts_branches(two_measurement_csv: Path, tmp_path: Path) -> None:
    df = read_spacepoints(two_measurement_csv)
    path = tmp_path / "sp.root"
    with SpacePointRootWriter(path) as writer:
        writer.write(42, df)
    with uproot.open(path) as file:
        tree = file["spacePoints"]
        types = {b.name: b.interpretation.from_dtype.newbyteorder("=").name
                 for b in tree.branches}
        data = tree.arrays(library="np")
    assert types == {"event_id": "uint32", "measurement_id": "uint64", "geometry_id": "uint64",
                     "measurement_id_2": "uint64", "geometry_id_2": "uint64",
                     "x": "float32", "y": "float32", "z": "float32", "r": "float32",
                     "t": "float32", "var_r": "float32", "var_z": "float32"}
    assert data["event_id"].tolist() == [42] * 4
    np.testing.assert_array_equal(data["measurement_id"], df["measurement_id_1"])
    np.testing.assert_array_equal(data["geometry_id"], df["geometry_id_1"])
    np.testing.assert_allclose(data["r"], np.hypot(df["x"], df["y"]), rtol=1e-6)


def test_old_variant_fills_acts_branches(ref: Path, tmp_path: Path) -> None:
    """No geometry_id / t in the old file: ACTS fill values in ROOT, absent again after."""
    df = read_spacepoints(ref / CTD_SPACEPOINTS)
    path = tmp_path / "sp.root"
    with SpacePointRootWriter(path) as writer:
        writer.write(100, df)
    with uproot.open(path) as file:
        data = file["spacePoints"].arrays(["geometry_id", "t"], library="np")
    assert (data["geometry_id"] == 0).all() and np.isnan(data["t"]).all()
    assert list(read_spacepoints_root(path)[100].columns) == list(df.columns)


def test_reads_foreign_acts_flat_file(two_measurement_csv: Path, tmp_path: Path) -> None:
    """A tree as ACTS writes it (no column list in the title): all branches are read."""
    df = read_spacepoints(two_measurement_csv)
    path = tmp_path / "acts.root"
    branches = {"event_id": np.repeat(np.array([5, 6], np.uint32), [4, 4]),
                "measurement_id": np.tile(df["measurement_id_1"].to_numpy(), 2),
                "geometry_id": np.tile(df["geometry_id_1"].to_numpy(), 2),
                "measurement_id_2": np.tile(df["measurement_id_2"].to_numpy(), 2),
                "geometry_id_2": np.tile(df["geometry_id_2"].to_numpy(), 2)}
    for column in ("x", "y", "z", "t", "var_r", "var_z"):
        branches[column] = np.tile(df[column].to_numpy(), 2)
    branches["r"] = np.hypot(branches["x"], branches["y"])
    with uproot.recreate(path) as file:  # a TTree, as ACTS writes (not an RNTuple)
        tree = file.mktree("spacePoints", {k: v.dtype for k, v in branches.items()})
        tree.extend(branches)
    back = read_spacepoints_root(path)
    assert list(back) == [5, 6]
    _same(back[5], df)
    _same(back[6], df)


@pytest.mark.parametrize("layout", ["flat", "jagged"])
def test_root_file_without_events(tmp_path: Path, layout: str) -> None:
    path = tmp_path / "sp.root"
    with SpacePointRootWriter(path, layout=layout):
        pass
    assert read_spacepoints_root(path) == {} and root_event_ids(path) == []
    assert list(iter_spacepoints_root(path)) == []


def test_jagged_keeps_empty_events(two_measurement_csv: Path, tmp_path: Path) -> None:
    df = read_spacepoints(two_measurement_csv)
    path = tmp_path / "sp.root"
    with SpacePointRootWriter(path, layout="jagged") as writer:
        writer.write(1, df)
        writer.write(2, df.iloc[:0])
        writer.write(3, df)
    back = read_spacepoints_root(path)
    assert list(back) == [1, 2, 3] and len(back[2]) == 0
    _same(back[2], df.iloc[:0].reset_index(drop=True))
    with uproot.open(path) as file:
        assert file["spacePoints"].num_entries == 3
        assert file["spacePoints"]["n_spacepoints"].array(library="np").tolist() == [4, 0, 4]


@pytest.mark.parametrize("layout", ["flat", "jagged"])
def test_extra_numeric_columns_become_branches(
    two_measurement_csv: Path, tmp_path: Path, layout: str
) -> None:
    df = read_spacepoints(two_measurement_csv)
    df["particle_id"] = np.array([0, 4503599644147712, 2**64 - 1, 7], np.uint64)
    df["fake"] = np.array([False, True, False, False])
    path = tmp_path / "sp.root"
    with SpacePointRootWriter(path, layout=layout) as writer:
        writer.write(3, df)
        writer.write(4, df.iloc[1:].reset_index(drop=True))
    back = read_spacepoints_root(path)
    _same(back[3], df)
    _same(back[4], df.iloc[1:].reset_index(drop=True))
    with pytest.raises(ValueError, match="extra column 'r'"), \
            SpacePointRootWriter(tmp_path / "bad.root") as writer:
        writer.write(1, df.assign(r=np.float32(1)))
    with pytest.raises(ValueError, match="extra column 'label'"), \
            SpacePointRootWriter(tmp_path / "bad.root") as writer:
        writer.write(1, df.assign(label="a"))
    assert not (tmp_path / "bad.root").exists()


def test_writer_rejects_mixed_variants_and_duplicates(
    ref: Path, two_measurement_csv: Path, tmp_path: Path
) -> None:
    path = tmp_path / "sp.root"
    with pytest.raises(ValueError, match="already written"), \
            SpacePointRootWriter(path) as writer:
        writer.write(1, read_spacepoints(two_measurement_csv))
        writer.write(1, read_spacepoints(two_measurement_csv))
    assert not path.exists()
    with pytest.raises(ValueError, match="has columns"), SpacePointRootWriter(path) as writer:
        writer.write(1, read_spacepoints(two_measurement_csv))
        writer.write(2, read_spacepoints(ref / CTD_SPACEPOINTS))
    assert list(tmp_path.iterdir()) == [two_measurement_csv]  # no file, no temporary


def test_tracks_csv_and_root(tmp_path: Path) -> None:
    events = {0: np.array([3, 3, -1, 0, 0, 7], np.int64), 5: np.array([], np.int64),
              9: np.arange(1000, dtype=np.int64) // 7}
    for event, tracks in events.items():
        path = tmp_path / f"event{event:09d}-tracks.csv"
        write_tracks_csv(path, tracks)
        back = read_tracks_csv(path)
        assert back.dtype == np.int64
        np.testing.assert_array_equal(back, tracks)
    assert read_event(tmp_path, 0, ["tracks"])["tracks"].tolist() == [3, 3, -1, 0, 0, 7]
    # Any row order: rows are put back by spacepoint_id.
    shuffled = tmp_path / "event000000001-tracks.csv"
    shuffled.write_text("spacepoint_id,track_id\n2,-1\n0,4\n1,4\n")
    assert read_tracks_csv(shuffled).tolist() == [4, 4, -1]

    root = tmp_path / "tracks.root"
    with TrackRootWriter(root) as writer:
        for event, tracks in events.items():
            writer.write(event, tracks)
    back = read_tracks_root(root)
    assert list(back) == [0, 5, 9]
    for event, tracks in events.items():
        np.testing.assert_array_equal(back[event], tracks)
    assert root_event_ids(root, tree="tracks") == [0, 5, 9]


def test_atomic_csv_write_leaves_nothing_on_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, two_measurement_csv: Path
) -> None:
    df = read_spacepoints(two_measurement_csv)
    target = tmp_path / "out" / "event000000001-spacepoint.csv"

    def half_then_fail(self: pd.DataFrame, handle, **kwargs) -> None:  # noqa: ANN001
        handle.write("measurement_id_1,measurement_id_2\n0,")
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_csv", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        write_table(target, df, SPACEPOINT)
    assert list(target.parent.iterdir()) == []
    monkeypatch.undo()

    # An existing file is untouched by a failed overwrite.
    write_table(target, df, SPACEPOINT)
    before = target.read_bytes()
    monkeypatch.setattr(pd.DataFrame, "to_csv", half_then_fail)
    with pytest.raises(OSError):
        write_table(target, df.iloc[:1], SPACEPOINT)
    assert target.read_bytes() == before
    assert [p.name for p in target.parent.iterdir()] == [target.name]


def test_write_refuses_ids_through_float(tmp_path: Path) -> None:
    df = pd.DataFrame({"measurement_id": [1.0, 2.0], "x": [0.0, 1.0], "y": [0.0, 1.0],
                       "z": [0.0, 1.0], "var_r": [0.0, 0.0], "var_z": [0.0, 0.0]})
    path = tmp_path / "event000000000-spacepoint.csv"
    with pytest.raises(ValueError, match="never go through float"):
        write_table(path, df, spacepoint_schema(df))
    negative = df.assign(measurement_id=np.array([-1, 2]))
    with pytest.raises(ValueError, match="outside"):
        write_table(path, negative, spacepoint_schema(df))
    assert not path.exists()


def test_atomic_root_write_leaves_nothing_on_failure(
    two_measurement_csv: Path, tmp_path: Path
) -> None:
    df = read_spacepoints(two_measurement_csv)
    path = tmp_path / "sp.root"
    with pytest.raises(RuntimeError, match="crash"), \
            SpacePointRootWriter(path, layout="jagged") as writer:
        writer.write(1, df)
        raise RuntimeError("crash mid-job")
    assert list(tmp_path.iterdir()) == [two_measurement_csv]
    with pytest.raises(RuntimeError), TrackRootWriter(tmp_path / "t.root") as tracks:
        tracks.write(1, np.zeros(3, np.int64))
        raise RuntimeError("crash")
    assert list(tmp_path.iterdir()) == [two_measurement_csv]
