"""Job config: the same events through every ExaTrkX service option, with a timing table.

    python examples/reco_service_options.py --help
    python examples/reco_service_options.py --events 8 --in-flight 4   # starts a server
    python examples/reco_service_options.py --server 127.0.0.1:8001 \
        --service-option S0 --service-option custom

Runs S0 (all local), S1 (torch models served), S2 (+ graph building served), S3 (every
stage served separately), S4 (the ensemble) and the custom backend (whole pipeline in
one request) on the same events, checks that every option gives the tracks of S0, and
prints events/s, wall time and requests per event. Exits 1 when the tracks differ.
Without --server a tritonserver with the custom model and the ensemble is started on
127.0.0.1 from --models and stopped at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path
from typing import Any

from sonic_exatrkx.cli.choices import InputFormat, Mode, ServiceOptionName, values

# Only argparse and the choices at the top: `--help` imports no torch (the job's modules
# are imported in main and run_option, after the options are parsed).


def keep_tracks() -> Any:
    """A writer that keeps each event's labels to compare the options."""
    import numpy as np

    from algorithms.keys import TRACKS
    from sonic_exatrkx.framework import ProcessCode, ReadHandle, Writer

    class KeepTracks(Writer):
        def __init__(self) -> None:
            super().__init__(name="KeepTracks")
            self.inp = ReadHandle(self, TRACKS, np.ndarray)
            self.labels: dict[int, np.ndarray] = {}

        def execute(self, ctx) -> ProcessCode:
            self.labels[ctx.event] = np.asarray(self.inp(ctx))
            return ProcessCode.SUCCESS

    return KeepTracks()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--input", type=Path, default=None, help="default: shipped sample")
    p.add_argument("--input-format", choices=values(InputFormat), default="csv")
    p.add_argument("--models", type=Path, default=None, help="default: data/models")
    p.add_argument("--events", type=int, default=None)
    p.add_argument("--skip", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="event-loop threads")
    p.add_argument("--in-flight", type=int, default=None, help="events open at once")
    p.add_argument("--server", action="append", default=None,
                   help="host:port of a Triton gRPC endpoint (repeat for failover); "
                        "default: start a local server")
    p.add_argument("--service-option", dest="options", action="append",
                   choices=values(ServiceOptionName), default=None,
                   help="an option to run (repeat for several; the first is the reference); "
                        "default: S0 S1 S2 S3 S4 custom")
    p.add_argument("--mode", choices=values(Mode), default="async")
    p.add_argument("--repeat", type=int, default=1, help="runs per option (best is kept)")
    return p


def run_option(args: argparse.Namespace, option: str, servers: Any
               ) -> tuple[float, float, dict[int, Any], int]:
    """One option over the events: events/s, wall time, the labels, remote requests."""
    from algorithms.chains import add_reco_chain
    from algorithms.exatrkx_track_finding import TrackFindingConfig
    from sonic_exatrkx.framework import Sequencer
    from sonic_exatrkx.paths import sample_events_dir

    seq = Sequencer(events=args.events, skip=args.skip, num_threads=args.threads,
                    max_in_flight=args.in_flight, progress=False, log_level="WARNING")
    finder, _ = add_reco_chain(
        seq, args.input or sample_events_dir(), None, TrackFindingConfig(
            models=args.models, inference="local" if option == "S0" else "triton",
            servers=servers, service_option=option,
            mode=args.mode if option != "S0" else None),
        input_format=args.input_format, performance=False)
    keep = keep_tracks()
    seq.add_writer(keep)
    summary = seq.run()
    remote = sum(s.requests for s in finder.stats if s.name.startswith("triton:"))
    return summary.events_per_second, summary.wall_time_s, keep.labels, remote


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    args.options = args.options or ["S0", "S1", "S2", "S3", "S4", "custom"]
    import numpy as np

    from algorithms.exatrkx_track_finding import default_model_dir
    from sonic_exatrkx.jobs import LocalTritonServer
    from sonic_exatrkx.sonic import split_cores

    with contextlib.ExitStack() as stack:
        servers: Any = tuple(args.server or ())
        if not servers and set(args.options) - {"S0"}:
            budget = split_cores(os.cpu_count() or 1, "custom")
            print(budget.line())
            servers = stack.enter_context(LocalTritonServer(
                args.models or default_model_dir(), budget,
                say=lambda m: print(m, flush=True)))
        rows = []
        reference: dict[int, Any] | None = None
        same_all = True
        for option in args.options:
            best = None
            for _ in range(max(1, args.repeat)):
                result = run_option(args, option, servers)
                if best is None or result[0] > best[0]:
                    best = result
            assert best is not None
            rate, wall, labels, remote = best
            if reference is None:
                reference = labels
            same = sorted(labels) == sorted(reference) and all(
                np.array_equal(labels[e], reference[e]) for e in reference)
            same_all &= same
            rows.append((option, len(labels), rate, wall, remote / max(len(labels), 1), same))
    print(f"\n{'option':<8} {'events':>6} {'events/s':>9} {'wall s':>7} "
          f"{'requests/evt':>12}  tracks")
    for option, n, rate, wall, per_event, same in rows:
        print(f"{option:<8} {n:>6} {rate:>9.2f} {wall:>7.2f} {per_event:>12.1f}  "
              f"{'identical' if same else 'DIFFERENT'}")
    print(f"\nfirst option ({args.options[0]}) is the reference; mode {args.mode}")
    return 0 if same_all else 1


if __name__ == "__main__":
    sys.exit(main())
