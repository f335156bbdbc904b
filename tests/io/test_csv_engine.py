"""The fast CSV engine (numpy, `csv_fast`) gives the careful pandas reader's arrays or
steps aside, and every error is still the careful reader's located one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sonic_exatrkx.io import acts_csv
from sonic_exatrkx.io.csv_fast import open_clean, parse_clean
from sonic_exatrkx.io.errors import InputFormatError
from sonic_exatrkx.io.schema import (
    F32,
    HITS,
    I32,
    PARTICLES,
    SPACEPOINT,
    U32,
    U64,
    TableSchema,
    hits_schema,
    spacepoint_schema,
)
from sonic_exatrkx.sim import SimulationConfig, write_events

KINDS = ("spacepoint", "hits", "particles", "measurement-simhit-map", "measurements")


def careful(path: Path, schema: TableSchema) -> dict[str, np.ndarray]:
    """The careful (pandas) reader's columns, without the fast engine."""
    header = acts_csv._read_header(path, None)
    present = acts_csv._check_columns(path, header, schema, None)
    return acts_csv._parse_careful(path, schema, header, present, None)


def fast(path: Path, schema: TableSchema) -> dict[str, np.ndarray] | None:
    clean = open_clean(path)
    return None if clean is None else parse_clean(clean, schema)


def assert_same(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert set(got) == set(want)
    for column, arr in want.items():
        assert got[column].dtype == arr.dtype, column
        assert got[column].tobytes() == arr.tobytes(), column  # bit for bit (NaN, -0)


def schema_of(kind: str, path: Path) -> TableSchema:
    header = acts_csv._read_header(path, None)
    return {"spacepoint": spacepoint_schema(header), "hits": hits_schema(header),
            "particles": PARTICLES, "measurements": acts_csv.MEASUREMENTS,
            "measurement-simhit-map": acts_csv.MEASUREMENT_SIMHIT_MAP}[kind]


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim")
    write_events(SimulationConfig(sample="hnl", pileup=5, seed=3), out, 2, progress=False)
    return out


def test_simulated_files_take_the_fast_engine_with_the_careful_arrays(simulated: Path):
    for event in (0, 1):
        for kind in KINDS:
            path = acts_csv.event_path(simulated, event, kind)
            schema = schema_of(kind, path)
            got = fast(path, schema)
            if kind == "measurements":  # a string column (local_key): the careful reader's
                assert got is None
                continue
            assert got is not None, f"{kind}: the fast engine stepped aside"
            assert_same(got, careful(path, schema))
    # and the whole tables read through the public readers are those of the careful one
    path = acts_csv.event_path(simulated, 0, "hits")
    df = acts_csv.read_hits(path)
    assert list(df.columns) == [c for c in HITS.columns if c in df.columns]
    assert all(df[c].dtype == HITS.columns[c] for c in df.columns)


def test_a_column_subset_is_parsed_alone_with_the_careful_values(simulated: Path):
    path = acts_csv.event_path(simulated, 0, "hits")
    full = careful(path, HITS)
    subset = HITS.only(["particle_id", "tz", "index"])
    assert list(subset.columns) == ["particle_id", "tz", "index"]
    got = fast(path, subset)
    assert got is not None
    assert_same(got, {c: full[c] for c in subset.columns})
    # the truth reader: particle ids only, one row per hit, the full read's values
    ids = acts_csv.read_hits(path, particle_ids_only=True)
    assert list(ids.columns) == ["particle_id"] and len(ids) == len(full["particle_id"])
    assert ids["particle_id"].to_numpy().tobytes() == full["particle_id"].tobytes()
    assert ids.index.equals(pd.RangeIndex(len(ids)))  # hit_id is still the row


def test_skipped_columns_must_be_clean_and_the_read_ones_are_still_checked(tmp_path: Path):
    path = tmp_path / "event000000000-hits.csv"
    # a stray quoted token in a skipped column: not this engine's, the careful one reads it
    path.write_text('particle_id,tx\n5,"1.0"\n6,2.0\n')
    assert fast(path, HITS.only(["particle_id"])) is None
    ids = acts_csv.read_hits(path, particle_ids_only=True)
    assert ids["particle_id"].tolist() == [5, 6]
    # a float token in the particle id column: still refused with its line and column
    path.write_text("particle_id,tx\n5,1.0\n6.5,2.0\n")
    with pytest.raises(InputFormatError, match=r"line 3.*particle_id|particle_id.*line 3"):
        acts_csv.read_hits(path, particle_ids_only=True)


def test_random_float32_and_extreme_ids_round_trip_through_both_engines(tmp_path: Path):
    rng = np.random.default_rng(7)
    n = 2000
    bits = rng.integers(0, 2**32, size=n, dtype=np.uint64).astype(np.uint32)
    values = bits.view(np.float32)
    values = np.where(np.isfinite(values) & (np.abs(values) < 1e30), values,
                      np.float32(0.5)).astype(F32)
    ids = rng.integers(0, 10**19, size=n, dtype=np.uint64)  # above 2**53, up to 19 digits
    ids[:3] = [0, 10**19 - 1, 2**53 + 1]
    df = pd.DataFrame({
        "measurement_id_1": np.arange(n, dtype=U64), "measurement_id_2": np.arange(n, dtype=U64),
        "geometry_id_1": ids, "geometry_id_2": ids[::-1].copy(),
        "x": np.clip(values, -1e4, 1e4), "y": values * np.float32(1e-3),
        "z": np.float32(-1500.0) + np.zeros(n, F32), "t": values,
        "var_r": np.abs(values), "var_z": np.zeros(n, F32)})
    path = tmp_path / "event000000001-spacepoint.csv"
    acts_csv.write_table(path, df, SPACEPOINT)
    got = fast(path, SPACEPOINT)
    assert got is not None, "the fast engine stepped aside"
    assert_same(got, careful(path, SPACEPOINT))


TINY = TableSchema("tiny", {"u": U64, "i": I32, "p": U32, "f": F32})


@pytest.mark.parametrize("row", [
    "+5,1,1,1.5", "007,-0,0,.5", "1,+7,3,5.", "1,-2147483648,1,1e5", "1,1,1,1E-5",
    "1,1,1,-0", "1,1,1,1e39", "1,1,1,+.5e-3",
    # not the fast engine's: the careful reader decides (value or located error)
    "1.5,1,1,1", "1e3,1,1,1", "-1,1,1,1", "1,1,-1,1", "18446744073709551615,1,1,1",
    "18446744073709551616,1,1,1", "1,2147483648,1,1", "1,1,4294967296,1", "1,,1,1",
    "1,1,1,", "1,1,1,nan", "1,1,1,inf", " 1,1,1,1", "1 ,1,1,1", "1,1,1,1\r", "1,1,1",
    "1,1,1,1,1", "1,1,1,-", "1,+,1,1", "1,1-2,1,1", "1,1,1,0x10", '"1",1,1,1', "1,1,1,1_0",
])
def test_fast_engine_gives_careful_values_or_steps_aside(tmp_path: Path, row: str):
    path = tmp_path / "event000000000-tiny.csv"
    path.write_text(f"u,i,p,f\n1,1,1,1\n{row}\n2,2,2,2\n")
    got = fast(path, TINY)
    try:
        want = careful(path, TINY)
    except InputFormatError:
        assert got is None  # the careful reader refuses it: the fast engine must not read it
        return
    if got is not None:
        assert_same(got, want)


@pytest.mark.parametrize(("token", "column", "why"), [
    ("1.5", "measurement_id_1", "cannot parse '1.5' as uint64"),  # loadtxt would give 1
    ("-1", "geometry_id_1", "negative value in an unsigned column"),  # ... 2**64-1
    ("18446744073709551616", "geometry_id_2", "out of range"),  # ... 0
])
def test_a_bad_value_in_a_clean_looking_file_is_located(tmp_path: Path, token, column, why):
    rows = ["0,0,5,5,1.0,2.0,3.0,0.0,0.1,0.1"] * 5
    fields = rows[3].split(",")
    fields[list(SPACEPOINT.columns).index(column)] = token
    rows[3] = ",".join(fields)
    path = tmp_path / "event000000004-spacepoint.csv"
    path.write_text(",".join(SPACEPOINT.columns) + "\n" + "\n".join(rows) + "\n")
    with pytest.raises(InputFormatError) as err:
        acts_csv.read_spacepoints(path)
    assert err.value.row == 5 and err.value.column == column and err.value.event == 4
    assert why in str(err.value) and path.name in str(err.value)


def test_truncated_and_empty_files_keep_their_errors(tmp_path: Path):
    header = ",".join(SPACEPOINT.columns)
    path = tmp_path / "event000000002-spacepoint.csv"
    path.write_text(header + "\n0,0,5,5,1,2,3,0,0.1,0.1\n1,1,5,5,1,2")
    with pytest.raises(InputFormatError, match="expected 10 fields") as err:
        acts_csv.read_spacepoints(path)
    assert err.value.row == 3
    path.write_text(header + "\n")
    assert len(acts_csv.read_spacepoints(path)) == 0  # header only: an empty event
    path.write_text(header + "\n0,0,5,5,1,2,3,0,0.1,0.1\n\n1,1,5,5,1,2,3,0,0.1,1e300\n")
    with pytest.raises(InputFormatError) as err:  # blank line: careful reader, editor lines
        acts_csv.read_spacepoints(path)
    assert err.value.row == 4 and err.value.column == "var_z"


@pytest.mark.parametrize("rows", [0, 1, 1000])
def test_integer_tables_are_written_as_pandas_writes_them(tmp_path: Path, rows: int):
    rng = np.random.default_rng(rows)
    ids = rng.integers(0, 2**64 - 1, size=rows, dtype=np.uint64, endpoint=True)
    if rows:
        ids[0] = 2**64 - 1
    table = pd.DataFrame({"measurement_id": ids,
                          "hit_id": rng.integers(0, 10**6, size=rows).astype(U64)})
    path = tmp_path / "event000000000-measurement-simhit-map.csv"
    acts_csv.write_table(path, table, acts_csv.MEASUREMENT_SIMHIT_MAP)
    assert path.read_text() == table.to_csv(index=False, lineterminator="\n")
    labels = rng.integers(-1, 50, size=rows)
    tracks = tmp_path / "event000000000-tracks.csv"
    acts_csv.write_tracks_csv(tracks, labels)
    assert tracks.read_text() == pd.DataFrame(
        {"spacepoint_id": np.arange(rows), "track_id": labels}).to_csv(
            index=False, lineterminator="\n")
    back = acts_csv.read_measurement_simhit_map(path)  # 20-digit ids: the careful reader's
    assert_same({c: back[c].to_numpy() for c in table}, {c: table[c].to_numpy() for c in table})
