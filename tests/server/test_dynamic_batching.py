"""Server-side batching of concurrent requests (``exatrkx_dynamic``) and the one-pass
computation behind it and behind row-split requests (``Pipeline.run_many``).

The labels must be those of one-event requests, bit for bit: in process on many event
sizes (1 and 2 threads), and served, with several concurrent clients that Triton's dynamic
batcher hands to one execution (checked in Triton's own statistics).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from sonic_exatrkx.exatrkx import Pipeline
from sonic_exatrkx.exatrkx.pipeline import ROW_ALIGN, aligned_rows
from sonic_exatrkx.paths import data_dir
from sonic_exatrkx.server import ROW_SPLITS, ModelConfig, ModelConfigError, TritonServer
from sonic_exatrkx.server.batching import batch_events, run_batched, run_requests, split_labels
from sonic_exatrkx.server.exatrkx_repository import (
    DYNAMIC_MODEL,
    PIPELINE_MODEL,
    DynamicBatching,
    ExaTrkXRepositoryOptions,
    exatrkx_model_configs,
)

from .conftest import DYNAMIC_DELAY_US, DYNAMIC_MAX_BATCH, MAX_SPACEPOINTS, sim_positions

# --- in process ---------------------------------------------------------------------------


def many_events(pipe: Pipeline) -> list[np.ndarray]:
    """Events of many sizes: simulated (mu 0 and 10), cut at random lengths, near the
    row alignment, empty, one and two space points."""
    rng = np.random.default_rng(7)
    events = []
    for event, mu in ((0, 0.0), (1, 0.0), (2, 10.0), (3, 0.0)):
        f = pipe.features(*sim_positions(event, pileup=mu))
        events += [f, f[: rng.integers(3, f.shape[0])]]
    f = events[0]
    events += [f[:ROW_ALIGN - 1], f[:ROW_ALIGN], f[:ROW_ALIGN + 1], f[:0], f[:1], f[:2]]
    return events


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("models", ["shipped", "test"])
def test_run_many_equals_run_bit_for_bit(exatrkx_models, models: str, threads: int) -> None:
    pipe = Pipeline.from_directory(data_dir() / "models" if models == "shipped"
                                   else exatrkx_models[0], num_threads=threads)
    events = many_events(pipe)
    try:
        alone = [pipe.run(f, return_intermediates=True) for f in events]
        together = pipe.run_many(events)
    finally:
        torch.set_num_threads(1)
    assert sum(r.n_edges["gnn"] for r in alone) > 1000  # tracks are built, not trivial
    for f, one, got in zip(events, alone, together, strict=True):
        assert got.dtype == one.labels.dtype and got.shape == (f.shape[0],)
        np.testing.assert_array_equal(got, one.labels, err_msg=f"{f.shape[0]} points")
    assert pipe.run_many([]) == []


def test_aligned_rows() -> None:
    assert [aligned_rows(n) for n in (0, 1, ROW_ALIGN - 1, ROW_ALIGN, 5 * ROW_ALIGN + 3)] == [
        ROW_ALIGN, ROW_ALIGN, ROW_ALIGN, 2 * ROW_ALIGN, 6 * ROW_ALIGN]


def test_run_requests_answers_each_request(exatrkx_models, sim_features) -> None:
    """What one execute of exatrkx_dynamic does with the requests Triton batched: labels
    [B, N] per request; a bad request gets its own error, the others their labels."""
    _, pipe = exatrkx_models
    expected = [pipe.run(f).labels for f in sim_features]
    nan = sim_features[1].copy()
    nan[2, 0] = np.nan
    feats, rs = batch_events(sim_features[:3])
    requests = [(sim_features[0][None], None), (nan[None], None), (feats[None], rs[None]),
                (sim_features[4][None], None), (sim_features[0], None),
                (np.stack([sim_features[1]] * 2), None),
                (feats[None], np.zeros((1, 66), np.int64))]
    out = run_requests(pipe, requests, MAX_SPACEPOINTS)
    np.testing.assert_array_equal(out[0], expected[0][None])
    assert isinstance(out[1], ValueError) and "NaN/inf in 1 row(s), first at row 2" in str(out[1])
    assert out[2].shape == (1, feats.shape[0])
    for got, want in zip(split_labels(out[2][0], rs), expected[:3], strict=True):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(out[3], expected[4][None])
    assert isinstance(out[4], ValueError) and "must be [batch, N, F]" in str(out[4])
    np.testing.assert_array_equal(out[5], np.stack([expected[1]] * 2))
    assert "MAX_EVENTS_PER_REQUEST=64" in str(out[6])
    # explicit row splits (the exatrkx model) take the same one-pass path
    np.testing.assert_array_equal(run_batched(pipe, feats, MAX_SPACEPOINTS, rs),
                                  np.concatenate(expected[:3]))


# --- the generated model configuration ------------------------------------------------------


def test_dynamic_model_config(exatrkx_models) -> None:
    _, pipe = exatrkx_models
    opts = ExaTrkXRepositoryOptions(instances=2, ensemble=False, dynamic_batching=DynamicBatching(
        max_batch_size=16, max_queue_delay_us=2500))
    configs = {c.name: c for c in exatrkx_model_configs(pipe, opts)}
    assert sorted(configs) == [PIPELINE_MODEL, DYNAMIC_MODEL]
    msg = text_format.Parse(configs[DYNAMIC_MODEL].render(), model_config_pb2.ModelConfig())
    width = pipe.config.features.width
    assert msg.max_batch_size == 16 and msg.backend == "python"
    assert msg.dynamic_batching.max_queue_delay_microseconds == 2500
    assert [(i.name, list(i.dims), i.allow_ragged_batch, i.optional) for i in msg.input] == [
        ("FEATURES", [-1, width], True, False), (ROW_SPLITS, [-1], True, True)]
    assert [(o.name, list(o.dims)) for o in msg.output] == [("LABELS", [-1])]
    assert msg.instance_group[0].count == 2
    assert msg.parameters["MAX_EVENTS_PER_REQUEST"].string_value == "64"
    plain = text_format.Parse(configs[PIPELINE_MODEL].render(), model_config_pb2.ModelConfig())
    assert plain.max_batch_size == 0 and not plain.HasField("dynamic_batching")
    assert PIPELINE_MODEL in [c.name for c in exatrkx_model_configs(
        pipe, ExaTrkXRepositoryOptions())]
    assert DYNAMIC_MODEL not in [c.name for c in exatrkx_model_configs(
        pipe, ExaTrkXRepositoryOptions())]  # only on request


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"max_queue_delay_us": 5}, "max_queue_delay_us needs dynamic_batching"),
     ({"ragged_inputs": ["X"]}, "ragged_inputs ['X'] are not inputs"),
     ({"ragged_inputs": ["INPUT"]}, "ragged_inputs need dynamic_batching"),
     ({"max_batch_size": 4, "dynamic_batching": True, "max_queue_delay_us": -1},
      "max_queue_delay_us must be an integer >= 0")],
)
def test_bad_batching_configs(kwargs: dict, message: str) -> None:
    with pytest.raises(ModelConfigError) as err:
        ModelConfig("m", [("INPUT", "FP32", (-1,))], [("OUTPUT", "FP32", (-1,))], **kwargs)
    assert message in str(err.value)
    with pytest.raises(ModelConfigError, match="max_batch_size must be an integer >= 1"):
        DynamicBatching(max_batch_size=0)


# --- served, with concurrent clients ---------------------------------------------------------


def _infer(url: str, model: str, tensors: dict[str, np.ndarray]) -> np.ndarray:
    import tritonclient.grpc as tg
    from tritonclient.utils import np_to_triton_dtype

    inputs = []
    for name, array in tensors.items():
        item = tg.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
        item.set_data_from_numpy(array)
        inputs.append(item)
    with tg.InferenceServerClient(url) as client:
        return client.infer(model, inputs).as_numpy("LABELS")


def _counts(url: str) -> tuple[int, int]:
    """(inference_count, execution_count) of exatrkx_dynamic: requests and executions."""
    import tritonclient.grpc as tg

    with tg.InferenceServerClient(url) as client:
        stats = client.get_inference_statistics(DYNAMIC_MODEL, as_json=True)
    model = stats["model_stats"][0]
    return int(model.get("inference_count", 0)), int(model.get("execution_count", 0))


def _concurrently(calls: list, n: int | None = None) -> list:
    """Run the ``calls`` (no arguments) at once from ``len(calls)`` client threads; each
    result or the exception it raised."""
    barrier = threading.Barrier(len(calls))

    def run(call):
        barrier.wait()
        try:
            return call()
        except Exception as exc:  # noqa: BLE001 - returned for the test to look at
            return exc

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


@pytest.mark.triton
def test_concurrent_clients_are_batched_with_one_event_labels(
    exatrkx_server: TritonServer, exatrkx_models, sim_features: list[np.ndarray]
) -> None:
    _, pipe = exatrkx_models
    url = exatrkx_server.grpc_url
    events = [*sim_features, *(pipe.features(*sim_positions(e)) for e in (3, 4, 5))]
    assert len(events) == DYNAMIC_MAX_BATCH
    one_event = [_infer(url, PIPELINE_MODEL, {"FEATURES": f}) for f in events]
    for f, labels in zip(events, one_event, strict=True):
        np.testing.assert_array_equal(labels, pipe.run(f).labels)
    before = _counts(url)
    calls = [lambda f=f: _infer(url, DYNAMIC_MODEL, {"FEATURES": f[None]}) for f in events]
    results = _concurrently(calls)
    requests, executions = (a - b for a, b in zip(_counts(url), before, strict=True))
    print(f"\n{requests} concurrent requests to {DYNAMIC_MODEL} ran in {executions} "
          f"execution(s) (max batch {DYNAMIC_MAX_BATCH}, delay {DYNAMIC_DELAY_US} us)")
    for f, got, want in zip(events, results, one_event, strict=True):
        assert not isinstance(got, Exception), got
        assert got.dtype == np.int64 and got.shape == (1, f.shape[0])
        np.testing.assert_array_equal(got[0], want)
    assert requests == len(events)
    assert executions < requests  # batched: several requests in one execute


@pytest.mark.triton
def test_batched_requests_keep_their_own_errors_and_row_splits(
    exatrkx_server: TritonServer, exatrkx_models, sim_features: list[np.ndarray]
) -> None:
    from tritonclient.utils import InferenceServerException

    _, pipe = exatrkx_models
    url = exatrkx_server.grpc_url
    nan = sim_features[0].copy()
    nan[5, 2] = np.inf
    big = np.random.default_rng(0).uniform(0.1, 1, (MAX_SPACEPOINTS + 1, nan.shape[1]))
    feats, rs = batch_events(sim_features)
    calls = [lambda: _infer(url, DYNAMIC_MODEL, {"FEATURES": nan[None]}),
             lambda: _infer(url, DYNAMIC_MODEL, {"FEATURES": big.astype(np.float32)[None]}),
             lambda: _infer(url, DYNAMIC_MODEL, {"FEATURES": feats[None], ROW_SPLITS: rs[None]}),
             lambda: _infer(url, DYNAMIC_MODEL, {"FEATURES": sim_features[1][None]}),
             # a plain client's row-split request, to the unchanged exatrkx model
             lambda: _infer(url, PIPELINE_MODEL, {"FEATURES": feats, ROW_SPLITS: rs})]
    nan_err, big_err, split, single, plain = _concurrently(calls)
    assert isinstance(nan_err, InferenceServerException)
    assert "NaN/inf in 1 row(s), first at row 5" in nan_err.message()
    assert isinstance(big_err, InferenceServerException)
    assert f"MAX_SPACEPOINTS={MAX_SPACEPOINTS}" in big_err.message()
    expected = [pipe.run(f).labels for f in sim_features]
    for got in (split[0], plain):
        for part, want in zip(split_labels(got, rs), expected, strict=True):
            np.testing.assert_array_equal(part, want)
    np.testing.assert_array_equal(single[0], expected[1])
    # a plain [N, F] request is refused by Triton: N is read as the batch dimension
    with pytest.raises(InferenceServerException, match="batch-size must be <= 8"):
        _infer(url, DYNAMIC_MODEL, {"FEATURES": sim_features[0]})
    with pytest.raises(InferenceServerException, match="unexpected shape for input 'FEATURES'"):
        _infer(url, DYNAMIC_MODEL, {"FEATURES": sim_features[3]})  # one space point


def test_serve_options_name_the_dynamic_model(tmp_path: Path, exatrkx_models) -> None:
    from sonic_exatrkx.server.foreground import ServeOptions, generate_repository

    options = ServeOptions(model_repository=None, models=exatrkx_models[0], instances=1,
                           threads_per_instance=1, max_spacepoints=0, host="127.0.0.1",
                           http_port=None, grpc_port=None, metrics_port=None,
                           ready_timeout=60, dynamic_batching=True, max_queue_delay_us=250)
    names = generate_repository(exatrkx_models[0], tmp_path, options.repository_options())
    assert DYNAMIC_MODEL in names and PIPELINE_MODEL in names
    text = (tmp_path / DYNAMIC_MODEL / "config.pbtxt").read_text()
    assert "max_queue_delay_microseconds: 250" in text and "allow_ragged_batch: true" in text
    assert "dynamic_model import TritonPythonModel" in \
        (tmp_path / DYNAMIC_MODEL / "1" / "model.py").read_text()
