"""``sonic-exatrkx merge``: join the output folders of a job's shards (or Dask chunks).

The inputs must be complete shards of one job (same settings in their manifests) that
together hold every event of the job exactly once; otherwise the merge fails with one
message naming every missing and doubled event and every conflicting setting. The merged
folder then holds what one unsharded run writes: the per-event track CSVs are copied, and
the end-of-job outputs (``tracks.root``, ``performance.json``/``.txt`` and plots) are
written by the same writers, restored from every shard's commits in event order, so the
efficiencies come from the summed counts of all events (never from averaged shard
figures). Timing rows and client statistics are summed over the shards.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from algorithms.chains import INTERMEDIATES
from algorithms.performance import TrackFindingPerformance, sample_label, served_edge_note
from algorithms.root_io import RootTrackWriter
from sonic_exatrkx.framework import ConfigurationError, EventCommits, Writer
from sonic_exatrkx.framework.timing import TimingTable
from sonic_exatrkx.io.acts_paths import event_path
from sonic_exatrkx.jobs.manifest import (
    CHECKSUMMED,
    COMMITS,
    Manifest,
    output_checksums,
    settings_difference,
)
from sonic_exatrkx.sonic import ClientStats


@dataclass
class MergeResult:
    output: Path
    events: int
    shards: int
    timing: TimingTable
    client_stats: list[ClientStats] = field(default_factory=list)
    performance: TrackFindingPerformance | None = None

    def lines(self) -> list[str]:
        lines = [f"merged {self.shards} folders: {self.events} events into {self.output}"]
        lines += [s.line() for s in self.client_stats]
        if self.performance is not None:
            lines.append(self.performance.summary_text())
        return lines


def _short(events: Sequence[int]) -> str:
    shown = ", ".join(map(str, events[:20]))
    return shown + (f", ... ({len(events)} in all)" if len(events) > 20 else "")


def check_shards(folders: Sequence[Path]) -> tuple[list[Manifest], dict[int, Path]]:
    """The manifests and, for every committed event, the folder holding it; raises one
    ConfigurationError listing every problem."""
    manifests = [Manifest.read(f) for f in folders]
    problems: list[str] = []
    first = manifests[0]
    for folder, m in zip(folders, manifests, strict=True):
        if not m.complete:
            problems.append(f"{folder}: the job did not finish (run it again: it resumes)")
        diff = settings_difference(first.settings, m.settings)
        if diff:
            problems.append(f"{folder}: settings differ from {folders[0]} ({'; '.join(diff)})")
        if m.events != first.events:
            problems.append(f"{folder}: a different job's event list than {folders[0]}")
    owner: dict[int, Path] = {}
    doubled: dict[int, list[Path]] = {}
    failed: dict[int, Path] = {}
    for folder, m in zip(folders, manifests, strict=True):
        for event in [*m.done, *m.skipped]:
            if event in owner:
                doubled.setdefault(event, [owner[event]]).append(folder)
            else:
                owner[event] = folder
        failed.update({e: folder for e in m.failed})
    missing = sorted(set(first.events) - set(owner))
    if doubled:
        problems.append("events in more than one folder: " + "; ".join(
            f"{e} ({', '.join(map(str, fs))})" for e, fs in sorted(doubled.items())[:20]))
    if missing:
        why = [f"{e} failed in {failed[e]}" for e in missing if e in failed]
        problems.append(f"missing events: {_short(missing)}"
                        + (f" ({'; '.join(why[:10])})" if why else " (a shard not given?)"))
    if problems:
        raise ConfigurationError("cannot merge: " + " | ".join(problems))
    return manifests, owner


def merge_outputs(folders: Sequence[str | Path], output: str | Path, *,
                  say: Callable[[str], None] = print, replace: bool = False) -> MergeResult:
    """Merge shard folders into ``output`` (see the module docstring). ``replace``: an
    earlier merge's outputs in ``output`` are replaced (a Dask job merging its chunks
    again), else such a folder is refused."""
    inputs = [Path(f) for f in folders]
    out = Path(output)
    if not inputs:
        raise ConfigurationError("merge: give the shard folders to merge")
    if len({f.resolve() for f in inputs}) != len(inputs):
        raise ConfigurationError("merge: a folder is given twice")
    if any(out.resolve() == f.resolve() for f in inputs):
        raise ConfigurationError(f"merge: the output {out} is one of the inputs")
    manifests, owner = check_shards(inputs)
    owned = [out / "tracks", out / COMMITS, out / "manifest.json"]
    if any(p.exists() for p in owned):
        if not replace:
            raise ConfigurationError(f"merge: {out} already holds job outputs; give a new "
                                     "folder")
        for path in owned:
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    settings = manifests[0].settings
    out.mkdir(parents=True, exist_ok=True)
    writers: list[Writer] = [RootTrackWriter(out / "tracks.root")]
    perf = None
    if settings.get("performance"):
        edges = bool(settings.get("edge_performance"))
        perf = TrackFindingPerformance(
            out, input_intermediates=INTERMEDIATES if edges else None,
            gnn_cut=settings["gnn_cut"] if edges else None,
            filter_cut=settings.get("filter_cut") if edges else None,
            sample=sample_label(str(settings["input"])),
            edge_note=None if edges else served_edge_note(str(settings.get("service_option"))))
        writers.append(perf)
    for writer in writers:
        writer.initialize()
    tracks = out / "tracks"
    tracks.mkdir(exist_ok=True)
    commits = EventCommits(out / COMMITS)
    commits.folder.mkdir(exist_ok=True)
    try:
        for event in sorted(owner):
            source = EventCommits(owner[event] / COMMITS)
            status, states = source.load(event)
            shutil.copyfile(source.path(event), commits.path(event))
            if status != "done":
                continue
            csv = event_path(owner[event] / "tracks", event, "tracks")
            shutil.copyfile(csv, event_path(tracks, event, "tracks"))
            for writer in writers:
                writer.restore(event, states.get(writer.name, {}))
        for writer in writers:
            writer.finalize()
    except BaseException:
        for writer in writers:
            writer.abort()
        raise
    timing = TimingTable()
    for folder in inputs:
        timing.merge_csv(folder / "timing.csv")
    timing.write_csv(out / "timing.csv")
    by_client: dict[str, list[dict[str, object]]] = {}
    for m in manifests:
        for item in m.client_stats:
            by_client.setdefault(str(item["name"]), []).append(item)
    stats = [ClientStats.summed(name, items) for name, items in by_client.items()]
    merged = Manifest(settings=settings, events=manifests[0].events,
                      planned=manifests[0].events, complete=True,
                      done=sorted(e for m in manifests for e in m.done),
                      skipped=sorted(e for m in manifests for e in m.skipped),
                      client_stats=[s.counts() for s in stats],
                      merged_from=[str(f.resolve()) for f in inputs])
    merged.outputs = output_checksums(out, list(CHECKSUMMED))
    merged.write(out)
    say(f"merged {len(inputs)} folders ({len(owner)} events) into {out}")
    return MergeResult(out, len(owner), len(inputs), timing, stats, perf)
