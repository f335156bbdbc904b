"""The reconstruction job of ``sonic-exatrkx run`` (and of the example job configs), as
one config value and one call.

:func:`build_reco_job` decides where the inference runs (the placement), sizes the event
loop, adds the local Triton server as a job service when the job needs one and has no
servers, and assembles the chain (reader -> track finding -> writers -> performance, or
the conversion chain). :meth:`RecoJob.run` runs it and returns a :class:`RecoJobResult`
that knows its summary lines.

Reconstruction jobs are resumable: every event is committed in ``<output>/commits``
(:mod:`sonic_exatrkx.framework.commits`) and the folder's ``manifest.json``
(:mod:`.manifest`) records the job's settings. A job started again on the same folder
with the same settings goes on after the last committed event and ends with the outputs
of an uninterrupted run; with other settings it is refused unless told to start over,
which removes what the job owns there. ``shard`` runs one of N blocks of the events
(:mod:`sonic_exatrkx.framework.shard`); ``sonic-exatrkx merge`` joins the shards.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from algorithms.chains import add_conversion_chain, add_reco_chain, has_truth
from algorithms.exatrkx_track_finding import ExaTrkXTrackFinding, TrackFindingConfig
from algorithms.input_options import InputOptions, input_summary
from algorithms.performance import DEFINITIONS_HEADING, TrackFindingPerformance
from sonic_exatrkx.exatrkx.pipeline import models_checksum, read_config
from sonic_exatrkx.framework import (
    ConfigurationError,
    EventCommits,
    FailedEvent,
    RunSummary,
    Sequencer,
    Shard,
)
from sonic_exatrkx.jobs.manifest import (
    CHECKSUMMED,
    COMMITS,
    Manifest,
    output_checksums,
    settings_difference,
)
from sonic_exatrkx.jobs.triton_service import LocalTritonServer
from sonic_exatrkx.paths import sample_events_dir
from sonic_exatrkx.sonic import ThreadBudget, split_cores

ON_BAD_EVENT = ("fail", "skip")
#: What a reconstruction job writes in its output folder (``start_over`` removes these).
OWNED = ("tracks", "tracks.root", "performance.json", "performance.txt", "edge_scores.png",
         "efficiency_vs_pt.png", "efficiency_vs_eta.png", "timing.csv", "failed_events.csv",
         COMMITS, "manifest.json")
#: What the job's summary lists when the folder holds it, in this order.
LISTED = ("tracks", "tracks.root", "spacepoints.root", "csv", "performance.txt",
          "performance.json", "efficiency_vs_pt.png", "efficiency_vs_eta.png",
          "edge_scores.png", "timing.csv", "failed_events.csv")


#: Events from which a job runs its readers and writers in a child process by default:
#: starting it costs ~1.5 s, and at mu=0 it saves ~5 ms per event (``docs/performance.md``).
IO_PROCESS_MIN_EVENTS = 300


@dataclass(frozen=True)
class RecoJobConfig:
    """One reconstruction job. ``input`` None: the shipped sample events. ``events`` /
    ``skip``: the slice of events. ``threads`` / ``in_flight``: event-loop workers and
    events open at once (None: the cores, or the thread budget of a server the job
    starts). ``cores``: what a job that starts its own server splits between itself and
    the server (None: all). ``performance`` None: when the input has truth.
    ``nonfinite``: "error" | "drop" hits with NaN/inf positions; ``spacepoints_from``:
    None | "measurements" | "hits", for ACTS CSV without spacepoint files (`InputOptions`).
    ``convert_only``: no track finding, write the space points as ROOT (``root_layout``,
    and CSV with ``csv_output``). ``finder``: the track finding (where and how).
    ``shard``: run only this block of the events. ``start_over``: replace the outputs of
    another job in ``output`` instead of refusing them (or resuming the same job).
    ``plots``: the performance plots (a Dask chunk leaves them to the merge).
    ``io_process``: readers and writers in a child process (:mod:`~sonic_exatrkx.framework.
    io_process`); None: for jobs of at least :data:`IO_PROCESS_MIN_EVENTS` events, where
    the ~1.5 s of starting the process pays off."""

    input: Path | None = None
    input_format: str = "csv"
    output: Path = Path("output")
    events: int | None = None
    skip: int = 0
    threads: int | None = None
    in_flight: int | None = None
    cores: int | None = None
    performance: bool | None = None
    on_bad_event: str = "fail"
    duplicates: str = "warn"
    nonfinite: str = "error"
    spacepoints_from: str | None = None
    continue_on_error: bool = False
    convert_only: bool = False
    root_layout: str = "flat"
    csv_output: bool = False
    finder: TrackFindingConfig = field(default_factory=TrackFindingConfig)
    shard: Shard | None = None
    start_over: bool = False
    plots: bool = True
    io_process: bool | None = None

    def __post_init__(self) -> None:
        if self.on_bad_event not in ON_BAD_EVENT:
            raise ConfigurationError(f"on_bad_event must be one of {ON_BAD_EVENT}, got "
                                     f"{self.on_bad_event!r}")
        _ = self.input_options  # the reader options, checked now
        object.__setattr__(self, "output", Path(self.output))
        if isinstance(self.shard, str):
            object.__setattr__(self, "shard", Shard.parse(self.shard))

    @property
    def input_path(self) -> Path:
        return Path(self.input) if self.input is not None else sample_events_dir()

    @property
    def input_options(self) -> InputOptions:
        """What the reader does with bad events, duplicates, NaN hits, no space points."""
        return InputOptions(on_bad_event=self.on_bad_event, duplicates=self.duplicates,
                            nonfinite=self.nonfinite, spacepoints_from=self.spacepoints_from)

    def resolved_performance(self) -> bool:
        """Whether the job measures the performance (``None``: when the input has truth)."""
        if self.performance is not None:
            return self.performance
        return has_truth(self.input_path, self.input_format, self.spacepoints_from)

    def settings(self) -> dict[str, object]:
        """The settings that decide the outputs: equal for every shard of one job and for
        a job and its restart (the manifest keeps them)."""
        finder = self.finder
        performance = self.resolved_performance()
        cuts = read_config(finder.model_dir)
        return {
            "input": str(self.input_path.resolve()), "input_format": self.input_format,
            "events": self.events, "skip": self.skip, "on_bad_event": self.on_bad_event,
            "duplicates": self.duplicates, "nonfinite": self.nonfinite,
            "spacepoints_from": self.spacepoints_from,
            "performance": performance, "models": models_checksum(finder.model_dir),
            "inference": finder.inference,
            "service_option": finder.service_option.name if finder.remote else None,
            "edge_performance": performance and not finder.remote,
            "gnn_cut": cuts.gnn.cut, "filter_cut": cuts.filter.cut,
        }


@dataclass(frozen=True)
class Placement:
    """Where the job's inference runs: the track finder's settings as the job uses them
    and, when the job starts its own server, that service and its thread budget."""

    finder: TrackFindingConfig
    server: LocalTritonServer | None = None
    budget: ThreadBudget | None = None


def place_inference(cfg: RecoJobConfig, say: Callable[[str], None] = print) -> Placement:
    """Given servers are used as they are; ``triton`` without servers gets a local server
    (gRPC) with ``cores`` split by :func:`split_cores` (the split is printed); ``auto``
    without servers runs in this process."""
    finder = cfg.finder
    if cfg.convert_only or not finder.remote or finder.servers != ():
        return Placement(finder)
    if finder.inference == "auto":
        say("inference 'auto' without a server: running ExaTrkX in this process")
        return Placement(replace(finder, inference="local"))
    if finder.triton.protocol != "grpc":
        raise ConfigurationError("protocol: the server this job starts is used over gRPC; "
                                 "give a server URL for HTTP")
    option = finder.service_option
    budget = split_cores(cfg.cores or os.cpu_count() or 1, option, job_threads=cfg.threads)
    say(budget.line())
    from sonic_exatrkx.server import DynamicBatching

    dynamic = DynamicBatching() if option.whole == "dynamic" else None
    server = LocalTritonServer(finder.model_dir, budget, ensemble=option.whole is None
                               or option.whole == "ensemble", dynamic_batching=dynamic, say=say)
    return Placement(replace(finder, servers=server, local_threads=budget.local_threads),
                     server, budget)


@dataclass
class RecoJob:
    """An assembled job: the Sequencer and the algorithms whose results are reported."""

    config: RecoJobConfig
    sequencer: Sequencer
    placement: Placement
    settings: dict[str, object]
    finder: ExaTrkXTrackFinding | None = None
    performance: TrackFindingPerformance | None = None
    started_s: float = field(default_factory=time.perf_counter)  # when the job was built

    def run(self) -> RecoJobResult:
        """Run the job (resuming its committed events) and finish its manifest."""
        seq, cfg = self.sequencer, self.config
        if seq.commits is None:
            summary = seq.run()
            return RecoJobResult(self, summary, time.perf_counter() - self.started_s)
        planned = seq.event_numbers()
        if Manifest.exists(cfg.output):  # the same job (claim_output checked the settings)
            before = Manifest.read(cfg.output)
            if before.complete and set(planned) <= {*before.done, *before.skipped}:
                # Finished already: leave every output (timing included) as it is.
                return RecoJobResult(self, RunSummary(
                    events=planned, resumed=len(before.done), skipped=len(before.skipped)))
        manifest = Manifest(settings=self.settings, events=seq.sliced_events(),
                            planned=planned, shard=str(cfg.shard) if cfg.shard else None)
        manifest.write(cfg.output)
        summary = seq.run()
        committed = seq.commits.events()
        statuses = {e: seq.commits.status(e) for e in committed}
        manifest.done = [e for e, s in statuses.items() if s == "done"]
        manifest.skipped = [e for e, s in statuses.items() if s != "done"]
        manifest.failed = sorted(f.event for f in summary.failed)
        manifest.outputs = output_checksums(cfg.output, list(CHECKSUMMED))
        if self.finder is not None:
            manifest.client_stats = [s.counts() for s in self.finder.stats if s.requests]
        manifest.complete = True
        manifest.write(cfg.output)
        return RecoJobResult(self, summary, time.perf_counter() - self.started_s)


@dataclass
class RecoJobResult:
    job: RecoJob
    summary: RunSummary
    total_s: float | None = None  # the whole job, from building it (None: nothing ran)

    @property
    def failed(self) -> list[FailedEvent]:
        """Events that failed (``continue_on_error``); none for a successful job."""
        return self.summary.failed

    def lines(self) -> list[str]:
        """What the job prints at the end: the run and its timing, the client and server
        statistics of a served job, the physics summary (``performance.txt`` above its
        definitions) and the outputs the folder holds."""
        job = self.job
        lines = [f"sonic-exatrkx run: {self.summary.line()}"]
        served = job.finder is not None and job.finder.client is not None \
            and job.finder.client.remote
        if self.total_s is not None:
            parts = [] if job.config.convert_only else ["loading the models"]
            if job.placement.server is not None:
                parts.append("starting and stopping the Triton server")
            parts.append("writing the end-of-job outputs"
                         + (" and plots" if job.performance is not None else ""))
            lines.append(f"whole job {self.total_s:.1f} s (the event loop plus "
                         f"{', '.join(parts[:-1])}{' and ' if len(parts) > 1 else ''}"
                         f"{parts[-1]})")
        if served:
            lines.append(job.finder.stats_summary())
        lines += input_summary(job.sequencer.readers)
        report = job.config.output / "performance.txt"
        if job.performance is not None and report.is_file():  # what the folder holds
            text = report.read_text()
            lines.append(text.split(f"\n\n{DEFINITIONS_HEADING}")[0].rstrip("\n"))
        lines.append(f"outputs in {job.config.output.resolve()}: "
                     f"{', '.join(listed_outputs(job.config.output))}")
        return lines


def listed_outputs(folder: Path) -> list[str]:
    """The job outputs ``folder`` holds, as the summary names them (folders: ``name/``
    and their file count)."""
    shown = []
    for name in LISTED:
        path = folder / name
        if path.is_dir():
            n = sum(1 for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
            shown.append(f"{name}/ ({n} files)")
        elif path.is_file():
            shown.append(name)
    return shown


def claim_output(cfg: RecoJobConfig, settings: dict[str, object]) -> None:
    """Resume the same job in ``cfg.output``, refuse another job's outputs there, or
    remove them with ``start_over``."""
    out = cfg.output
    if Manifest.exists(out) and not cfg.start_over:
        before = Manifest.read(out)
        diff = settings_difference(before.settings, settings)
        if before.shard != (str(cfg.shard) if cfg.shard else None):
            diff.append(f"shard: {before.shard} -> {cfg.shard}")
        if diff:
            raise ConfigurationError(
                f"{out} holds the outputs of a job with other settings ({'; '.join(diff)}): "
                "give another output folder, or start over (--start-over) to replace them")
        for folder in (out, out / "tracks", out / COMMITS):  # a killed run's partial files
            for tmp in folder.glob(".*.tmp"):
                tmp.unlink()
        return
    found = [name for name in OWNED if (out / name).exists()]
    if found and not cfg.start_over:
        raise ConfigurationError(
            f"{out} holds job outputs ({', '.join(found)}) but no manifest.json, so they "
            "cannot be resumed or checked: give another output folder, or --start-over to "
            "replace them")
    if cfg.start_over:
        for name in OWNED:
            path = out / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()


def build_reco_job(cfg: RecoJobConfig, say: Callable[[str], None] = print) -> RecoJob:
    """The Sequencer with the job's services and chain (nothing runs yet)."""
    settings = {} if cfg.convert_only else cfg.settings()
    if not cfg.convert_only:
        claim_output(cfg, settings)
    where = place_inference(cfg, say)
    threads, in_flight = cfg.threads, cfg.in_flight
    if where.budget is not None:
        threads = threads or where.budget.job_threads
        in_flight = in_flight or where.budget.in_flight
    seq = Sequencer(events=cfg.events, skip=cfg.skip, num_threads=threads,
                    max_in_flight=in_flight, output_dir=cfg.output,
                    continue_on_error=cfg.continue_on_error, shard=cfg.shard,
                    commits=None if cfg.convert_only else EventCommits(cfg.output / COMMITS))
    if where.server is not None:
        seq.add_service(where.server)
    input_path = cfg.input_path
    job = RecoJob(cfg, seq, where, settings)
    if cfg.convert_only:
        add_conversion_chain(seq, input_path, cfg.output, input_format=cfg.input_format,
                             root_layout=cfg.root_layout, csv_output=cfg.csv_output,
                             options=cfg.input_options)
        seq.io_process = _io_process(cfg, seq)
        return job
    job.finder, job.performance = add_reco_chain(
        seq, input_path, cfg.output, where.finder, input_format=cfg.input_format,
        performance=bool(settings["performance"]), plots=cfg.plots,
        options=cfg.input_options)
    seq.io_process = _io_process(cfg, seq)
    return job


def _io_process(cfg: RecoJobConfig, seq: Sequencer) -> bool:
    """``cfg.io_process``, or (None) whether the job is long enough for it to pay."""
    if cfg.io_process is not None:
        return cfg.io_process
    return len(seq.event_numbers()) >= IO_PROCESS_MIN_EVENTS


def run_reco_job(cfg: RecoJobConfig, say: Callable[[str], None] = print) -> RecoJobResult:
    """Build and run the job."""
    return build_reco_job(cfg, say).run()
