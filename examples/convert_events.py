"""Job config: read ACTS space points (CSV, ROOT or TrackML) and write them as ROOT/CSV.

    python examples/convert_events.py --help
    python examples/convert_events.py --input data/sample/csv --output out --threads 2

A framework job config in the ACTS Examples style: build a Sequencer, add a reader and
writers, run. Grid jobs shard with --skip/--events.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sonic_exatrkx.cli.choices import InputFormat, RootLayout, values

# Only argparse and the choices at the top: `--help` imports no torch (the job's modules
# are imported in main, after the options are parsed).


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, default=None, help="default: shipped sample")
    parser.add_argument("--input-format", choices=values(InputFormat), default="csv")
    parser.add_argument("-o", "--output", type=Path, default=Path("output-convert"))
    parser.add_argument("--events", type=int, default=None)
    parser.add_argument("--skip", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="event-loop threads")
    parser.add_argument("--in-flight", type=int, default=None)
    parser.add_argument("--root-layout", "--layout", dest="layout",
                        choices=values(RootLayout), default="flat")
    parser.add_argument("--with-truth", action="store_true",
                        help="CSV input: also read and write hits, particles, measurements")
    args = parser.parse_args(argv)

    from algorithms import CsvEventReader, CsvEventWriter, RootSpacePointWriter
    from algorithms.chains import make_reader
    from sonic_exatrkx.framework import Sequencer
    from sonic_exatrkx.paths import sample_events_dir

    seq = Sequencer(events=args.events, skip=args.skip, num_threads=args.threads,
                    max_in_flight=args.in_flight, output_dir=args.output)
    src = args.input or sample_events_dir()
    if args.with_truth and args.input_format == "csv":
        kinds = ("spacepoint", "hits", "particles", "measurements", "measurement-simhit-map")
        seq.add_reader(CsvEventReader(src, kinds=kinds, truth=True))
        seq.add_writer(CsvEventWriter(args.output / "csv", kinds=kinds))
    else:
        seq.add_reader(make_reader(src, input_format=args.input_format, truth=False))
        seq.add_writer(CsvEventWriter(args.output / "csv"))
    seq.add_writer(RootSpacePointWriter(args.output / "spacepoints.root", layout=args.layout))
    summary = seq.run()
    print(summary.line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
