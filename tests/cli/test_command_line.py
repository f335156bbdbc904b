"""The command line a user types: one set of choices (enums listed in --help, refused by
typer before any import work), `--help` without torch, one version, a quiet log."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from enum import Enum
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sonic_exatrkx.cli import choices
from sonic_exatrkx.cli.main import app, configure_logging

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()
HEAVY = ("torch", "faiss", "tritonclient", "uproot", "awkward", "distributed")

#: Runs ``python -m sonic_exatrkx ARGS`` (or a script) in this process, then prints, as
#: the last line, the heavy top-level modules it imported and the exit code.
PROBE = """
import json, runpy, sys
target, args = sys.argv[1], sys.argv[2:]
sys.argv = [target, *args]
code = 0
try:
    if target.endswith(".py"):
        runpy.run_path(target, run_name="__main__")
    else:
        runpy.run_module(target, run_name="__main__")
except SystemExit as exc:
    code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
heavy = sorted({m.split(".")[0] for m in sys.modules} & set(json.loads(HEAVY)))
print(json.dumps({"heavy": heavy, "code": code}))
"""


def probe(target: str, *args: str) -> tuple[dict, str]:
    """(the probe's verdict, everything the command printed)."""
    code = PROBE.replace("json.loads(HEAVY)", repr(list(HEAVY)))
    result = subprocess.run([sys.executable, "-c", code, target, *args], cwd=ROOT,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.stdout.strip(), result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1]), result.stdout + result.stderr


@pytest.mark.parametrize("command", [[], ["run"], ["serve"], ["train"], ["simulate"],
                                     ["merge"], ["bench"]], ids=lambda c: " ".join(c) or "app")
def test_help_imports_no_torch(command):
    verdict, output = probe("sonic_exatrkx", *command, "--help")
    assert verdict == {"heavy": [], "code": 0}, output
    assert "Usage" in output


def test_run_help_importtime_names_no_torch():
    """The measurement the issue gives: `-X importtime ... run --help | grep -c torch` is 0."""
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "sonic_exatrkx", "run",
                             "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert "import time:" in result.stderr
    assert [line for line in result.stderr.splitlines() if "torch" in line] == []


@pytest.mark.parametrize("script", sorted((ROOT / "examples").glob("*.py")),
                         ids=lambda p: p.name)
def test_example_help_imports_no_torch(script):
    verdict, output = probe(str(script), "--help")
    assert verdict == {"heavy": [], "code": 0}, output


@pytest.mark.parametrize(("args", "option"), [
    (["run", "--inference", "cloud"], "--inference"),
    (["run", "--mode", "eventually"], "--mode"),
    (["run", "--protocol", "ftp"], "--protocol"),
    (["run", "--service-option", "S9"], "--service-option"),
    (["run", "--input-format", "xml"], "--input-format"),
    (["run", "--root-layout", "nested"], "--root-layout"),
    (["run", "--on-timeout", "ignore"], "--on-timeout"),
    (["run", "--compression", "zstd"], "--compression"),
    (["run", "--executor", "spark"], "--executor"),
    (["simulate", "--sample", "higgs"], "--sample"),
    (["train", "--track-builder", "hough"], "--track-builder"),
    (["bench", "sim", "--sample", "higgs"], "--sample"),
])
def test_a_wrong_choice_is_refused_before_any_import_work(args, option):
    verdict, output = probe("sonic_exatrkx", *args)
    assert verdict == {"heavy": [], "code": 2}, output
    assert "Invalid value" in output and option in output


def _enum_options():
    """(command path, option, words) for every enum-typed option of every command, read
    from the command functions' annotations."""
    import typing

    def commands(typer_app, path):
        for info in typer_app.registered_commands:
            yield [*path, info.name or info.callback.__name__], info.callback
        for group in typer_app.registered_groups:
            yield from commands(group.typer_instance, [*path, group.name])

    found = []
    for path, callback in commands(app, []):
        for name, hint in typing.get_type_hints(callback, include_extras=True).items():
            if typing.get_origin(hint) is not typing.Annotated:
                continue
            inner, info = typing.get_args(hint)[:2]
            kinds = [inner, *typing.get_args(inner)]
            enum = next((k for k in kinds if isinstance(k, type) and issubclass(k, Enum)), None)
            if enum is not None:
                decls = [d for d in (getattr(info, "param_decls", None) or ())
                         if d.startswith("--")]
                option = decls[0] if decls else "--" + name.replace("_", "-")
                found.append((path, option, choices.values(enum)))
    return found


def test_every_choice_is_listed_in_help():
    options = _enum_options()
    assert len(options) >= 12
    for path, opt, words in options:
        result = runner.invoke(app, [*path, "--help"], terminal_width=200,
                               env={"COLUMNS": "200"})
        text = re.sub(r"[\s│]+", " ", result.output)
        assert opt in text, (path, opt)
        for word in words:
            assert str(word) in text, (path, opt, word)


def test_choices_are_the_library_words():
    from algorithms.exatrkx_track_finding import INFERENCE
    from algorithms.input_options import NONFINITE
    from sonic_exatrkx.exatrkx.pipeline import GRAPH_CONSTRUCTIONS
    from sonic_exatrkx.exatrkx.tracks import TRACK_BUILDERS
    from sonic_exatrkx.io.spacepoints_from import SPACEPOINTS_FROM
    from sonic_exatrkx.sim.config import SAMPLES
    from sonic_exatrkx.sonic.options import BALANCE, COMPRESSION
    from sonic_exatrkx.sonic.producer import MODES
    from sonic_exatrkx.sonic.retry import ON_TIMEOUT
    from sonic_exatrkx.sonic.service_option import SERVICE_OPTIONS

    def words(enum: type[Enum]) -> set[str]:
        return set(choices.values(enum))

    assert words(choices.Inference) == set(INFERENCE)
    assert words(choices.Mode) == set(MODES)
    assert words(choices.ServiceOptionName) == set(SERVICE_OPTIONS)
    assert words(choices.OnTimeout) == set(ON_TIMEOUT)
    assert words(choices.Compression) == set(COMPRESSION) - {None}
    assert words(choices.Balance) == set(BALANCE)
    assert words(choices.Sample) == set(SAMPLES)
    assert words(choices.TrackBuilder) == set(TRACK_BUILDERS)
    assert words(choices.NonFinite) == set(NONFINITE)
    assert words(choices.SpacepointsFrom) == set(SPACEPOINTS_FROM)
    assert words(choices.GraphConstruction) == set(GRAPH_CONSTRUCTIONS)


def test_run_help_is_grouped_into_panels():
    result = runner.invoke(app, ["run", "--help"], terminal_width=200, env={"COLUMNS": "200"})
    assert result.exit_code == 0
    panels = re.findall(r"╭─ (.+?) ─", result.output)
    assert panels[1:] == ["Input/output", "Event loop", "ExaTrkX", "Triton service",
                          "Batch and Dask"]
    for option in ("--metrics-file", "--trace-file", "--on-timeout", "--compression",
                   "--tls-root-cert"):  # once only in examples/reco_triton.py
        assert option in result.output


def test_run_options_reach_the_job_config(monkeypatch, tmp_path):
    """--on-timeout, --compression and --trace-file end up in the one TritonOptions /
    TrackFindingConfig the job is built from."""
    import sonic_exatrkx.jobs as jobs

    seen = {}

    def capture(job, say):
        seen["job"] = job
        raise ValueError("stop here")

    monkeypatch.setattr(jobs, "run_reco_job", capture)
    result = runner.invoke(app, ["run", "-o", str(tmp_path), "--inference", "triton",
                                 "--server", "127.0.0.1:1", "--on-timeout", "fail",
                                 "--compression", "gzip", "--trace-file",
                                 str(tmp_path / "trace.csv")])
    assert "stop here" in result.output
    finder = seen["job"].finder
    assert finder.triton.retry.on_timeout == "fail"
    assert finder.triton.compression == "gzip"
    assert Path(finder.trace_file) == tmp_path / "trace.csv"


@pytest.mark.parametrize("command", [["run"], ["train"], ["simulate"], ["merge"]])
def test_every_command_that_writes_takes_dash_o(command):
    result = runner.invoke(app, [*command, "--help"], terminal_width=200,
                           env={"COLUMNS": "200"})
    assert re.search(r"--output\s+-o\b", result.output), result.output


def test_version_has_one_source():
    from importlib.metadata import version

    try:
        import tomllib
    except ImportError:  # Python 3.10
        pytest.skip("tomllib needs Python >= 3.11")
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert version("sonic-exatrkx") == declared
    result = subprocess.run([sys.executable, "-m", "sonic_exatrkx", "--version"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0 and result.stdout.strip() == f"sonic-exatrkx {declared}"
    assert runner.invoke(app, ["--version"]).output.strip() == f"sonic-exatrkx {declared}"


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    saved = (root.level, list(root.handlers), logging.getLogger("sonic_exatrkx").level,
             logging.getLogger("sonic_exatrkx.server.launcher").level)
    yield
    root.setLevel(saved[0])
    root.handlers[:] = saved[1]
    logging.getLogger("sonic_exatrkx").setLevel(saved[2])
    logging.getLogger("sonic_exatrkx.server.launcher").setLevel(saved[3])


def _log_all():
    lib = logging.getLogger("distributed.scheduler")
    lib.setLevel(logging.INFO)  # as distributed configures itself
    lib.info("State start")
    lib.warning("worker lost")
    logging.getLogger("faiss.loader").info("Loading faiss with AVX2 support.")
    logging.getLogger("sonic_exatrkx.Sequencer").info("processing 3 events")
    logging.getLogger("sonic_exatrkx.Sequencer").debug("event 0 done")
    logging.getLogger("sonic_exatrkx.server.launcher").info("Triton server 1 ready")


def test_log_default_shows_ours_at_info_and_others_from_warning(restore_logging, capsys):
    configure_logging()
    _log_all()
    err = capsys.readouterr().err
    assert "processing 3 events" in err and "worker lost" in err
    for quiet in ("State start", "Loading faiss", "event 0 done",
                  "Triton server 1 ready"):  # the launcher's line: `serve` says it itself
        assert quiet not in err


def test_log_verbose_and_quiet(restore_logging, capsys):
    configure_logging(verbose=True)
    _log_all()
    err = capsys.readouterr().err
    for line in ("State start", "Loading faiss", "event 0 done", "Triton server 1 ready"):
        assert line in err
    configure_logging(quiet=True)
    _log_all()
    err = capsys.readouterr().err
    assert "worker lost" in err and "processing 3 events" not in err
    ours = [h for h in logging.getLogger().handlers if type(h).__name__ == "_StderrHandler"]
    assert len(ours) == 1  # configured twice, one handler: no line printed twice


def test_verbose_and_quiet_exclude_each_other():
    result = runner.invoke(app, ["-v", "-q", "run", "--help"])
    assert result.exit_code == 2 and "--quiet" in result.output


def test_local_run_says_every_line_once(tmp_path):
    """No line both as a log record and on stdout, no third-party INFO lines."""
    result = subprocess.run([sys.executable, "-m", "sonic_exatrkx", "run", "-n", "1", "-o",
                             str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    logged = [line.split(" INFO ", 1)[-1].strip() for line in result.stderr.splitlines()]
    for line in result.stderr.splitlines():
        if " INFO " in line:
            assert line.split()[2].startswith("sonic_exatrkx"), line
    said = [line.strip() for line in result.stdout.splitlines() if line.strip()]
    assert said and not set(said) & set(logged)
    assert len(said) == len(set(said)), said
