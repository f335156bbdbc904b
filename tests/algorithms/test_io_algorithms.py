"""Reader/writer algorithms in real jobs: round trips, truth, bad events, determinism."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pandas as pd
import pytest

from algorithms import (
    CsvEventReader,
    CsvEventWriter,
    CsvTrackWriter,
    RootSpacePointReader,
    RootSpacePointWriter,
    RootTrackWriter,
    TrackMLReader,
)
from algorithms.keys import SPACEPOINT_PARTICLE_IDS, TRACKS
from sonic_exatrkx.framework import (
    AlgorithmContext,
    AlgorithmError,
    ConfigurationError,
    ReadHandle,
    Sequencer,
    WriteHandle,
    Writer,
)
from sonic_exatrkx.framework.algorithm import Algorithm
from sonic_exatrkx.io import acts_csv, acts_root
from sonic_exatrkx.io.errors import InputFormatError


class Collect(Writer):
    """Keeps what a job put in the store, to compare with the files."""

    def __init__(self, key: str, kind: type = pd.DataFrame, name: str = "Collect"):
        super().__init__(name=name)
        self.handle = ReadHandle(self, key, kind)
        self.items: dict[int, object] = {}

    def execute(self, ctx: AlgorithmContext) -> None:
        self.items[ctx.event] = self.handle(ctx)


class FakeTracks(Algorithm):
    """Track id = particle index per space point: a deterministic stand-in producer."""

    def __init__(self):
        super().__init__()
        self.pids = ReadHandle(self, SPACEPOINT_PARTICLE_IDS, np.ndarray)
        self.out = WriteHandle(self, TRACKS, np.ndarray)

    def execute(self, ctx: AlgorithmContext) -> None:
        _, labels = np.unique(self.pids(ctx), return_inverse=True)
        self.out(ctx, labels.astype(np.int64))


def job(tmp_path, **kw) -> Sequencer:
    return Sequencer(output_dir=tmp_path, progress=False, **kw)


def test_csv_to_root_to_csv_is_exact(sim_events, tmp_path):
    seq = job(tmp_path / "a")
    seq.add_reader(CsvEventReader(sim_events))
    seq.add_writer(RootSpacePointWriter(tmp_path / "sp.root"))
    seq.run()

    seq = job(tmp_path / "b")
    seq.add_reader(RootSpacePointReader(tmp_path / "sp.root"))
    seq.add_writer(CsvEventWriter(tmp_path / "csv"))
    assert seq.run().processed == 4
    for event in range(4):
        name = acts_csv.event_path(".", event, "spacepoint").name
        original = acts_csv.read_spacepoints(sim_events / name)
        copy = acts_csv.read_spacepoints(tmp_path / "csv" / name)
        pd.testing.assert_frame_equal(original, copy, check_exact=True)
        assert (tmp_path / "csv" / name).read_bytes() == (sim_events / name).read_bytes()


def test_truth_attached_per_spacepoint(sim_events, tmp_path):
    seq = job(tmp_path)
    seq.add_reader(CsvEventReader(sim_events, kinds=("spacepoint", "particles"), truth=True))
    pids = Collect(SPACEPOINT_PARTICLE_IDS, np.ndarray, name="Pids")
    parts = Collect("particles", name="Particles")
    seq.add_writer(pids)
    seq.add_writer(parts)
    seq.run()
    for event, ids in pids.items.items():
        assert ids.dtype == np.uint64
        real = ids[ids != 0]
        assert real.size > 0.5 * ids.size  # mu=0: mostly signal, some noise
        assert np.isin(real, parts.items[event]["particle_id"].to_numpy()).all()


def test_tracks_to_csv_and_root(sim_events, tmp_path):
    seq = job(tmp_path)
    seq.add_reader(CsvEventReader(sim_events, truth=True))
    seq.add_algorithm(FakeTracks())
    tracks = Collect(TRACKS, np.ndarray, name="Tracks")
    seq.add_writer(tracks)
    seq.add_writer(CsvTrackWriter(tmp_path / "tracks"))
    seq.add_writer(RootTrackWriter(tmp_path / "tracks.root"))
    seq.run()
    from_root = acts_root.read_tracks_root(tmp_path / "tracks.root")
    assert sorted(from_root) == [0, 1, 2, 3]
    for event, labels in tracks.items.items():
        path = acts_csv.event_path(tmp_path / "tracks", event, "tracks")
        assert path.name == f"event{event:09d}-tracks.csv"
        np.testing.assert_array_equal(acts_csv.read_tracks_csv(path), labels)
        np.testing.assert_array_equal(from_root[event], labels)


def test_reference_spacepoint_file_reads_and_round_trips(reference_data, tmp_path):
    src = reference_data / "exatrkx-cpp-ctd2022" / "triton_example" / "data"
    seq = job(tmp_path)
    seq.add_reader(CsvEventReader(src))
    seq.add_writer(RootSpacePointWriter(tmp_path / "ref.root", layout="jagged"))
    summary = seq.run()
    assert summary.events == [100]
    back = acts_root.read_spacepoints_root(tmp_path / "ref.root")[100]
    original = acts_csv.read_spacepoints(src / "event000000100-spacepoint.csv")
    assert len(back) == 1151
    assert list(back.columns) == ["measurement_id", "x", "y", "z", "var_r", "var_z"]
    pd.testing.assert_frame_equal(original, back, check_exact=True)


def test_trackml_fatras_event_with_nan_hits_is_an_error_by_default(reference_data, tmp_path):
    seq = job(tmp_path)
    seq.add_reader(TrackMLReader(reference_data / "phoenix" / "fatras"))
    with pytest.raises(AlgorithmError, match="event000000000-hits.csv line 96, column 'x'"):
        seq.run()


def test_trackml_reader_drops_nan_hits_on_request(reference_data, tmp_path):
    seq = job(tmp_path)
    seq.add_reader(TrackMLReader(reference_data / "phoenix" / "fatras", nonfinite="drop"))
    sps = Collect("spacepoints", name="Sps")
    pids = Collect(SPACEPOINT_PARTICLE_IDS, np.ndarray, name="Pids")
    seq.add_writer(sps)
    seq.add_writer(pids)
    seq.run()
    hits = pd.read_csv(reference_data / "phoenix/fatras/event000000000-hits.csv")
    truth = pd.read_csv(reference_data / "phoenix/fatras/event000000000-truth.csv")
    finite = hits["x"].notna().to_numpy()
    assert finite.sum() == 555
    assert len(sps.items[0]) == 555
    np.testing.assert_array_equal(sps.items[0]["measurement_id"], hits["hit_id"][finite])
    expected = truth.set_index("hit_id").loc[hits["hit_id"][finite], "particle_id"]
    np.testing.assert_array_equal(pids.items[0], expected.to_numpy(np.uint64))


def _corrupt(events_dir, dst, event: int):
    shutil.copytree(events_dir, dst)
    path = acts_csv.event_path(dst, event, "spacepoint")
    lines = path.read_text().splitlines()
    fields = lines[5].split(",")
    fields[4] = "abc"  # x
    lines[5] = ",".join(fields)
    path.write_text("\n".join(lines) + "\n")
    return path


def test_bad_event_fails_the_job_naming_file_line_and_column(sim_events, tmp_path):
    bad = _corrupt(sim_events, tmp_path / "in", 2)
    seq = job(tmp_path / "out")
    seq.add_reader(CsvEventReader(tmp_path / "in"))
    seq.add_writer(RootSpacePointWriter(tmp_path / "out" / "sp.root"))
    with pytest.raises(AlgorithmError) as info:
        seq.run()
    assert info.value.event == 2
    assert isinstance(info.value.cause, InputFormatError)
    assert f"{bad.name} line 6, column 'x'" in str(info.value)
    assert not (tmp_path / "out" / "sp.root").exists()  # nothing half-written
    assert not list((tmp_path / "out").glob("*.tmp*"))


def test_bad_event_can_be_skipped_with_a_warning(sim_events, tmp_path, caplog):
    _corrupt(sim_events, tmp_path / "in", 2)
    seq = job(tmp_path / "out")
    seq.add_reader(CsvEventReader(tmp_path / "in", on_bad_event="skip"))
    seq.add_writer(RootSpacePointWriter(tmp_path / "out" / "sp.root"))
    with caplog.at_level(logging.WARNING):
        summary = seq.run()
    assert summary.skipped == 1
    assert summary.processed == 3
    assert "skipping event 2" in caplog.text
    assert sorted(acts_root.read_spacepoints_root(tmp_path / "out" / "sp.root")) == [0, 1, 3]


def test_event_missing_one_file_kind(sim_events, tmp_path):
    shutil.copytree(sim_events, tmp_path / "in")
    acts_csv.event_path(tmp_path / "in", 1, "hits").unlink()
    seq = job(tmp_path / "out")
    seq.add_reader(CsvEventReader(tmp_path / "in", truth=True))
    with pytest.raises(AlgorithmError, match=r"event 1.*missing hits file for event 1"):
        seq.run()


def test_reader_configuration_is_validated(tmp_path):
    with pytest.raises(ConfigurationError, match="unknown file kinds"):
        CsvEventReader(tmp_path, kinds=("spacepoints",))
    with pytest.raises(ConfigurationError, match="on_bad_event must be one of"):
        CsvEventReader(tmp_path, on_bad_event="ignore")
    with pytest.raises(ConfigurationError, match="layout must be"):
        RootSpacePointWriter(tmp_path / "x.root", layout="columnar")


def test_wrong_directory_is_a_clear_error(tmp_path):
    seq = job(tmp_path)
    seq.add_reader(CsvEventReader(tmp_path / "nope"))
    with pytest.raises(InputFormatError, match="nope"):
        seq.run()


@pytest.mark.parametrize(("threads", "in_flight"), [(1, 1), (2, 8)])
def test_outputs_do_not_depend_on_threads(sim_events, tmp_path, threads, in_flight):
    ref = tmp_path / "ref"
    seq = job(ref, num_threads=1, max_in_flight=1)
    seq.add_reader(CsvEventReader(sim_events, truth=True))
    seq.add_algorithm(FakeTracks())
    seq.add_writer(CsvTrackWriter(ref))
    seq.add_writer(RootSpacePointWriter(ref / "sp.root"))
    seq.run()
    out = tmp_path / "run"
    seq = job(out, num_threads=threads, max_in_flight=in_flight)
    seq.add_reader(CsvEventReader(sim_events, truth=True))
    seq.add_algorithm(FakeTracks())
    seq.add_writer(CsvTrackWriter(out))
    seq.add_writer(RootSpacePointWriter(out / "sp.root"))
    seq.run()
    for path in sorted(ref.glob("*-tracks.csv")):
        assert (out / path.name).read_bytes() == path.read_bytes()
    a = acts_root.read_spacepoints_root(ref / "sp.root")
    b = acts_root.read_spacepoints_root(out / "sp.root")
    assert list(a) == list(b)
    for event in a:
        pd.testing.assert_frame_equal(a[event], b[event], check_exact=True)
