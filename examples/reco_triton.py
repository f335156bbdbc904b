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

from sonic_exatrkx.cli.choices import (
    Compression,
    Inference,
    InputFormat,
    Mode,
    OnTimeout,
    Protocol,
    ServiceOptionName,
    values,
)

# Only argparse and the choices at the top: `--help` imports no torch (the job's modules
# are imported where the job is built, after the options are parsed).


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--input", type=Path, default=None, help="default: shipped sample")
    p.add_argument("--input-format", choices=values(InputFormat), default="csv")
    p.add_argument("-o", "--output", type=Path, default=Path("output-reco-triton"))
    p.add_argument("--models", type=Path, default=None, help="default: data/models")
    p.add_argument("--events", type=int, default=None)
    p.add_argument("--skip", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="event-loop threads")
    p.add_argument("--in-flight", type=int, default=None,
                   help="events open at once (= outstanding requests in async mode)")
    p.add_argument("--server", action="append", default=None,
                   help="host:port of a Triton gRPC (or --protocol http) endpoint; repeat "
                        "for failover. Default: start a local server")
    p.add_argument("--protocol", choices=values(Protocol), default="grpc")
    p.add_argument("--inference", choices=values(Inference), default="triton")
    p.add_argument("--service-option", choices=values(ServiceOptionName), default="custom")
    p.add_argument("--mode", choices=values(Mode), default="async")
    p.add_argument("--allowed-tries", type=int, default=3)
    p.add_argument("--fallback-local", action="store_true",
                   help="run events locally when every server fails")
    p.add_argument("--timeout", type=float, default=None, help="per-request timeout (s)")
    p.add_argument("--on-timeout", choices=values(OnTimeout), default="retry")
    p.add_argument("--compression", choices=values(Compression), default=None)
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


def job_config(args: argparse.Namespace):  # -> sonic_exatrkx.jobs.RecoJobConfig
    """The whole job as one value: the track finder's placement and transport options
    (one TritonOptions for every served model), the event loop and the outputs."""
    from algorithms.exatrkx_track_finding import TrackFindingConfig
    from sonic_exatrkx.jobs import RecoJobConfig
    from sonic_exatrkx.sonic import RetryPolicy, TritonOptions

    triton = TritonOptions(
        protocol=args.protocol, timeout_s=args.timeout, fallback_local=args.fallback_local,
        compression=args.compression, tls_root_certificates=args.tls_root_cert,
        shared_memory=args.shared_memory,
        retry=RetryPolicy(allowed_tries=args.allowed_tries, on_timeout=args.on_timeout))
    finder = TrackFindingConfig(
        models=args.models, pipeline_threads=args.pipeline_threads,
        inference=args.inference, servers=tuple(args.server or ()),
        service_option=args.service_option, mode=args.mode, triton=triton,
        metrics_file=args.metrics_file, trace_file=args.trace_file)
    return RecoJobConfig(input=args.input, input_format=args.input_format,
                         output=args.output, events=args.events, skip=args.skip,
                         threads=args.threads, in_flight=args.in_flight, cores=args.cores,
                         continue_on_error=args.continue_on_error, finder=finder)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from sonic_exatrkx.framework import AlgorithmError, ConfigurationError
    from sonic_exatrkx.jobs import build_reco_job

    try:
        job = build_reco_job(job_config(args), say=lambda m: print(m, flush=True))
        seq = job.sequencer
        print(f"threads: {seq.num_threads} event-loop, {seq.max_in_flight} events in flight, "
              f"{args.pipeline_threads} torch/FAISS per local call; mode {args.mode}")
        result = job.run()
    except AlgorithmError as err:
        print(f"job failed, no further output written: {err}", file=sys.stderr)
        return 1
    except ConfigurationError as err:
        print(f"configuration error: {err}", file=sys.stderr)
        return 2
    print(result.summary.line())
    assert job.finder is not None
    print(job.finder.stats_summary())
    if job.performance is not None:
        print(job.performance.summary_text())
    if result.summary.failed:
        print(f"{len(result.summary.failed)} events failed (no tracks written for them): "
              + ", ".join(f"{f.event} ({f.error})" for f in result.summary.failed),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
