"""The seeds' studies as library functions: each measures, returns a
:class:`~sonic_exatrkx.bench.results.StudyResult` and draws its plots;
:func:`~sonic_exatrkx.bench.suite.run_study` writes them (``bench STUDY -o DIR``).

=================  ==================================================================
study              what it measures
=================  ==================================================================
throughput         events/s, latency p50/p90/p99 vs concurrency: direct, custom, ensemble
instances          custom backend events/s vs model instances (and threads per instance)
service-options    S0-S4 + custom: time per event and per stage, client and Triton side
threads            time for N events vs CPU threads: direct (own / shared pools) vs served
latency            added round trip 0-50 ms: sync, pseudo-async, async; fraction hidden
batching           events per request (ROW_SPLITS) 1-8; server-side batching (hook)
scaling            time and peak memory per stage vs event size (pileup)
=================  ==================================================================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sonic_exatrkx.bench.studies.batching import BatchingConfig, plot_batching, run_batching
from sonic_exatrkx.bench.studies.common import BenchError, BenchSettings, Say
from sonic_exatrkx.bench.studies.instances import (
    InstancesConfig,
    plot_instances,
    run_instances,
)
from sonic_exatrkx.bench.studies.latency import LatencyConfig, plot_latency, run_latency
from sonic_exatrkx.bench.studies.scaling import ScalingConfig, plot_scaling, run_scaling
from sonic_exatrkx.bench.studies.service_options import (
    ServiceOptionsConfig,
    plot_service_options,
    run_service_options,
)
from sonic_exatrkx.bench.studies.threads import ThreadsConfig, plot_threads, run_threads
from sonic_exatrkx.bench.studies.throughput import (
    ThroughputConfig,
    plot_throughput,
    run_throughput,
)

__all__ = ["STUDIES", "BatchingConfig", "BenchError", "BenchSettings", "InstancesConfig",
           "LatencyConfig", "ScalingConfig", "ServiceOptionsConfig", "Study", "ThreadsConfig",
           "ThroughputConfig", "study_of"]


@dataclass(frozen=True)
class Study:
    """One study: its name, its config type, how it runs and how it is drawn.
    ``shares_server``: it may use a server shared with other studies (``bench all``);
    the instances study starts its own servers, the scaling study none."""

    name: str
    config: type
    run: Callable[[Any, Say], Any]
    plot: Callable[[Any, Path], list[str]]
    shares_server: bool = True


STUDIES: dict[str, Study] = {s.name: s for s in (
    Study("throughput", ThroughputConfig, run_throughput, plot_throughput),
    Study("instances", InstancesConfig, run_instances, plot_instances, shares_server=False),
    Study("service-options", ServiceOptionsConfig, run_service_options, plot_service_options),
    Study("threads", ThreadsConfig, run_threads, plot_threads),
    Study("latency", LatencyConfig, run_latency, plot_latency),
    Study("batching", BatchingConfig, run_batching, plot_batching),
    Study("scaling", ScalingConfig, run_scaling, plot_scaling, shares_server=False),
)}


def study_of(config: Any) -> Study:
    """The study a config belongs to."""
    for study in STUDIES.values():
        if isinstance(config, study.config):
            return study
    raise BenchError(f"not a study configuration: {type(config).__name__}")
