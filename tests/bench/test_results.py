"""Results on disk, the trial statistics, and `bench compare` on two tiny runs."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from sonic_exatrkx.bench.results import (
    ResultsError,
    Stat,
    StudyResult,
    ratio_by_trial,
    summarize,
)
from sonic_exatrkx.bench.suite import compare_runs, run_study, study_config
from tests.bench.conftest import check_folder


def test_stat_and_summaries():
    assert Stat.of([3.0, 1.0, 2.0, float("nan")]) == Stat(2.0, 1.0, 3.0, 3)
    assert Stat.of([]).trials == 0 and Stat.of([]).text() == "-"
    assert Stat.of([2.0]).text() == "2.00" and Stat.of([1, 3]).text(".1f") == "2.0 (1.0-3.0)"
    rows = pd.DataFrame({"trial": [0, 0, 1, 1, 2, 2], "path": ["a", "b"] * 3,
                         "rate": [10.0, 5.0, 12.0, 4.0, 11.0, 6.0]})
    s = summarize(rows, ["path"], ["rate"]).set_index("path")
    assert s.loc["a", "rate"] == 11.0 and s.loc["a", "rate_low"] == 10.0
    assert s.loc["b", "rate_high"] == 6.0 and s.loc["b", "trials"] == 3
    # ratios within each trial: 10/5, 12/4, 11/6, then their median
    ratio = ratio_by_trial(rows, "rate", {"path": "a"}, {"path": "b"})[None]
    assert ratio.median == pytest.approx(2.0) and ratio.high == pytest.approx(3.0)


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(ResultsError, match="result.json: not found"):
        StudyResult.load(tmp_path)
    (tmp_path / "result.json").write_text("{not json")
    (tmp_path / "raw.csv").write_text("trial\n0\n")
    with pytest.raises(ResultsError, match=r"result\.json: cannot be read"):
        StudyResult.load(tmp_path)
    (tmp_path / "result.json").write_text(json.dumps({"study": "x"}))
    with pytest.raises(ResultsError, match="key 'settings' missing"):
        StudyResult.load(tmp_path)


@pytest.mark.triton
def test_compare_overlays_two_runs(served_settings, tmp_path):
    settings = {**served_settings, "events": 2, "trials": 1}
    for run in ("before", "after"):
        config = study_config("throughput", settings=settings, options={"concurrency": (1,)})
        run_study(config, tmp_path / run)
    back = StudyResult.load(tmp_path / "before" / "throughput")
    assert back.study == "throughput" and len(back.rows) == 4  # paths x 1 concurrency
    assert back.machine["cores"] >= 1 and back.settings["settings"]["events"] == 2
    path = compare_runs([tmp_path / "before", tmp_path / "after"], tmp_path / "cmp")
    text = path.read_text()
    assert "| figure | before | after |" in text
    assert "| best custom events/s |" in text
    check_folder_pngs = ["throughput.png", "latency.png"]
    for name in check_folder_pngs:
        assert (tmp_path / "cmp" / "throughput" / name).is_file()
    import matplotlib.image

    assert matplotlib.image.imread(tmp_path / "cmp" / "throughput" / "throughput.png").ndim == 3
    # a study folder itself can be given too, and labels name the runs
    path = compare_runs([tmp_path / "before" / "throughput", tmp_path / "after"],
                        tmp_path / "cmp2", labels=["A", "B"])
    assert "| figure | A | B |" in path.read_text()
    with pytest.raises(Exception, match="at least two"):
        compare_runs([tmp_path / "before"], tmp_path / "cmp3")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ResultsError, match="no study results"):
        compare_runs([tmp_path / "before", tmp_path / "empty"], tmp_path / "cmp4")


def test_headline_json_has_no_nan(tmp_path):
    result = StudyResult("x", {"a": float("nan")}, pd.DataFrame({"trial": [0]}), {},
                         headline={"r": math.nan})
    result.write(tmp_path)
    payload = json.loads((tmp_path / "x" / "result.json").read_text())
    assert payload["headline"] == {"r": None} and payload["settings"] == {"a": None}
    check_folder(tmp_path / "x", [])
