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


# --- what users bring: ACTS output without space points, one event file, NaN hits, ----
# --- duplicates in every reader, TrackML truth weights ----------------------------------


def _without_spacepoints(events_dir, dst):
    shutil.copytree(events_dir, dst)
    for path in dst.glob("event*-spacepoint.csv"):
        path.unlink()
    return dst


def test_acts_output_without_spacepoints_is_refused_with_the_option_to_use(sim_events,
                                                                            tmp_path):
    folder = _without_spacepoints(sim_events, tmp_path / "in")
    seq = job(tmp_path / "out")
    seq.add_reader(CsvEventReader(folder))
    with pytest.raises(InputFormatError, match=r"no event\*-spacepoint.csv files; .*this ACTS "
                                               r"output has measurements and hits but no space "
                                               r"points: --spacepoints-from measurements"):
        seq.run()


def test_spacepoints_from_measurements_with_truth(sim_events, tmp_path):
    folder = _without_spacepoints(sim_events, tmp_path / "in")
    reader = CsvEventReader(folder, kinds=("spacepoint", "particles"), truth=True,
                            spacepoints_from="measurements")
    seq = job(tmp_path / "out")
    seq.add_reader(reader)
    sps, pids = Collect("spacepoints", name="Sps"), Collect(SPACEPOINT_PARTICLE_IDS,
                                                            np.ndarray, name="Pids")
    seq.add_writer(sps)
    seq.add_writer(pids)
    assert seq.run().processed == 4
    unplaced = 0
    for event in range(4):
        tables = acts_csv.read_event(sim_events, event, ["measurements", "hits",
                                                         "measurement-simhit-map"])
        meas, hits, links = (tables[k] for k in ("measurements", "hits",
                                                 "measurement-simhit-map"))
        placed = meas["measurement_id"].isin(links["measurement_id"]).to_numpy()
        unplaced += int((~placed).sum())
        sp = sps.items[event]
        assert sp["measurement_id"].tolist() == meas["measurement_id"][placed].tolist()
        first_hit = links.drop_duplicates("measurement_id").set_index("measurement_id")
        rows = first_hit.loc[sp["measurement_id"], "hit_id"].to_numpy(np.intp)
        np.testing.assert_array_equal(sp["x"], hits["tx"].to_numpy()[rows])
        # Every built space point has a simulated hit, so a particle (no noise).
        np.testing.assert_array_equal(pids.items[event],
                                      hits["particle_id"].to_numpy()[rows])
    assert unplaced > 0  # the toy simulation writes noise measurements without a hit
    assert reader.counts.unplaced_measurements == unplaced
    assert f"{unplaced} measurements without a simulated hit left out" in reader.counts.line()


def test_spacepoints_from_hits_with_truth(sim_events, tmp_path):
    folder = _without_spacepoints(sim_events, tmp_path / "in")
    seq = job(tmp_path / "out")
    seq.add_reader(CsvEventReader(folder, truth=True, spacepoints_from="hits"))
    sps, pids = Collect("spacepoints", name="Sps"), Collect(SPACEPOINT_PARTICLE_IDS,
                                                            np.ndarray, name="Pids")
    seq.add_writer(sps)
    seq.add_writer(pids)
    seq.run()
    hits = acts_csv.read_hits(acts_csv.event_path(sim_events, 2, "hits"))
    assert len(sps.items[2]) == len(hits)
    np.testing.assert_array_equal(sps.items[2]["z"], hits["tz"])
    np.testing.assert_array_equal(pids.items[2], hits["particle_id"])


def test_one_event_file_as_input(sim_events, reference_data, tmp_path):
    event_file = acts_csv.event_path(sim_events, 2, "spacepoint")
    reader = CsvEventReader(event_file, truth=True)
    assert reader.available_events() == [2]
    seq = job(tmp_path / "a")
    seq.add_reader(reader)
    sps = Collect("spacepoints", name="Sps")
    seq.add_writer(sps)
    assert seq.run().events == [2]
    pd.testing.assert_frame_equal(sps.items[2], acts_csv.read_spacepoints(event_file))
    hits_file = reference_data / "phoenix/fatras/event000000000-hits.csv"
    assert TrackMLReader(hits_file, nonfinite="drop").available_events() == [0]
    # The event of the file named, with the kinds the reader needs from its folder.
    folder = _without_spacepoints(sim_events, tmp_path / "b")
    acts_csv.event_path(folder, 3, "hits").rename(folder / "event000000003-spacepoint.csv")
    with pytest.raises(InputFormatError, match="event 3 has no hits file"):
        CsvEventReader(folder / "event000000003-spacepoint.csv",
                       spacepoints_from="hits").available_events()


def _trackml_event(folder, x, particle, weight=None):
    """A small TrackML event: hits at (x, 30, 0), their truth (and weights), particles."""
    folder.mkdir(parents=True, exist_ok=True)
    n = len(x)
    pd.DataFrame({"hit_id": np.arange(1, n + 1), "x": x, "y": 30.0, "z": 0.0,
                  "volume_id": 8, "layer_id": 2, "module_id": 1}).to_csv(
        folder / "event000000004-hits.csv", index=False)
    truth = pd.DataFrame({"hit_id": np.arange(1, n + 1), "particle_id": particle,
                          **{c: 0.0 for c in ("tx", "ty", "tz", "tpx", "tpy", "tpz")}})
    if weight is not None:
        truth["weight"] = weight
    truth.to_csv(folder / "event000000004-truth.csv", index=False)
    ids = sorted(set(particle) - {0})
    pd.DataFrame({"particle_id": ids, "vx": 0.0, "vy": 0.0, "vz": 0.0, "px": 2.0,
                  "py": 0.0, "pz": 1.0, "q": 1, "nhits": 2}).to_csv(
        folder / "event000000004-particles.csv", index=False)


def test_trackml_reader_weights_particles_and_duplicates(tmp_path):
    # Hits 2 and 4 repeat hit 1's position: dropped with their truth and weight.
    _trackml_event(tmp_path / "in", [40.0, 40.0, 50.0, 40.0, 60.0], [7, 7, 8, 9, 0],
                   [0.1, 0.2, 0.3, 0.4, 0.0])
    reader = TrackMLReader(tmp_path / "in", particles=True, weights=True,
                           duplicates="drop")
    seq = job(tmp_path / "out")
    seq.add_reader(reader)
    collected = {key: Collect(key, kind, name=key) for key, kind in (
        ("spacepoints", pd.DataFrame), (SPACEPOINT_PARTICLE_IDS, np.ndarray),
        ("spacepoint_weights", np.ndarray), ("particles", pd.DataFrame))}
    for writer in collected.values():
        seq.add_writer(writer)
    seq.run()
    assert collected["spacepoints"].items[4]["measurement_id"].tolist() == [1, 3, 5]
    assert collected[SPACEPOINT_PARTICLE_IDS].items[4].tolist() == [7, 8, 0]
    np.testing.assert_array_equal(collected["spacepoint_weights"].items[4],
                                  np.array([0.1, 0.3, 0.0], np.float32))
    assert collected["particles"].items[4]["particle_id"].tolist() == [7, 8, 9]
    assert (reader.counts.duplicates_found, reader.counts.duplicates_dropped) == (2, 2)
    assert reader.has_weights()
    _trackml_event(tmp_path / "plain", [40.0, 50.0], [7, 8])
    assert not TrackMLReader(tmp_path / "plain").has_weights()
    seq = job(tmp_path / "out2")
    seq.add_reader(TrackMLReader(tmp_path / "plain", weights=True))
    with pytest.raises(AlgorithmError, match=r"event000000004-truth.csv line 1, column "
                                             r"'weight': no 'weight' column"):
        seq.run()


def test_trackml_test_events_need_no_truth(tmp_path):
    _trackml_event(tmp_path / "in", [40.0, 50.0], [7, 8])
    (tmp_path / "in" / "event000000004-truth.csv").unlink()
    seq = job(tmp_path / "out")
    seq.add_reader(TrackMLReader(tmp_path / "in", truth=False))
    sps = Collect("spacepoints", name="Sps")
    seq.add_writer(sps)
    seq.run()
    assert sps.items[4]["x"].tolist() == [40.0, 50.0]


def test_root_reader_handles_duplicates_and_nonfinite(sim_events, tmp_path, caplog):
    sp = acts_csv.read_spacepoints(acts_csv.event_path(sim_events, 0, "spacepoint"))
    doubled = pd.concat([sp, sp.iloc[[3]]], ignore_index=True)
    doubled.loc[5, "z"] = np.nan
    with acts_root.SpacePointRootWriter(tmp_path / "sp.root") as writer:
        writer.write(0, doubled)
    with caplog.at_level(logging.WARNING):
        warned = RootSpacePointReader(tmp_path / "sp.root", nonfinite="drop")
        seq = job(tmp_path / "w")
        seq.add_reader(warned)
        kept = Collect("spacepoints")
        seq.add_writer(kept)
        seq.run()
    assert len(kept.items[0]) == len(sp) and warned.counts.duplicates_found == 1
    assert "event 0: 1 of" in caplog.text and "dropping 1 of" in caplog.text
    assert warned.counts.line() == ("input (1 events read): 1 space points with non-finite "
                                    "positions dropped (--nonfinite drop); 1 duplicated space "
                                    "points kept (--drop-duplicates drops them)")
    dropped = RootSpacePointReader(tmp_path / "sp.root", nonfinite="drop", duplicates="drop")
    seq = job(tmp_path / "d")
    seq.add_reader(dropped)
    kept = Collect("spacepoints")
    seq.add_writer(kept)
    seq.run()
    assert len(kept.items[0]) == len(sp) - 1 and dropped.counts.duplicates_dropped == 1
    seq = job(tmp_path / "e")
    seq.add_reader(RootSpacePointReader(tmp_path / "sp.root"))
    with pytest.raises(AlgorithmError, match=r"sp.root, column 'z': event 0, space point 5: "
                                             r"non-finite z = nan"):
        seq.run()
    with pytest.raises(ConfigurationError, match="RootSpacePointReader: nonfinite must be"):
        RootSpacePointReader(tmp_path / "sp.root", nonfinite="keep")


def test_make_reader_passes_the_input_options_to_every_format(sim_events, tmp_path):
    from algorithms.chains import make_reader
    from algorithms.input_options import InputOptions

    options = InputOptions(duplicates="drop", nonfinite="drop")
    with acts_root.SpacePointRootWriter(tmp_path / "sp.root") as writer:
        writer.write(0, acts_csv.read_spacepoints(acts_csv.event_path(sim_events, 0,
                                                                      "spacepoint")))
    for path, fmt in ((sim_events, "csv"), (tmp_path / "sp.root", "root")):
        reader = make_reader(path, input_format=fmt, truth=False, options=options)
        assert (reader.options.duplicates, reader.options.nonfinite) == ("drop", "drop")
    _trackml_event(tmp_path / "w", [40.0, 50.0], [7, 8], [0.5, 0.5])
    weighted = make_reader(tmp_path / "w", input_format="trackml", options=options)
    assert weighted.weights is not None and weighted.particles is not None
    assert weighted.options == options
    _trackml_event(tmp_path / "u", [40.0, 50.0], [7, 8])
    assert make_reader(tmp_path / "u", input_format="trackml").weights is None
    with pytest.raises(ConfigurationError, match="a ROOT file is read whole"):
        make_reader(tmp_path / "sp.root", input_format="root",
                    options=InputOptions(on_bad_event="skip"))
    with pytest.raises(ConfigurationError, match="nonfinite must be one of"):
        InputOptions(nonfinite="keep")
