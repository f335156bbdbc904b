"""Job config: ExaTrkX track finding in this process, with performance and track outputs.

    python examples/reco_local.py --help
    python examples/reco_local.py --input data/sample/csv --output out-reco --threads 2

Read ACTS space points -> ExaTrkX (embedding, FAISS graph, filter, GNN, connected
components) -> tracks as CSV (event%09d-tracks.csv) and ROOT, plus the tracking
performance when the input has truth. Grid jobs shard with --skip/--events.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sonic_exatrkx.cli.choices import InputFormat, values

# Only argparse and the choices at the top: `--help` imports no torch (the job's modules
# are imported in main, after the options are parsed).


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, default=None, help="default: shipped sample")
    parser.add_argument("--input-format", choices=values(InputFormat), default="csv")
    parser.add_argument("-o", "--output", type=Path, default=Path("output-reco"))
    parser.add_argument("--models", type=Path, default=None, help="default: data/models")
    parser.add_argument("--events", type=int, default=None)
    parser.add_argument("--skip", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="event-loop threads")
    parser.add_argument("--in-flight", type=int, default=None)
    parser.add_argument("--pipeline-threads", type=int, default=1,
                        help="torch/FAISS threads per pipeline call")
    args = parser.parse_args(argv)

    from algorithms.chains import add_reco_chain
    from algorithms.exatrkx_track_finding import TrackFindingConfig
    from sonic_exatrkx.framework import Sequencer
    from sonic_exatrkx.paths import sample_events_dir

    seq = Sequencer(events=args.events, skip=args.skip, num_threads=args.threads,
                    max_in_flight=args.in_flight, output_dir=args.output)
    finder = TrackFindingConfig(models=args.models, pipeline_threads=args.pipeline_threads)
    _, perf = add_reco_chain(seq, args.input or sample_events_dir(), args.output, finder,
                             input_format=args.input_format)
    print(seq.run().line())
    if perf is not None:
        print(perf.summary_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
