"""One thread budget for a job that starts its own Triton server on this machine.

The seeds saw FAISS/TBB threads of the job and of the server fight over the same cores,
so the cores are split on purpose: the server gets instances x threads per instance (one
thread per instance: on CPU, instances scale better than intra-op threads), the job gets
the event-loop threads and the pool for the stages it still runs itself. How much the job
keeps depends on the service option: with the whole pipeline served (custom, S4, S3) the
job only converts space points and dispatches (async: no thread waits), so it reserves no
core and its one event-loop thread shares with the server; with S2 it builds tracks, with
S1 it also builds the graph, so it keeps a quarter / half of the cores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sonic_exatrkx.sonic.errors import check_count
from sonic_exatrkx.sonic.service_option import ServiceOption

#: More instances than this cost memory (a torch import each) for little gain.
MAX_INSTANCES = 8


@dataclass(frozen=True)
class ThreadBudget:
    """How ``cores`` are used: job threads, and the server's instances x threads."""

    cores: int
    service_option: str
    job_cores: int  # reserved for the job's own stages
    job_threads: int  # event-loop worker threads
    local_threads: int  # pool running the locally placed stages (async modes)
    pipeline_threads: int  # torch/FAISS threads per local call
    server_instances: int  # per model; 0 when nothing is served
    server_threads: int  # torch/FAISS/OpenMP threads per instance
    in_flight: int  # events open at once (outstanding requests in async mode)

    def line(self) -> str:
        """The split, for the job's log."""
        server = (f"server {self.server_instances} instance(s) x {self.server_threads} "
                  f"thread(s) per model" if self.server_instances else "no server")
        return (f"thread budget ({self.service_option}): {self.cores} cores -> job "
                f"{self.job_cores} reserved, {self.job_threads} event-loop thread(s), local "
                f"pool {self.local_threads} x {self.pipeline_threads} torch/FAISS thread(s); "
                f"{server}; {self.in_flight} events in flight")


def split_cores(cores: int, service_option: str | Sequence[str] | ServiceOption = "custom",
                *, job_threads: int | None = None) -> ThreadBudget:
    """Split ``cores`` between the job and a server it starts (see the module doc).

    ``job_threads`` (the user's ``--threads``) overrides the event-loop thread count but
    not the cores reserved. In flight: two requests per server instance, so each instance
    has the next event queued while the job converts the one after.
    """
    check_count(cores, "cores")
    option = ServiceOption.parse(service_option)
    if job_threads is not None:
        check_count(job_threads, "threads")
    share = option.job_share
    if share >= 1.0:  # nothing served: every core is the job's
        threads = job_threads or cores
        return ThreadBudget(cores, option.name, cores, threads, threads, 1, 0, 0, threads)
    job_cores = min(max(round(cores * share), 1 if share > 0 else 0), cores - 1)
    server_cores = max(cores - job_cores, 1)
    instances = min(server_cores, MAX_INSTANCES)
    threads = job_threads or max(job_cores, 1)
    return ThreadBudget(
        cores=cores, service_option=option.name, job_cores=job_cores,
        job_threads=threads, local_threads=max(job_cores, 1), pipeline_threads=1,
        server_instances=instances, server_threads=max(server_cores // instances, 1),
        in_flight=max(2 * instances, threads))
