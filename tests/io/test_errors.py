"""Every bad input gives its specific error, naming file, line and column."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sonic_exatrkx.io import (
    BadReferenceError,
    EmptyFileError,
    EventDirectoryError,
    InputFormatError,
    MissingColumnError,
    MissingEventFileError,
    NonFiniteValueError,
    attach_truth,
    list_events,
    read_event,
    read_hits,
    read_measurement_simhit_map,
    read_measurements,
    read_spacepoints,
    read_table,
    read_tracks_csv,
    write_event,
    write_table,
)
from sonic_exatrkx.io.schema import HITS, MEASUREMENTS, TRACKML_TRUTH

from .conftest import MOCK_DATA

SP_HEADER = "measurement_id,x,y,z,var_r,var_z\n"


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_unparsable_float_names_line_and_column(tmp_path: Path) -> None:
    # A blank line before the bad row: the reported line is the editor's line.
    path = _write(tmp_path, "event000000003-spacepoint.csv",
                  SP_HEADER + "0,1,2,3,0,0\n\n1,abc,2,3,0,0\n2,1,2,xyz,0,0\n")
    with pytest.raises(InputFormatError) as info:
        read_spacepoints(path)
    err = info.value
    assert str(err) == (
        "event000000003-spacepoint.csv line 4, column 'x': cannot parse 'abc' as float32"
    )
    assert (err.path, err.row, err.column, err.expected, err.event) == (path, 4, "x", "float32", 3)
    assert path.read_text().splitlines()[err.row - 1].startswith("1,abc")


def test_unparsable_integer_reports_first_bad_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "event000000001-spacepoint.csv",
                  SP_HEADER + "0,1,2,3,0,0\n1,1,2,3,0,0\n1.5,1,2,3,0,0\n")
    with pytest.raises(InputFormatError, match=r"line 4, column 'measurement_id': cannot "
                                               r"parse '1\.5' as uint64"):
        read_spacepoints(path)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("-5", "negative value in an unsigned column"),
        ("18446744073709551616", "out of range"),
        ("", "empty value, expected uint64"),
    ],
)
def test_bad_uint64(tmp_path: Path, value: str, reason: str) -> None:
    path = _write(tmp_path, "event000000002-spacepoint.csv",
                  SP_HEADER + f"0,1,2,3,0,0\n{value},1,2,3,0,0\n")
    with pytest.raises(InputFormatError) as info:
        read_spacepoints(path)
    assert (info.value.row, info.value.column) == (3, "measurement_id")
    assert reason in str(info.value)


def test_largest_uint64_is_exact(tmp_path: Path) -> None:
    path = _write(tmp_path, "event000000002-spacepoint.csv",
                  SP_HEADER + "18446744073709551615,1,2,3,0,0\n9007199254740993,1,2,3,0,0\n")
    ids = read_spacepoints(path)["measurement_id"].tolist()
    assert ids == [2**64 - 1, 2**53 + 1]


def test_int32_out_of_range_is_not_wrapped(tmp_path: Path) -> None:
    header = ",".join(HITS.columns) + "\n"
    row = "1,2,1,2,3,0,1,1,1,1,0,0,0,0,"
    path = _write(tmp_path, "event000000000-hits.csv", header + row + "5000000000\n")
    with pytest.raises(InputFormatError, match=r"line 2, column 'index': cannot parse "
                                               r"'5000000000' as int32: out of range"):
        read_hits(path)


@pytest.mark.parametrize(("token", "shown"), [("nan", "nan"), ("inf", "inf"), ("-inf", "-inf"),
                                               ("", "nan")])
def test_non_finite_coordinates(tmp_path: Path, token: str, shown: str) -> None:
    path = _write(tmp_path, "event000000005-spacepoint.csv",
                  SP_HEADER + "0,1,2,3,0,0\n1,1,2,3,0,0\n" + f"2,1,{token},3,0,0\n")
    with pytest.raises(NonFiniteValueError) as info:
        read_spacepoints(path)
    err = info.value
    assert (err.row, err.column, err.event) == (4, "y", 5)
    assert str(err) == (f"event000000005-spacepoint.csv line 4, column 'y': non-finite value "
                        f"{shown}, expected a finite float32 (--nonfinite drop goes on "
                        "without such rows)")


def test_nan_allowed_outside_coordinate_columns(tmp_path: Path) -> None:
    """Measurement variances may legitimately be NaN; positions may not."""
    header = "measurement_id,geometry_id,local_key,local0,local1,phi,theta,time," \
             "var_local0,var_local1,var_phi,var_theta,var_time\n"
    path = _write(tmp_path, "event000000000-measurements.csv",
                  header + "0,1,,1.5,2.5,0,0,0,nan,0.1,0,0,0\n")
    df = read_measurements(path)
    assert np.isnan(df["var_local0"].iloc[0]) and df["local_key"].iloc[0] == ""
    out = tmp_path / "out" / path.name
    write_table(out, df, MEASUREMENTS)
    assert out.read_text().splitlines()[1] == "0,1,,1.5,2.5,0.0,0.0,0.0,nan,0.1,0.0,0.0,0.0"
    assert np.isnan(read_measurements(out)["var_local0"].iloc[0])


def test_crlf_file_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "event000000001-spacepoint.csv"
    path.write_bytes((SP_HEADER + "0,1,2,3,0,0\n\n1,1,2,3,0,x\n").replace("\n", "\r\n")
                     .encode())
    with pytest.raises(InputFormatError, match=r"line 4, column 'var_z': cannot parse 'x'"):
        read_spacepoints(path)


def test_missing_column(tmp_path: Path) -> None:
    path = _write(tmp_path, "event000000004-spacepoint.csv",
                  "measurement_id,x,y,var_r,var_z\n0,1,2,0,0\n")
    with pytest.raises(MissingColumnError) as info:
        read_spacepoints(path)
    err = info.value
    assert err.missing == ["z"] and (err.row, err.column, err.event) == (1, "z", 4)
    assert "missing required space point column 'z'" in str(err)
    assert "found columns: measurement_id, x, y, var_r, var_z" in str(err)


def test_misspelled_column_gets_suggestion(tmp_path: Path) -> None:
    path = _write(tmp_path, "event000000004-spacepoint.csv",
                  "measurment_id,x,y,z,var_r,var_z\n0,1,2,3,0,0\n")
    with pytest.raises(MissingColumnError) as info:
        read_spacepoints(path)
    assert info.value.suggestions == {"measurement_id": "measurment_id"}
    assert "'measurement_id' (did you mean 'measurment_id'?)" in str(info.value)

    hits_header = ",".join(HITS.columns).replace("deltapx", "delta_px") + "\n"
    hits = _write(tmp_path, "event000000004-hits.csv", hits_header)
    with pytest.raises(MissingColumnError, match=r"'deltapx' \(did you mean 'delta_px'\?\)"):
        read_hits(hits)


def test_misspelled_two_measurement_header(tmp_path: Path) -> None:
    path = _write(tmp_path, "event000000004-spacepoint.csv",
                  "measurement_id_1,measurment_id_2,x,y,z,var_r,var_z\n0,0,1,2,3,0,0\n")
    with pytest.raises(MissingColumnError, match=r"'measurement_id_2' \(did you mean "
                                                 r"'measurment_id_2'\?\)"):
        read_spacepoints(path)


def test_zero_byte_and_blank_files_are_errors(tmp_path: Path) -> None:
    empty = _write(tmp_path, "event000000001-spacepoint.csv", "")
    with pytest.raises(EmptyFileError, match=r"event000000001-spacepoint.csv: file is empty "
                                             r"\(0 bytes\)"):
        read_spacepoints(empty)
    blank = _write(tmp_path, "event000000002-spacepoint.csv", "\n\n  \n")
    with pytest.raises(EmptyFileError, match="only blank lines"):
        read_spacepoints(blank)


def test_header_only_file_is_an_empty_event(tmp_path: Path) -> None:
    path = _write(tmp_path, "event000000001-spacepoint.csv", SP_HEADER)
    df = read_spacepoints(path)
    assert len(df) == 0 and list(df.columns) == SP_HEADER.strip().split(",")
    assert df["measurement_id"].dtype == np.uint64 and df["x"].dtype == np.float32


def test_too_many_fields(tmp_path: Path) -> None:
    for body, line in (("0,1,2,3,0,0,9\n", 2), ("0,1,2,3,0,0\n\n1,1,2,3,0,0,9\n", 4)):
        path = _write(tmp_path, "event000000001-spacepoint.csv", SP_HEADER + body)
        with pytest.raises(InputFormatError) as info:
            read_spacepoints(path)
        assert info.value.row == line
        assert "expected 6 fields (as in the header), found 7" in str(info.value)


def test_truncated_last_line(tmp_path: Path) -> None:
    """A writer that died mid-line leaves a short last row; pandas would pad it."""
    header = "measurement_id,geometry_id,local_key,local0,local1,phi,theta,time," \
             "var_local0,var_local1,var_phi,var_theta,var_time\n"
    path = _write(tmp_path, "event000000000-measurements.csv",
                  header + "0,1,a,1.5,2.5,0,0,0,0,0.1,0,0,0\n1,1,a,1.5,2.5,0,0,0,0,0.1,0")
    with pytest.raises(InputFormatError, match=r"line 3: expected 13 fields \(as in the "
                                               r"header\), found 11 \(truncated line\?\)"):
        read_measurements(path)


def test_extra_columns_dropped_with_debug_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _write(tmp_path, "event000000001-spacepoint.csv",
                  "measurement_id,x,y,z,var_r,var_z,cluster_size,note\n0,1,2,3,0,0,4,abc\n")
    with caplog.at_level(logging.DEBUG, logger="sonic_exatrkx.io"):
        df = read_spacepoints(path)
    assert list(df.columns) == ["measurement_id", "x", "y", "z", "var_r", "var_z"]
    assert "dropping columns not in the spacepoint schema: cluster_size, note" in caplog.text


def test_missing_file_for_one_kind(tmp_path: Path) -> None:
    sp = pd.DataFrame({"measurement_id": np.array([0, 1], np.uint64),
                       **{c: np.zeros(2, np.float32) for c in ("x", "y", "z", "var_r", "var_z")}})
    links = pd.DataFrame({"measurement_id": np.array([0], np.uint64),
                          "hit_id": np.array([0], np.uint64)})
    write_event(tmp_path, 3, {"spacepoint": sp, "measurement-simhit-map": links})
    write_event(tmp_path, 4, {"spacepoint": sp})
    assert read_event(tmp_path, 3, ["spacepoint", "measurement-simhit-map"]).keys() == {
        "spacepoint", "measurement-simhit-map"}
    with pytest.raises(MissingEventFileError) as info:
        read_event(tmp_path, 4, ["spacepoint", "measurement-simhit-map"])
    err = info.value
    assert isinstance(err, FileNotFoundError)
    assert err.path == tmp_path / "event000000004-measurement-simhit-map.csv"
    assert err.event == 4
    assert str(err).startswith("event000000004-measurement-simhit-map.csv: missing "
                               "measurement-simhit-map file for event 4")
    assert "files this event has: spacepoint" in str(err)
    with pytest.raises(MissingEventFileError, match="no event files for event 9"):
        read_event(tmp_path, 9)


def test_wrong_directory(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(EventDirectoryError) as info:
        list_events(missing)
    assert str(missing) in str(info.value)
    assert "does not exist (looked for event*-spacepoint.csv files)" in str(info.value)
    assert isinstance(info.value, FileNotFoundError)

    a_file = _write(tmp_path, "notes.txt", "x")
    with pytest.raises(EventDirectoryError, match="is not a directory"):
        list_events(a_file)

    _write(tmp_path, "event000000001-hits.csv", "")
    _write(tmp_path, "event000000001-spacepoints.csv", "")
    with pytest.raises(EventDirectoryError, match=r"no event\*-spacepoint.csv files; event "
                                                  r"file stems present: hits, spacepoints"):
        list_events(tmp_path)
    with pytest.raises(EventDirectoryError, match="does not exist"):
        read_event(missing, 1)


def test_list_events_sorted_and_ignores_temporaries(tmp_path: Path) -> None:
    for event in (12, 3, 100):
        _write(tmp_path, f"event{event:09d}-spacepoint.csv", SP_HEADER)
    _write(tmp_path, ".event000000007-spacepoint.csv.abc.tmp", "")
    assert list_events(tmp_path) == [3, 12, 100]


def test_truth_reference_out_of_range(ref: Path, tmp_path: Path) -> None:
    hits = read_hits(ref / MOCK_DATA / "event000000000-hits.csv")  # 3 hits
    path = _write(tmp_path, "event000000000-measurement-simhit-map.csv",
                  "measurement_id,hit_id\n0,0\n1,2\n2,3\n")
    links = read_measurement_simhit_map(path)
    sp = pd.DataFrame({"measurement_id": np.array([0, 1], np.uint64),
                       **{c: np.zeros(2, np.float32) for c in ("x", "y", "z", "var_r", "var_z")}})
    with pytest.raises(BadReferenceError) as info:
        attach_truth(sp, links, hits)
    err = info.value
    assert (err.path, err.row, err.column, err.event) == (path, 4, "hit_id", 0)
    assert str(err) == ("event000000000-measurement-simhit-map.csv line 4, column 'hit_id': "
                        "hit_id 3 is past the end of event000000000-hits.csv (3 hits; hit_id "
                        "is the 0-based row index in the hits file)")


def test_attach_truth_refuses_filtered_hits(ref: Path) -> None:
    hits = read_hits(ref / MOCK_DATA / "event000000000-hits.csv")
    links = read_measurement_simhit_map(ref / MOCK_DATA /
                                        "event000000000-measurement-simhit-map.csv")
    sp = pd.DataFrame({"measurement_id": np.array([0], np.uint64)})
    with pytest.raises(ValueError, match="row position in the hits file"):
        attach_truth(sp, links, hits.iloc[1:])


def test_tracks_with_duplicate_spacepoint(tmp_path: Path) -> None:
    path = _write(tmp_path, "event000000000-tracks.csv",
                  "spacepoint_id,track_id\n0,5\n1,5\n1,6\n")
    with pytest.raises(InputFormatError) as info:
        read_tracks_csv(path)
    assert (info.value.row, info.value.column) == (4, "spacepoint_id")


def test_optional_truth_weight(tmp_path: Path) -> None:
    header = "hit_id,particle_id,tx,ty,tz,tpx,tpy,tpz\n"
    path = _write(tmp_path, "event000000000-truth.csv", header + "1,0,1,2,3,4,5,6\n")
    df = read_table(path, TRACKML_TRUTH)
    assert "weight" not in df.columns and len(df) == 1


@pytest.mark.parametrize(("branch", "dtype", "expected"), [
    ("event_id", np.float64, "branch 'event_id' of tree 'spacePoints' holds float64 values, "
                             "expected an integer type"),
    ("x", np.int32, "branch 'x' of tree 'spacePoints' holds int32 values, expected a "
                    "floating-point type"),
])
def test_root_branch_types_are_checked(tmp_path, branch, dtype, expected):
    """A float event_id (0.5, 1.5, ...) would be truncated and merge events; integer
    coordinates would lose precision: both are refused, naming the branch."""
    import uproot

    from sonic_exatrkx.io.acts_root import read_spacepoints_root

    n = 4
    columns = {"event_id": np.array([0, 0, 1, 1], np.uint32),
               "measurement_id": np.arange(n, dtype=np.uint64),
               "x": np.ones(n, np.float32), "y": np.ones(n, np.float32),
               "z": np.ones(n, np.float32), "var_r": np.zeros(n, np.float32),
               "var_z": np.zeros(n, np.float32)}
    columns[branch] = (np.array([0.5, 0.9, 1.5, 1.9]) if branch == "event_id"
                       else np.arange(n)).astype(dtype)
    path = tmp_path / "sp.root"
    with uproot.recreate(path) as f:
        f.mktree("spacePoints", {k: v.dtype for k, v in columns.items()}).extend(columns)
    with pytest.raises(InputFormatError) as err:
        read_spacepoints_root(path)
    assert expected in str(err.value) and str(err.value).startswith("sp.root")
