"""Duplicated space points: the reader counts them and warns, or drops the repeats, and
out-of-detector coordinates are refused where they are read."""

from __future__ import annotations

import logging
import shutil

import pytest
from typer.testing import CliRunner

from sonic_exatrkx.cli.main import app
from sonic_exatrkx.io import acts_csv
from sonic_exatrkx.io.errors import InputFormatError
from sonic_exatrkx.paths import sample_events_dir

runner = CliRunner()


@pytest.fixture
def doubled(tmp_path):
    events = tmp_path / "events"
    shutil.copytree(sample_events_dir(), events)
    path = acts_csv.event_path(events, 0, "spacepoint")
    lines = path.read_text().splitlines()
    fields = lines[5].split(",")
    fields[0] = fields[1] = "999999"  # another measurement, the same position
    path.write_text("\n".join([*lines, ",".join(fields)]) + "\n")
    return events


def test_duplicates_warn_by_default_and_drop_on_request(doubled, tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        warned = runner.invoke(app, ["run", "-i", str(doubled), "-o", str(tmp_path / "w"),
                                     "--no-performance"])
    assert warned.exit_code == 0, warned.output
    assert "event 0: 1 of 1697 space points repeat another's x, y, z exactly" in caplog.text
    assert len(acts_csv.read_tracks_csv(acts_csv.event_path(tmp_path / "w" / "tracks", 0,
                                                            "tracks"))) == 1697
    dropped = runner.invoke(app, ["run", "-i", str(doubled), "-o", str(tmp_path / "d"),
                                  "--no-performance", "--drop-duplicates"])
    original = runner.invoke(app, ["run", "-o", str(tmp_path / "o"), "--no-performance"])
    assert dropped.exit_code == 0 and original.exit_code == 0
    for event in range(3):  # dropping the repeat gives back the original event exactly
        a, b = (acts_csv.event_path(tmp_path / f / "tracks", event, "tracks")
                for f in ("d", "o"))
        assert a.read_bytes() == b.read_bytes()


def test_coordinates_outside_any_detector_are_refused_with_their_line(tmp_path):
    events = tmp_path / "events"
    shutil.copytree(sample_events_dir(), events)
    path = acts_csv.event_path(events, 1, "spacepoint")
    lines = path.read_text().splitlines()
    fields = lines[3].split(",")
    fields[6] = "1e30"  # z
    lines[3] = ",".join(fields)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputFormatError) as err:
        acts_csv.read_spacepoints(path)
    assert str(err.value).startswith("event000000001-spacepoint.csv line 4, column 'z': "
                                     "z = 1e+30 mm is outside any detector")
    result = runner.invoke(app, ["run", "-i", str(events), "-o", str(tmp_path / "out")])
    assert result.exit_code == 1 and "line 4, column 'z'" in result.output
