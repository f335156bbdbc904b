"""Job config: ExaTrkX track finding on a Triton server (custom backend by default).

    python examples/reco_triton.py --help
    python examples/reco_triton.py --events 4                      # starts a local server
    python examples/reco_triton.py --server 127.0.0.1:8001 --server 10.0.0.2:8001 \
        --fallback-local --in-flight 8

Read ACTS space points -> ExaTrkX on Triton (gRPC, async: --in-flight requests
outstanding) -> tracks as CSV and ROOT, performance when the input has truth, and the
client statistics. Without --server a tritonserver is started on 127.0.0.1 from --models
and stopped at the end, with --cores (default: all) split between the job and the
server (the split is printed). Exits 1 when events failed (they are listed, nothing is written
for them).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from algorithms.exatrkx_local import INFERENCE, default_model_dir
from algorithms.exatrkx_sonic import add_sonic_reco_chain
from sonic_exatrkx.framework import AlgorithmError, ConfigurationError, Sequencer
from sonic_exatrkx.jobs import (
    Placement,
    exatrkx_keywords,
    placement,
    sequencer_threads,
)
from sonic_exatrkx.paths import sample_events_dir
from sonic_exatrkx.sonic import MODES, SERVICE_OPTIONS


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--input", type=Path, default=None, help="default: shipped sample")
    p.add_argument("--input-format", choices=("csv", "root", "trackml"), default="csv")
    p.add_argument("--output", type=Path, default=Path("output-reco-triton"))
    p.add_argument("--models", type=Path, default=None, help="default: data/models")
    p.add_argument("--events", type=int, default=None)
    p.add_argument("--skip", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="event-loop threads")
    p.add_argument("--in-flight", type=int, default=None,
                   help="events open at once (= outstanding requests in async mode)")
    p.add_argument("--server", action="append", default=None,
                   help="host:port of a Triton gRPC (or --protocol http) endpoint; repeat "
                        "for failover. Default: start a local server")
    p.add_argument("--protocol", choices=("grpc", "http"), default="grpc")
    p.add_argument("--inference", choices=INFERENCE, default="triton")
    p.add_argument("--service-option", choices=tuple(SERVICE_OPTIONS), default="custom")
    p.add_argument("--mode", choices=MODES, default="async")
    p.add_argument("--allowed-tries", type=int, default=3)
    p.add_argument("--fallback-local", action="store_true",
                   help="run events locally when every server fails")
    p.add_argument("--timeout", type=float, default=None, help="per-request timeout (s)")
    p.add_argument("--on-timeout", choices=("retry", "fail"), default="retry")
    p.add_argument("--compression", choices=("gzip", "deflate"), default=None)
    p.add_argument("--tls-root-cert", type=Path, default=None,
                   help="PEM root certificate: talk gRPC over TLS to --server")
    p.add_argument("--shared-memory", action="store_true",
                   help="pass tensors through system shared memory (server on this node)")
    p.add_argument("--cores", type=int, default=None,
                   help="cores to split between this job and the server it starts "
                        "(default: all)")
    p.add_argument("--pipeline-threads", type=int, default=1,
                   help="torch/FAISS threads per local pipeline call")
    p.add_argument("--continue-on-error", action="store_true",
                   help="record failed events and go on (exit code 1 at the end)")
    p.add_argument("--metrics-file", type=Path, default=None,
                   help="write client statistics as a Prometheus textfile")
    p.add_argument("--trace-file", type=Path, default=None,
                   help="per-event CSV: client prep, round trip and produce times")
    return p


def run(args: argparse.Namespace, where: Placement) -> int:
    threads, in_flight = sequencer_threads(where, args.threads, args.in_flight)
    seq = Sequencer(events=args.events, skip=args.skip, num_threads=threads,
                    max_in_flight=in_flight, output_dir=args.output,
                    continue_on_error=args.continue_on_error)
    finder, perf = add_sonic_reco_chain(
        seq, args.input or sample_events_dir(), args.output, input_format=args.input_format,
        models=args.models, num_threads=args.pipeline_threads, **exatrkx_keywords(
            where, mode=args.mode, service_option=args.service_option,
            protocol=args.protocol, allowed_tries=args.allowed_tries,
            fallback_local=args.fallback_local, timeout_s=args.timeout,
            on_timeout=args.on_timeout, compression=args.compression,
            metrics_file=args.metrics_file, trace_file=args.trace_file,
            tls_root_certificates=args.tls_root_cert, shared_memory=args.shared_memory))
    print(f"threads: {seq.num_threads} event-loop, {seq.max_in_flight} events in flight, "
          f"{args.pipeline_threads} torch/FAISS per local call; mode {args.mode}")
    try:
        summary = seq.run()
    except AlgorithmError as err:
        print(f"job failed, no further output written: {err}", file=sys.stderr)
        return 1
    except ConfigurationError as err:
        print(f"configuration error: {err}", file=sys.stderr)
        return 2
    print(summary.line())
    print(finder.stats_summary())
    if perf is not None:
        print(perf.summary_text())
    if summary.failed:
        print(f"{len(summary.failed)} events failed (no tracks written for them): "
              + ", ".join(f"{f.event} ({f.error})" for f in summary.failed), file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        with placement(args.inference, args.server, service_option=args.service_option,
                       models=args.models or default_model_dir(), cores=args.cores,
                       threads=args.threads, protocol=args.protocol,
                       say=lambda m: print(m, flush=True)) as where:
            return run(args, where)
    except ConfigurationError as err:
        print(f"configuration error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
