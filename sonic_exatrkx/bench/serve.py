"""Engine of `sonic-exatrkx bench serve`: throughput and latency of the served ExaTrkX
models against the same events run in-process.

One process, loopback only. For each instance count a real Triton server is started on
127.0.0.1 with the ExaTrkX repository generated from the models, and stopped afterwards.
Requests are sent from ``concurrency`` client threads (one tritonclient client each) pulling
events from a shared queue; each pass sends every event once. Paths measured:

- ``direct``: :meth:`Pipeline.run` in this process, ``concurrency`` threads (no server);
- ``exatrkx``: the custom-backend model, one event per request;
- ``exatrkx xB``: the same model, ``B`` events per request (``ROW_SPLITS``);
- ``ensemble``: ``exatrkx_ensemble``, the per-stage models chained by Triton.

events/s = events / wall time of the pass (for one event per request, = requests/s);
latency percentiles are per request (a batched request carries ``B`` events). Every served
label is compared with the direct labels (those of the first direct pass; the other direct
passes are compared with it too). A pass is short when events are few and small:
give low-pileup runs more ``--events``.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sonic_exatrkx.bench.workers import WorkerPool, run_concurrent
from sonic_exatrkx.exatrkx.stages import DYNAMIC_MODEL

__all__ = ["Row", "ServeBenchConfig", "ServeBenchResult", "bench_direct", "bench_served",
           "format_ratios", "format_table", "run_serve_bench", "simulated_features"]
#: Warm-up before measuring (TorchScript's profiling executor specialises on the first calls;
#: thread pools and allocators warm up): the first WARMUP events of the first block, cut to
#: WARMUP_ROWS space points so that a high-pileup block does not make it slow.
WARMUP = 3
WARMUP_ROWS = 2000
#: A request taking longer than this fails the benchmark instead of hanging it.
REQUEST_TIMEOUT_S = 600.0
PIPELINE_PATH = "exatrkx"
ENSEMBLE_PATH = "ensemble"
#: The custom backend with Triton's dynamic batching (``exatrkx_dynamic``): one event per
#: request, concurrent requests computed in one pass on the server.
BATCHED_PATH = "custom-batched"
DIRECT_PATH = "direct"


@dataclass
class Row:
    """One measured pass: every event of one pileup block through one path."""

    pileup: float
    space_points: float  # mean per event
    instances: int | None  # None for direct
    concurrency: int
    path: str
    events_per_request: int
    events: int
    wall_s: float
    latencies_s: list[float] = field(default_factory=list)
    labels_equal: bool | None = None  # served labels == direct labels (None: not checked)

    @property
    def events_per_s(self) -> float:
        return self.events / self.wall_s if self.wall_s > 0 else float("nan")

    def latency_ms(self, q: float) -> float:
        return float(np.percentile(self.latencies_s, q)) * 1e3 if self.latencies_s else \
            float("nan")


def simulated_features(pipeline: Any, pileup: float, events: int, seed: int
                       ) -> list[np.ndarray]:
    """Node features of ``events`` simulated HNL events at ``pileup`` (event numbers 0..)."""
    from sonic_exatrkx.sim import SimulationConfig, simulate_event

    cfg = SimulationConfig(sample="hnl", pileup=pileup, seed=seed)
    out = []
    for i in range(events):
        sp = simulate_event(cfg, i)["spacepoint"]
        out.append(pipeline.features(sp["x"].to_numpy(np.float64), sp["y"].to_numpy(np.float64),
                                     sp["z"].to_numpy(np.float64)))
    return out


def _warmup_events(blocks: dict[float, list[np.ndarray]]) -> list[np.ndarray]:
    first = next(iter(blocks.values()), [])
    return [np.ascontiguousarray(f[:WARMUP_ROWS]) for f in first[:WARMUP]]


def bench_direct(pipeline: Any, blocks: dict[float, list[np.ndarray]],
                 concurrency: Sequence[int]) -> tuple[list[Row], dict[float, list[np.ndarray]]]:
    """The in-process rows, and the direct labels per block (the reference for the server)."""
    rows = []
    labels: dict[float, list[np.ndarray]] = {}
    for f in _warmup_events(blocks):
        pipeline.run(f)
    for mu, feats in blocks.items():
        mean_sp = float(np.mean([f.shape[0] for f in feats]))
        for c in concurrency:
            wall, lat, res = run_concurrent(lambda f: pipeline.run(f).labels, feats, c)
            equal = None if mu not in labels else all(
                np.array_equal(a, b) for a, b in zip(res, labels[mu], strict=True))
            labels.setdefault(mu, res)  # the first pass is the reference
            rows.append(Row(mu, mean_sp, None, c, DIRECT_PATH, 1, len(feats), wall, lat, equal))
    return rows, labels


def _client_factory(url: str, protocol: str) -> tuple[Any, Callable[[], Any]]:
    """The tritonclient module and a function making one client (call it in the thread that
    will use the client)."""
    if protocol == "grpc":
        import tritonclient.grpc as tg

        return tg, lambda: tg.InferenceServerClient(url)
    import tritonclient.http as th

    return th, lambda: th.InferenceServerClient(url, connection_timeout=REQUEST_TIMEOUT_S,
                                                network_timeout=REQUEST_TIMEOUT_S)


def bench_served(url: str, protocol: str, blocks: dict[float, list[np.ndarray]],
                 concurrency: Sequence[int], batch_sizes: Sequence[int], instances: int,
                 expected: dict[float, list[np.ndarray]] | None = None,
                 models: Sequence[str] = ("exatrkx", "exatrkx_ensemble")) -> list[Row]:
    """Rows of the served paths on a running server at ``url`` (``grpc`` or ``http``)."""
    from sonic_exatrkx.server import ROW_SPLITS, batch_events, split_labels

    rows = []
    tc, make_client = _client_factory(url, protocol)
    with WorkerPool(max(concurrency), make_client, lambda c: c.close()) as pool:
        def infer(client: Any, model: str, tensors: dict[str, np.ndarray]) -> np.ndarray:
            batched = model == DYNAMIC_MODEL  # Triton's batch dimension: one request = [1, ...]
            inputs = []
            for name, array in tensors.items():
                array = array[None] if batched else array
                inp = tc.InferInput(name, list(array.shape),
                                    "FP32" if array.dtype == np.float32 else "INT64")
                inp.set_data_from_numpy(array)
                inputs.append(inp)
            timeout = {"client_timeout": REQUEST_TIMEOUT_S} if protocol == "grpc" else {}
            labels = client.infer(model, inputs, **timeout).as_numpy("LABELS")
            return labels[0] if batched else labels

        paths: list[tuple[str, str, int]] = []  # (label, model, events per request)
        for model in models:
            if model == "exatrkx":
                paths += [(PIPELINE_PATH if b == 1 else f"{PIPELINE_PATH} x{b}", model, b)
                          for b in sorted(set(batch_sizes))]
            else:
                label = {"exatrkx_ensemble": ENSEMBLE_PATH, DYNAMIC_MODEL: BATCHED_PATH}
                paths.append((label.get(model, model), model, 1))
        warm = min(max(concurrency), instances)  # reach every instance if possible
        for model in dict.fromkeys(m for _, m, _ in paths):
            pool.map(lambda client, f, model=model: infer(client, model, {"FEATURES": f}),
                     _warmup_events(blocks) * warm, warm)
        for mu, feats in blocks.items():
            mean_sp = float(np.mean([f.shape[0] for f in feats]))
            for c in concurrency:
                for label, model, b in paths:
                    if b == 1:
                        requests: list[Any] = [({"FEATURES": f}, None) for f in feats]
                    else:
                        requests = []
                        for i in range(0, len(feats), b):
                            batch, splits = batch_events(feats[i:i + b])
                            requests.append(({"FEATURES": batch, ROW_SPLITS: splits}, splits))

                    def call(client: Any, req: tuple[dict[str, np.ndarray], Any],
                             model: str = model) -> list[np.ndarray]:
                        tensors, splits = req
                        out = infer(client, model, tensors)
                        return [out] if splits is None else split_labels(out, splits)

                    wall, lat, res = pool.map(call, requests, c)
                    got = [lab for r in res for lab in r]
                    equal = None
                    if expected is not None and mu in expected:
                        equal = len(got) == len(expected[mu]) and all(
                            np.array_equal(a, e) for a, e in zip(got, expected[mu], strict=True))
                    rows.append(Row(mu, mean_sp, instances, c, label, b, len(feats), wall, lat,
                                    equal))
    return rows


def format_table(rows: Sequence[Row]) -> str:
    """Markdown table of all rows."""
    lines = ["| mu | space points | instances | concurrency | path | events/request | events/s | "
             "p50 ms | p90 ms | p99 ms | labels = direct |",
             "|" + "---|" * 11]
    for r in rows:
        same = "-" if r.labels_equal is None else ("yes" if r.labels_equal else "NO")
        lines.append(
            f"| {r.pileup:g} | {r.space_points:.0f} | {r.instances or '-'} | {r.concurrency} | "
            f"{r.path} | {r.events_per_request} | {r.events_per_s:.2f} | {r.latency_ms(50):.1f} "
            f"| {r.latency_ms(90):.1f} | {r.latency_ms(99):.1f} | {same} |")
    return "\n".join(lines)


def format_ratios(rows: Sequence[Row]) -> str:
    """Events/s ratios: custom/direct, custom/ensemble and batched/custom per setting."""
    direct = {(r.pileup, r.concurrency): r for r in rows if r.path == DIRECT_PATH}
    served: dict[tuple[float, int, int], dict[str, Row]] = {}
    for r in rows:
        if r.path != DIRECT_PATH:
            served.setdefault((r.pileup, r.instances or 0, r.concurrency), {})[r.path] = r
    batched = sorted({r.path for r in rows if r.path.startswith(f"{PIPELINE_PATH} x")},
                     key=lambda p: int(p.rsplit("x", 1)[1]))
    lines = ["| mu | instances | concurrency | custom/direct | custom/ensemble | "
             + " | ".join(f"{p}/custom" for p in batched) + (" |" if batched else "|"),
             "|" + "---|" * (5 + len(batched))]

    def ratio(a: Row | None, b: Row | None) -> str:
        return f"{a.events_per_s / b.events_per_s:.2f}" if a and b else "-"

    for (mu, inst, c), paths in served.items():
        custom = paths.get(PIPELINE_PATH)
        cells = [ratio(custom, direct.get((mu, c))), ratio(custom, paths.get(ENSEMBLE_PATH))]
        cells += [ratio(paths.get(p), custom) for p in batched]
        lines.append(f"| {mu:g} | {inst} | {c} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


@dataclass(frozen=True)
class ServeBenchConfig:
    """What `bench serve` measures (the command's options)."""

    models: Path  # trained pipeline folder
    events: int  # per pileup value
    pileups: tuple[float, ...]
    concurrency: tuple[int, ...]  # requests in flight
    instances: tuple[int, ...]  # per model, one server each
    batch_sizes: tuple[int, ...]  # events per request of the custom model
    threads_per_instance: int  # also those of the direct pipeline
    seed: int
    protocol: str  # grpc or http


@dataclass(frozen=True)
class ServeBenchResult:
    """Every measured pass, direct ones first."""

    rows: tuple[Row, ...]

    @property
    def labels_differ(self) -> bool:
        return any(r.labels_equal is False for r in self.rows)

    def lines(self) -> list[str]:
        return ["", format_table(self.rows), "", format_ratios(self.rows)]


def run_serve_bench(config: ServeBenchConfig, say: Callable[[str], None] = print
                    ) -> ServeBenchResult:
    """The direct passes, then one real Triton server per instance count on 127.0.0.1 (its
    repository generated from ``config.models``, removed afterwards); ``say`` gets the
    settings and progress lines."""
    from sonic_exatrkx.exatrkx import Pipeline
    from sonic_exatrkx.server import TritonServer
    from sonic_exatrkx.server.exatrkx_repository import (
        ExaTrkXRepositoryOptions,
        write_exatrkx_repository,
    )

    c = config
    pipe = Pipeline.from_directory(c.models, num_threads=c.threads_per_instance)
    blocks = {float(mu): simulated_features(pipe, mu, c.events, c.seed) for mu in c.pileups}
    say(f"models {c.models}; {c.events} HNL events per pileup (seed {c.seed}); "
        f"{os.cpu_count()} CPUs; {c.threads_per_instance} thread(s) per instance; "
        f"protocol {c.protocol}; loopback")
    t0 = time.perf_counter()
    rows, expected = bench_direct(pipe, blocks, c.concurrency)
    say(f"direct: {time.perf_counter() - t0:.0f} s")
    for n in c.instances:
        with tempfile.TemporaryDirectory(prefix="bench-serve-repo-") as tmp:
            write_exatrkx_repository(tmp, c.models, ExaTrkXRepositoryOptions(
                instances=n, num_threads=c.threads_per_instance, max_spacepoints=0))
            with TritonServer(tmp, env_threads=c.threads_per_instance,
                              ready_timeout=300) as server:
                say(f"{n} instance(s): server ready in {server.start_seconds:.1f} s")
                t0 = time.perf_counter()
                url = server.grpc_url if c.protocol == "grpc" else server.http_url
                rows += bench_served(url, c.protocol, blocks, c.concurrency, c.batch_sizes, n,
                                     expected)
                say(f"{n} instance(s): measured in {time.perf_counter() - t0:.0f} s")
    return ServeBenchResult(tuple(rows))
