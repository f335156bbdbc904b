"""Running studies and comparing runs: what ``sonic-exatrkx bench STUDY``, ``bench all``
and ``bench compare`` call.

- :func:`study_config`: a study's configuration from its defaults (or its ``--quick``
  ones), with the options the user gave replacing them;
- :func:`run_study`: run one study, write ``DIR/<study>/`` (raw CSV, JSON with the
  machine and every setting, PNG plots, Markdown summary);
- :func:`run_all`: every study (``--quick``: small), one local server shared by those that
  can share it (the instances study starts its own, the scaling study needs none), and
  ``DIR/summary.md`` with every study's headline figures;
- :func:`compare_runs`: several run folders overlaid, plot by plot, and their headline
  figures side by side (``DIR/compare.md``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from sonic_exatrkx.bench.results import ResultsError, StudyResult, study_dirs
from sonic_exatrkx.bench.studies import STUDIES, BenchError, BenchSettings, study_of
from sonic_exatrkx.bench.studies.common import (
    SERVER_BATCHING_OPTION,
    Say,
    quiet,
    served,
    server_batching,
)

__all__ = ["QUICK", "compare_runs", "run_all", "run_named", "run_study", "study_config"]

#: ``--quick``: settings and options of each study for ``bench all --quick`` (the whole
#: suite in a few minutes on 2 cores; figures with 2 trials are indications only).
QUICK: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "throughput": ({"events": 16, "trials": 2}, {"concurrency": (1, 2, 4, 8)}),
    "instances": ({"events": 16, "trials": 2}, {"instances": (1, 2)}),
    "service-options": ({"events": 8, "trials": 2}, {}),
    "threads": ({"events": 16, "trials": 2}, {"threads": (1, 2)}),
    "latency": ({"events": 16, "trials": 2}, {"delays_ms": (0.0, 20.0, 50.0)}),
    "batching": ({"events": 16, "trials": 2}, {"events_per_request": (1, 2, 4, 8),
                                               "concurrency": (1, 2)}),
    "scaling": ({"events": 1, "trials": 2}, {}),
}


def study_config(name: str, *, quick: bool = False, settings: Mapping[str, Any] | None = None,
                 options: Mapping[str, Any] | None = None) -> Any:
    """The configuration of study ``name``: its defaults (``quick``: those of
    :data:`QUICK`), then ``settings`` (fields of :class:`BenchSettings`) and ``options``
    (fields of the study's config) replacing them."""
    if name not in STUDIES:
        raise BenchError(f"unknown study {name!r}; studies: {', '.join(STUDIES)}")
    config = STUDIES[name].config()
    quick_settings, quick_options = QUICK[name] if quick else ({}, {})
    try:
        base = replace(config.settings, **{**quick_settings, **dict(settings or {})})
        return replace(config, settings=base, **{**quick_options, **dict(options or {})})
    except TypeError as exc:  # an option this study does not have
        raise BenchError(f"{name}: {exc}") from None


def run_study(config: Any, output: Path, say: Say = quiet) -> StudyResult:
    """Run the study of ``config``; write its folder under ``output``."""
    from sonic_exatrkx.bench.machine import machine_info

    study = study_of(config)
    machine = machine_info()
    t0 = time.perf_counter()
    result = study.run(config, say)
    result.machine = machine
    result.duration_s = time.perf_counter() - t0
    folder = Path(output) / study.name
    folder.mkdir(parents=True, exist_ok=True)
    result.files = study.plot([("", result)], folder)
    result.write(Path(output))
    return result


def run_named(name: str, output: Path, *, quick: bool = False,
              settings: Mapping[str, Any] | None = None,
              options: Mapping[str, Any] | None = None, say: Say = quiet) -> StudyResult:
    """:func:`run_study` of :func:`study_config` (what ``bench STUDY`` calls)."""
    return run_study(study_config(name, quick=quick, settings=settings, options=options),
                     output, say)


def run_all(output: Path, *, quick: bool = False, settings: Mapping[str, Any] | None = None,
            studies: Sequence[str] | None = None, say: Say = quiet) -> list[StudyResult]:
    """Every study (or ``studies``), one after the other, into ``output``; a server
    started once is shared by the studies that can share one (unless ``settings`` names a
    server). Writes ``output/summary.md``."""
    names = list(studies or STUDIES)
    unknown = [n for n in names if n not in STUDIES]
    if unknown:
        raise BenchError(f"unknown studies {unknown}; studies: {', '.join(STUDIES)}")
    configs = {n: study_config(n, quick=quick, settings=settings) for n in names}
    sharing = [n for n in names if STUDIES[n].shares_server]
    results = []
    t0 = time.perf_counter()
    first = configs[names[0]].settings
    if sharing and first.server is None:
        shared = BenchSettings(models=first.models, protocol=first.protocol,
                               server_instances=first.server_instances,
                               server_threads=first.server_threads)
        with served(shared, repository_options={SERVER_BATCHING_OPTION: server_batching()},
                    say=say) as server:
            for n in names:
                if n in sharing:
                    configs[n] = replace(configs[n], settings=replace(
                        configs[n].settings, server=server.url))
            results = _each(names, configs, output, say)
    else:
        results = _each(names, configs, output, say)
    _write_index(output, results, time.perf_counter() - t0, quick)
    return results


def _each(names: Sequence[str], configs: Mapping[str, Any], output: Path, say: Say
          ) -> list[StudyResult]:
    results = []
    for n in names:
        say(f"== {n} ==")
        t0 = time.perf_counter()
        results.append(run_study(configs[n], output, say))
        say(f"{n}: done in {time.perf_counter() - t0:.0f} s")
    return results


def _write_index(output: Path, results: Sequence[StudyResult], seconds: float, quick: bool
                 ) -> Path:
    lines = [f"# Benchmark studies{' (quick)' if quick else ''}", "",
             f"{len(results)} studies in {seconds:.0f} s.", ""]
    if results:
        lines += [results[0].summary_lines()[2], ""]
    for r in results:
        lines += [f"## [{r.study}]({r.study}/summary.md)", ""]
        lines += [f"- {k}: {_fmt(v)}" for k, v in r.headline.items()]
        lines += [f"- {n}" for n in r.notes]
        lines += [""] + [f"![{f}]({r.study}/{f})" for f in r.files if f.endswith(".png")]
        lines.append("")
    path = Path(output) / "summary.md"
    path.write_text("\n".join(lines))
    return path


def _fmt(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def compare_runs(folders: Sequence[Path], output: Path, labels: Sequence[str] | None = None
                 ) -> Path:
    """Overlay the runs in ``folders`` (run folders of ``bench all`` or study folders):
    for every study present in at least two, its plots with one line style per run, in
    ``output/<study>/``; every headline figure side by side in ``output/compare.md``."""
    if len(folders) < 2:
        raise BenchError("compare needs at least two result folders")
    names = list(labels) if labels else _labels(folders)
    if len(names) != len(folders):
        raise BenchError(f"{len(folders)} folders but {len(names)} labels")
    found = [study_dirs(Path(f)) for f in folders]
    runs: dict[str, list[tuple[str, StudyResult]]] = {}
    for name, dirs in zip(names, found, strict=True):
        for study, folder in dirs.items():
            runs.setdefault(study, []).append((name, StudyResult.load(folder)))
    compared = {s: r for s, r in runs.items() if len(r) >= 2 and s in STUDIES}
    if not compared:
        raise ResultsError("no study appears in two of these folders: "
                           + "; ".join(f"{f}: {', '.join(d) or 'none'}"
                                       for f, d in zip(folders, found, strict=True)))
    output = Path(output)
    lines = ["# Comparison", "", "| run | folder | machine | commit | started |",
             "|---|---|---|---|---|"]
    for name, folder in zip(names, folders, strict=True):
        first = next(r for rs in runs.values() for n, r in rs if n == name)
        m = first.machine
        gpu = ", ".join(g["name"] for g in m.get("gpus") or []) or "no GPU"
        commit = ((m.get("git") or {}).get("commit") or "?")[:12]
        lines.append(f"| {name} | {folder} | {m.get('cpu_model')} ({m.get('usable_cores')} "
                     f"cores), {gpu} | {commit} | {first.started} |")
    for study, items in compared.items():
        folder = output / study
        folder.mkdir(parents=True, exist_ok=True)
        files = STUDIES[study].plot(items, folder)
        lines += ["", f"## {study}", "", "| figure | " + " | ".join(n for n, _ in items) + " |",
                  "|---|" + "---|" * len(items)]
        keys = list(dict.fromkeys(k for _, r in items for k in r.headline))
        for key in keys:
            lines.append(f"| {key} | " + " | ".join(_fmt(r.headline.get(key, "-"))
                                                   for _, r in items) + " |")
        lines += [""] + [f"![{f}]({study}/{f})" for f in files]
    path = output / "compare.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _labels(folders: Sequence[Path]) -> list[str]:
    """Folder names, with their parents where names repeat."""
    names = [Path(f).resolve().name for f in folders]
    if len(set(names)) == len(names):
        return names
    return [f"{Path(f).resolve().parent.name}/{Path(f).resolve().name}" for f in folders]
