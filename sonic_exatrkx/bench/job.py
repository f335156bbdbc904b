"""Study `bench job`: the whole `run` job against the pipeline alone, on the same events
and settings, in one process run.

Three modes, alternated trial by trial so a load change on the machine hits them alike:

* ``pipeline``: what `bench pipeline` times: features + the ExaTrkX pipeline (with its
  intermediates, as the job's performance needs them) on events already in memory, on
  ``workers`` threads of this process;
* ``job``: `run` on the events' ACTS CSV files (read with truth, track finding, tracks
  CSV + ROOT, performance, per-event commits), with the event loop's read ahead and
  write behind and its readers and writers in the I/O process (``io_process``, what a
  long `run` does); with ``performance=False`` the job of a data run: space points only
  in, no truth, no performance;
* ``job-threads``: the same job with read ahead and write behind on threads of this
  process (``io_process=False``, what a short `run` does): what the I/O process buys;
* ``job-inline``: the same job with readers and writers in the events' slots on the
  worker threads (``read_ahead=0, write_behind=0``), i.e. what read ahead and write
  behind buy.

Both sides get ``workers`` event-loop threads, ``threads`` torch/FAISS threads per event
and one warm-up event first (excluded, as in `bench pipeline`); the job's rate is its own
(events over the event loop's wall time, as `run` prints it; the end-of-job summary is
not in it, and the study leaves out the plots). Reported per mode: the median events/s
over the trials and its spread, and the CPU milliseconds per event (the job's: this
process and its I/O process, from the first to the last event written; less sensitive to
other load on the machine than wall time: on a machine with no core to spare the ratio
of rates tends to the ratio of CPU times); and
``ratio`` = median job events/s / median pipeline events/s (goal >= 0.85).
"""

from __future__ import annotations

import csv
import json
import logging
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sonic_exatrkx.framework import AlgorithmContext, Writer

__all__ = ["GOAL", "MODES", "JobBenchConfig", "JobBenchResult", "Trial", "run_job_bench"]

MODES = ("pipeline", "job", "job-threads", "job-inline")
#: The issue's goal: the job at >= 0.85x the pipeline-only throughput.
GOAL = 0.85
DEFAULT_SEED = 12345  # `bench pipeline`'s held-out events


@dataclass(frozen=True)
class JobBenchConfig:
    """What `bench job` runs. ``input`` None: simulate ``events`` HNL events at
    ``pileup`` with ``seed`` (`bench pipeline`'s events for the same values)."""

    events: int = 40
    pileup: float = 0.0
    seed: int = DEFAULT_SEED
    threads: int = 1  # torch / FAISS threads per event
    workers: int = 1  # events in flight: pipeline threads / the job's --threads
    repeats: int = 3
    models: Path | None = None
    input: Path | None = None
    modes: tuple[str, ...] = MODES
    performance: bool = True  # the job reads truth and computes the performance

    def __post_init__(self) -> None:
        for name in ("events", "threads", "workers", "repeats"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"bench job: {name} must be >= 1, got {getattr(self, name)}")
        unknown = [m for m in self.modes if m not in MODES]
        if unknown or "pipeline" not in self.modes:
            raise ValueError(f"bench job: modes must include 'pipeline' and be among {MODES}, "
                             f"got {list(self.modes)}")


@dataclass(frozen=True)
class Trial:
    """One timed run of one mode."""

    mode: str
    trial: int
    events: int
    wall_s: float
    cpu_s: float

    @property
    def events_per_s(self) -> float:
        return self.events / self.wall_s if self.wall_s > 0 else float("nan")

    @property
    def cpu_ms_per_event(self) -> float:
        return 1e3 * self.cpu_s / self.events if self.events else float("nan")


@dataclass
class JobBenchResult:
    config: JobBenchConfig
    trials: list[Trial] = field(default_factory=list)
    machine: dict[str, Any] = field(default_factory=dict)
    spacepoints_per_event: float = 0.0

    def rates(self, mode: str) -> list[float]:
        return [t.events_per_s for t in self.trials if t.mode == mode]

    def median(self, mode: str) -> float:
        rates = self.rates(mode)
        return statistics.median(rates) if rates else float("nan")

    def ratio(self, mode: str = "job") -> float:
        """Median events/s of ``mode`` over that of the pipeline alone."""
        return self.median(mode) / self.median("pipeline")

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for mode in self.config.modes:
            rates = self.rates(mode)
            cpu = [t.cpu_ms_per_event for t in self.trials if t.mode == mode]
            out[mode] = {"events_per_s": self.median(mode),
                         "min_events_per_s": min(rates), "max_events_per_s": max(rates),
                         "cpu_ms_per_event": statistics.median(cpu)}
            if mode != "pipeline":
                out[mode]["ratio_to_pipeline"] = self.ratio(mode)
        return out

    def lines(self) -> list[str]:
        c = self.config
        job = "with truth and performance" if c.performance else "without truth"
        rows = [f"{c.events} HNL events at mu={c.pileup:g} ({self.spacepoints_per_event:.0f} "
                f"space points/event), job {job}, {c.workers} worker(s) x {c.threads} "
                f"thread(s), "
                f"{c.repeats} trials per mode (median, min-max)",
                "| mode | events/s | min-max | CPU ms/event | / pipeline |",
                "|---|---|---|---|---|"]
        for mode, s in self.summary().items():
            ratio = f"{s['ratio_to_pipeline']:.2f}" if "ratio_to_pipeline" in s else "1"
            rows.append(f"| {mode} | {s['events_per_s']:.1f} | {s['min_events_per_s']:.1f}-"
                        f"{s['max_events_per_s']:.1f} | {s['cpu_ms_per_event']:.1f} | "
                        f"{ratio} |")
        if "job" in c.modes:
            ratio = self.ratio("job")
            rows.append(f"job / pipeline = {ratio:.2f} (goal >= {GOAL}: "
                        f"{'met' if ratio >= GOAL else 'not met'})")
        return rows

    def write(self, folder: Path) -> list[Path]:
        """``job.csv`` (one row per trial) and ``job.json`` (settings, machine, medians)."""
        folder.mkdir(parents=True, exist_ok=True)
        table = folder / "job.csv"
        with table.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["mode", "trial", "events", "wall_s", "events_per_s", "cpu_ms_per_event"])
            for t in self.trials:
                w.writerow([t.mode, t.trial, t.events, f"{t.wall_s:.6f}",
                            f"{t.events_per_s:.4f}", f"{t.cpu_ms_per_event:.4f}"])
        report = folder / "job.json"
        settings = {k: (str(v) if isinstance(v, Path) else v)
                    for k, v in asdict(self.config).items()}
        report.write_text(json.dumps({
            "study": "job", "settings": settings, "machine": self.machine,
            "spacepoints_per_event": self.spacepoints_per_event, "goal": GOAL,
            "ratio": self.ratio("job") if "job" in self.config.modes else None,
            "modes": self.summary(), "trials": [asdict(t) for t in self.trials],
        }, indent=2) + "\n")
        return [table, report]


def run_job_bench(config: JobBenchConfig, say: Callable[[str], None] = print) -> JobBenchResult:
    """Simulate (or take) the events, then ``repeats`` rounds of every mode."""
    result = JobBenchResult(config, machine=_machine())
    with tempfile.TemporaryDirectory(prefix="bench-job-") as tmp:
        events_dir = config.input
        if events_dir is None:
            from sonic_exatrkx.sim import SimulationConfig, write_events

            events_dir = Path(tmp) / "events"
            write_events(SimulationConfig(sample="hnl", pileup=config.pileup, seed=config.seed),
                         events_dir, config.events, progress=False)
        arrays = _spacepoints(events_dir, config.events)
        result.spacepoints_per_event = float(np.mean([a[0].size for a in arrays]))
        for trial in range(config.repeats):
            for mode in config.modes:
                if mode == "pipeline":
                    t = _time_pipeline(config, arrays, trial)
                else:
                    t = _time_job(config, events_dir, Path(tmp) / f"{mode}-{trial}", mode, trial)
                result.trials.append(t)
                say(f"trial {trial + 1}/{config.repeats} {mode}: {t.events_per_s:.1f} events/s, "
                    f"{t.cpu_ms_per_event:.1f} CPU ms/event")
    return result


def _spacepoints(events_dir: Path, events: int) -> list[tuple[np.ndarray, ...]]:
    """x, y, z of the first ``events`` events, read as the job reads them."""
    from sonic_exatrkx.io import acts_csv

    numbers = acts_csv.list_events(events_dir)[:events]
    out = []
    for event in numbers:
        sp = acts_csv.read_spacepoints(acts_csv.event_path(events_dir, event, "spacepoint"))
        out.append(tuple(sp[c].to_numpy() for c in ("x", "y", "z")))
    return out


def _models(config: JobBenchConfig) -> Path:
    from algorithms.exatrkx_track_finding import default_model_dir

    return config.models if config.models is not None else default_model_dir()


def _time_pipeline(config: JobBenchConfig, arrays: Sequence[tuple[np.ndarray, ...]],
                   trial: int) -> Trial:
    from sonic_exatrkx.exatrkx import Pipeline

    pipe = Pipeline.from_directory(_models(config), num_threads=config.threads)

    def one(xyz: tuple[np.ndarray, ...]) -> Any:  # intermediates: what the performance reads
        return pipe.run(pipe.features(*xyz), return_intermediates=config.performance)

    one(arrays[0])  # warm-up, as `bench pipeline`
    wall, cpu = time.perf_counter(), time.process_time()
    with ThreadPoolExecutor(config.workers) as pool:
        for _ in pool.map(one, arrays):
            pass
    return Trial("pipeline", trial, len(arrays), time.perf_counter() - wall,
                 time.process_time() - cpu)


def _time_job(config: JobBenchConfig, events_dir: Path, output: Path, mode: str,
              trial: int) -> Trial:
    from algorithms.exatrkx_track_finding import TrackFindingConfig
    from sonic_exatrkx.io import acts_csv
    from sonic_exatrkx.jobs import RecoJobConfig, build_reco_job

    job = build_reco_job(RecoJobConfig(
        input=events_dir, output=output, events=config.events, threads=config.workers,
        plots=False, performance=config.performance, io_process=mode == "job",
        finder=TrackFindingConfig(models=_models(config), pipeline_threads=config.threads)),
        say=lambda _line: None)
    seq = job.sequencer
    logging.getLogger("sonic_exatrkx").setLevel(logging.WARNING)  # the study's lines only
    if mode == "job-inline":
        seq.read_ahead = seq.write_behind = 0
    seq.progress = False
    assert job.finder is not None
    pipe = job.finder.pipeline  # warm-up, as the pipeline's
    first = acts_csv.read_spacepoints(acts_csv.event_path(events_dir, seq.event_numbers()[0],
                                                          "spacepoint"))
    pipe.run(pipe.features(*(first[c].to_numpy() for c in ("x", "y", "z"))),
             return_intermediates=True)
    clock = _CpuClock()
    seq.add_writer(clock)  # last in the chain: the CPU time when each event is written
    summary = job.run().summary
    n = summary.processed
    # the CPU of the events after the first, scaled to all (the first one's start is
    # not seen by a writer)
    cpu = (clock.last - clock.first) * n / (n - 1) if n > 1 else float("nan")
    return Trial(mode, trial, n, summary.wall_time_s, cpu)


class _CpuClock(Writer):
    """The job's CPU time when each event has been written: this process's, plus, when
    the clock runs in the I/O process, its parent's (the job's CPU without its
    end-of-job summary)."""

    def __init__(self) -> None:
        super().__init__(name="BenchCpuClock")
        self.first: float | None = None
        self.last = 0.0

    def execute(self, ctx: AlgorithmContext) -> None:
        now = time.process_time()
        if multiprocessing.parent_process() is not None:
            import psutil  # a dask dependency; the I/O process's parent is the job

            parent = psutil.Process(os.getppid()).cpu_times()
            now += parent.user + parent.system
        self.first = now if self.first is None else self.first
        self.last = now


def _machine() -> dict[str, Any]:
    """What the figures depend on: CPU, cores, load, versions, the git commit."""
    import torch

    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f
                        if line.startswith("model name")), cpu)
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).resolve().parent, timeout=10,
                                check=False).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"cpu": cpu, "cores": os.cpu_count(),
            "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
            "python": sys.version.split()[0], "numpy": np.__version__,
            "torch": torch.__version__, "platform": platform.platform(), "git_commit": commit}
