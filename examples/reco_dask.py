"""Job config: ExaTrkX reconstruction on a Dask cluster (chunks of events as tasks).

    python examples/reco_dask.py --help
    python examples/reco_dask.py --workers 2 --chunk-size 8          # a LocalCluster here
    python examples/reco_dask.py --scheduler tcp://head:8786 --server triton:8001
    python examples/reco_dask.py --cluster slurm --jobs 20 --server triton:8001

Each task runs the reconstruction chain over one chunk of events into
<output>/chunks/chunkKKKKK, committing every event, so a task that Dask re-runs after its
worker died goes on from its commits; at the end the chunks are merged into <output>, which
then holds what one plain `sonic-exatrkx run` writes. --cluster htcondor|slurm starts the
workers as batch jobs with dask-jobqueue (pip install dask-jobqueue; settings below are a
starting point: adapt queue, memory and walltime to your site, see docs/batch.md).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

# Only argparse at the top: `--help` imports no torch (the job's modules are imported in
# main, after the options are parsed).


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--input", type=Path, default=None, help="default: shipped sample")
    p.add_argument("-o", "--output", type=Path, default=Path("output-reco-dask"))
    p.add_argument("--models", type=Path, default=None, help="default: data/models")
    p.add_argument("--events", type=int, default=None)
    p.add_argument("--skip", type=int, default=0)
    p.add_argument("--server", action="append", default=None,
                   help="host:port of a Triton server (repeat for failover); default: local "
                        "inference in every task")
    p.add_argument("--scheduler", default=None, help="address of a running scheduler")
    p.add_argument("--cluster", choices=("local", "htcondor", "slurm"), default="local")
    p.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes")
    p.add_argument("--jobs", type=int, default=10, help="batch jobs for --cluster htcondor/slurm")
    p.add_argument("--chunk-size", type=int, default=16, help="events per task")
    return p


@contextlib.contextmanager
def batch_cluster(kind: str, jobs: int):
    """Workers as batch jobs (dask-jobqueue): one worker process per job."""
    import dask_jobqueue
    from distributed import Client

    make = {"htcondor": dask_jobqueue.HTCondorCluster, "slurm": dask_jobqueue.SLURMCluster}
    with make[kind](cores=1, processes=1, memory="4GB", disk="4GB" if kind == "htcondor"
                    else None) as cluster:
        cluster.scale(jobs=jobs)
        with Client(cluster) as client:
            yield client


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from algorithms.exatrkx_track_finding import TrackFindingConfig
    from sonic_exatrkx.framework import FrameworkError
    from sonic_exatrkx.jobs import RecoJobConfig
    from sonic_exatrkx.jobs.dask_executor import DaskConfig, run_dask_job

    finder = TrackFindingConfig(models=args.models,
                                inference="triton" if args.server else "local",
                                servers=tuple(args.server or ()))
    job = RecoJobConfig(input=args.input, output=args.output, events=args.events,
                        skip=args.skip, finder=finder)
    dask = DaskConfig(scheduler=args.scheduler, workers=args.workers,
                      chunk_size=args.chunk_size)
    with contextlib.ExitStack() as stack:
        client = None
        if args.cluster != "local":
            client = stack.enter_context(batch_cluster(args.cluster, args.jobs))
        try:
            result = run_dask_job(job, dask, client=client)
        except FrameworkError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
    print("\n".join(result.lines()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
