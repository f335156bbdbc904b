"""One real Triton server for the SONIC tests, serving the ExaTrkX repository.

Models are small and untrained with a tight graph, so events are cheap; every model has
one instance. The repository also holds ``exatrkx_badshape``, a numpy-only test model
declaring LABELS [-1] but answering N-1 labels (the reference service's quirk), to check
that wrong outputs give a clear error.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from algorithms.keys import SPACEPOINTS, TRACKS
from sonic_exatrkx.exatrkx import GraphConfig, Pipeline, PipelineConfig
from sonic_exatrkx.framework import ProcessCode, Reader, ReadHandle, Sequencer, Writer
from sonic_exatrkx.io import acts_csv
from sonic_exatrkx.server import (
    ModelConfig,
    TritonServer,
    write_model,
)

BAD_SHAPE_MODEL = "exatrkx_badshape"
BAD_SHAPE_PY = '''
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        out = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "FEATURES").as_numpy()
            labels = np.arange(max(x.shape[0] - 1, 0), dtype=np.int64)
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor("LABELS", labels)]))
        return out
'''


@pytest.fixture(scope="session")
def sonic_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Small untrained models, tight graph: cheap events with non-trivial tracks."""
    out = tmp_path_factory.mktemp("sonic-models")
    config = PipelineConfig(graph=GraphConfig(radius=0.05, max_k=8, orientation="inner_outer"))
    Pipeline.from_config(config, seed=3).save(out)
    return out


def write_repo(repo: Path, models: Path, *, ensemble: bool = True) -> Path:
    from sonic_exatrkx.server import ExaTrkXRepositoryOptions, write_exatrkx_repository

    write_exatrkx_repository(repo, models, ExaTrkXRepositoryOptions(
        instances=1, num_threads=1, max_spacepoints=0, ensemble=ensemble))
    return repo


def start_server(repo: Path, log_dir: Path) -> TritonServer:
    server = TritonServer(repo, env_threads=1, ready_timeout=180, exit_timeout=2,
                          log_file=log_dir / "server.log")
    server.start()
    return server


@pytest.fixture(scope="session")
def exatrkx_server(triton_available: None, sonic_models: Path,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    repo = write_repo(tmp_path_factory.mktemp("sonic-repo"), sonic_models)
    write_model(repo, ModelConfig(BAD_SHAPE_MODEL, inputs=[("FEATURES", "FP32", (-1, 3))],
                                  outputs=[("LABELS", "INT64", (-1,))]),
                {"model.py": BAD_SHAPE_PY})
    server = start_server(repo, tmp_path_factory.mktemp("sonic-log"))
    try:
        yield server
    finally:
        server.stop()


class CyclingReader(Reader):
    """``n_events`` events cycling over the space points of a CSV folder's events, each
    cut to its first ``max_points`` (small events for timing tests)."""

    def __init__(self, folder: Path, n_events: int, max_points: int | None = None) -> None:
        super().__init__(name="CyclingReader")
        events = acts_csv.list_events(folder, "spacepoint")
        self.tables = [acts_csv.read_spacepoints(acts_csv.event_path(folder, e, "spacepoint"))
                       .iloc[:max_points].reset_index(drop=True) for e in events]
        self.n_events = n_events
        from sonic_exatrkx.framework import WriteHandle

        self.out = WriteHandle(self, SPACEPOINTS, pd.DataFrame)

    def available_events(self) -> range:
        return range(self.n_events)

    def execute(self, ctx) -> ProcessCode:
        self.out(ctx, self.tables[ctx.event % len(self.tables)])
        return ProcessCode.SUCCESS


class CollectTracks(Writer):
    """Keeps every event's labels; counts writes per event (exactly-once checks)."""

    def __init__(self) -> None:
        super().__init__(name="CollectTracks")
        self.inp = ReadHandle(self, TRACKS, np.ndarray)
        self.labels: dict[int, np.ndarray] = {}
        self.write_counts: dict[int, int] = {}

    def execute(self, ctx) -> ProcessCode:
        self.labels[ctx.event] = np.array(self.inp(ctx))
        self.write_counts[ctx.event] = self.write_counts.get(ctx.event, 0) + 1
        return ProcessCode.SUCCESS


def run_job(reader: Reader, algorithm, *, threads: int = 2, in_flight: int = 4,
            writers=(), **seq_kw):
    """Run reader -> algorithm -> CollectTracks (+ writers); returns (collector, summary)."""
    seq = Sequencer(num_threads=threads, max_in_flight=in_flight, progress=False, **seq_kw)
    seq.add_reader(reader)
    seq.add_algorithm(algorithm)
    out = CollectTracks()
    seq.add_writer(out)
    for w in writers:
        seq.add_writer(w)
    summary = seq.run()
    return out, summary
