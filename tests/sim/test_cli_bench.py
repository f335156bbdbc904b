"""`sonic-exatrkx simulate` / `bench sim` command functions and the benchmark helper."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from sonic_exatrkx.cli.simulate import bench_sim_cmd, simulate
from sonic_exatrkx.sim.bench import bench_sim, format_table

app = typer.Typer()
app.command("simulate")(simulate)
app.command("bench-sim")(bench_sim_cmd)
runner = CliRunner()


def test_simulate_writes_events_geometry_and_plot(tmp_path) -> None:
    out = tmp_path / "hnl"
    result = runner.invoke(app, ["simulate", "--sample", "hnl", "--events", "2", "--skip", "3",
                                 "--pileup", "0", "--output", str(out), "--plot",
                                 "--no-progress"])
    assert result.exit_code == 0, result.output
    names = {p.name for p in out.iterdir()}
    for event in (3, 4):
        for stem in ("spacepoint", "hits", "particles", "measurements",
                     "measurement-simhit-map"):
            assert f"event{event:09d}-{stem}.csv" in names
    assert "detector.csv" in names
    assert "event000000003-display.png" in names
    assert "wrote 2 hnl events" in result.output


def test_bad_options_name_the_option(tmp_path) -> None:
    cases = [
        (["--sample", "higgs"], "--sample"),
        (["--pileup", "-1"], "--pileup"),
        (["--events", "-2"], "--events"),
        (["--noise-fraction", "1.5"], "--noise-fraction"),
        (["--efficiency", "2"], "--efficiency"),
    ]
    for args, option in cases:
        result = runner.invoke(app, ["simulate", *args, "--output", str(tmp_path / "x"),
                                     "--no-progress"])
        assert result.exit_code != 0, args
        assert option in result.output, (args, result.output)
    assert not (tmp_path / "x").exists() or not any((tmp_path / "x").iterdir())


def test_bench_function_and_command() -> None:
    rows = bench_sim(samples=("hnl", "minbias"), events=2, pileups=(0,), time_budget=5)
    assert [(r.sample, r.pileup, r.events) for r in rows] == [("hnl", 0, 2), ("minbias", 0, 2)]
    assert all(r.events_per_s > 0 and r.hits_per_event > 0 for r in rows)
    assert "events/s" in format_table(rows)
    result = runner.invoke(app, ["bench-sim", "--events", "1", "--pileup", "0", "--pileup", "1"])
    assert result.exit_code == 0, result.output
    assert "events/s" in result.output and "hnl" in result.output
    bad = runner.invoke(app, ["bench-sim", "--sample", "nope"])
    assert bad.exit_code != 0 and "--sample" in bad.output
