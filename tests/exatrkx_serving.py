"""The one ExaTrkX Triton server of the test session, and what it serves (no mocks).

``exatrkx_models``: a small untrained, seeded pipeline with a tight graph (simulated events
run in tens of milliseconds) whose GNN cut keeps half of the edges, so tracks are
non-trivial. ``exatrkx_server`` serves its repository (``exatrkx``, the stage models,
``exatrkx_ensemble``, the dynamically batched ``exatrkx_dynamic``; MAX_SPACEPOINTS = 3000)
plus ``exatrkx_badshape``, a numpy-only model
declaring LABELS [-1] but answering N-1 labels (the reference service's quirk), to check that
wrong outputs give a clear error. Server and SONIC tests share it (one stub set to start).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import pytest

from sonic_exatrkx.server import ModelConfig, TritonServer, write_model

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


MAX_SPACEPOINTS = 3000
#: The session server's exatrkx_dynamic batches up to this many requests, waiting 0.5 s
#: (a long queue delay, so that concurrent test clients are batched).
DYNAMIC_MAX_BATCH = 8
DYNAMIC_DELAY_US = 500_000


def toy_event(n_tracks: int, seed: int) -> np.ndarray:
    """Positions (mm) of toy tracks crossing barrel layers: ``x, y, z`` stacked."""
    rng = np.random.default_rng(seed)
    layers = np.array([32.0, 72.0, 116.0, 172.0, 260.0, 360.0, 500.0, 660.0])
    phi0 = rng.uniform(-3.0, 3.0, n_tracks)
    eta = rng.uniform(-2.0, 2.0, n_tracks)
    r = np.tile(layers, n_tracks) + rng.normal(0, 0.5, n_tracks * layers.size)
    phi = np.repeat(phi0, layers.size) + 1e-4 * r
    z = r * np.sinh(np.repeat(eta, layers.size))
    return np.stack([r * np.cos(phi), r * np.sin(phi), z])


def sim_positions(event: int, pileup: float = 0.0, seed: int = 5) -> np.ndarray:
    """``x, y, z`` (mm) of the space points of simulated HNL event ``event``."""
    from sonic_exatrkx.sim import SimulationConfig, simulate_event

    sp = simulate_event(SimulationConfig(sample="hnl", pileup=pileup, seed=seed),
                        event)["spacepoint"]
    return np.stack([sp[c].to_numpy(np.float64) for c in ("x", "y", "z")])


@pytest.fixture(scope="session")
def exatrkx_models(tmp_path_factory: pytest.TempPathFactory):
    """(model directory, loaded Pipeline): untrained, seeded, tight graph; the GNN cut keeps
    half of the edges of a simulated event, so tracks are non-trivial."""
    import torch

    from sonic_exatrkx.exatrkx import GraphConfig, Pipeline, PipelineConfig, sigmoid

    torch.set_num_threads(1)
    base = PipelineConfig()
    # degree cap 3: the served stages must apply it as Pipeline.run does
    cfg = replace(base, graph=GraphConfig(radius=0.05, max_k=8, orientation="inner_outer"),
                  filter=replace(base.filter, max_degree=3))
    pipe = Pipeline.from_config(cfg.with_cuts(filter_cut=0.5), seed=1)
    scores = pipe.run(pipe.features(*sim_positions(0)), return_intermediates=True).gnn_scores
    cut = float(np.quantile(sigmoid(scores), 0.5))
    pipe = Pipeline(pipe.embedding, pipe.filter, pipe.gnn, pipe.config.with_cuts(gnn_cut=cut))
    out = tmp_path_factory.mktemp("exatrkx-models")
    pipe.save(out)
    (out / "training-log.txt").write_text("not served")
    return out, Pipeline.from_directory(out)


@pytest.fixture(scope="session")
def sim_features(exatrkx_models) -> list[np.ndarray]:
    """Node features of test events: two simulated HNL events, an empty event, a single
    space point, a toy event."""
    _, pipe = exatrkx_models
    width = pipe.config.features.width
    return [pipe.features(*sim_positions(0)), pipe.features(*sim_positions(1)),
            np.zeros((0, width), np.float32), pipe.features(*sim_positions(2)[:, :1]),
            pipe.features(*toy_event(20, seed=3))]


@pytest.fixture(scope="session")
def exatrkx_server(triton_available: None, exatrkx_models,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    """The ExaTrkX repository served, plus the bad-shape model; one instance per model."""
    from sonic_exatrkx.server.exatrkx_repository import (
        DynamicBatching,
        ExaTrkXRepositoryOptions,
        write_exatrkx_repository,
    )

    repo = tmp_path_factory.mktemp("exatrkx-repo")
    dynamic = DynamicBatching(max_batch_size=DYNAMIC_MAX_BATCH,
                              max_queue_delay_us=DYNAMIC_DELAY_US)
    write_exatrkx_repository(repo, exatrkx_models[0], ExaTrkXRepositoryOptions(
        instances=1, num_threads=1, max_spacepoints=MAX_SPACEPOINTS, dynamic_batching=dynamic))
    write_model(repo, ModelConfig(BAD_SHAPE_MODEL, inputs=[("FEATURES", "FP32", (-1, 3))],
                                  outputs=[("LABELS", "INT64", (-1,))]),
                {"model.py": BAD_SHAPE_PY})
    log = tmp_path_factory.mktemp("exatrkx-log") / "server.log"
    with TritonServer(repo, env_threads=1, ready_timeout=180, exit_timeout=2,
                      log_file=log) as server:
        yield server


@pytest.fixture(scope="session")
def sonic_models(exatrkx_models):
    """The served models' folder (the SONIC and bench tests' name for it): local runs
    compare with ``exatrkx_server`` and with the servers tests start from it."""
    return exatrkx_models[0]
