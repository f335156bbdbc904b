"""Clear errors: bad configuration, bad URL, unknown model, wrong outputs, bad inputs,
timeouts; and that only recoverable failures are retried."""

from __future__ import annotations

import numpy as np
import pytest

from algorithms import CsvEventReader
from algorithms.exatrkx_track_finding import ExaTrkXTrackFinding, TrackFindingConfig
from sonic_exatrkx.framework import ConfigurationError
from sonic_exatrkx.server import free_ports
from sonic_exatrkx.sonic import (
    InferenceError,
    OutputCheckError,
    RequestTimeoutError,
    RetryPolicy,
    ServerUnavailableError,
    TensorSpec,
    TritonClient,
    TritonOptions,
    UnknownModelError,
    is_recoverable,
)
from tests.sonic.conftest import BAD_SHAPE_MODEL, run_job
from tests.sonic.proxy import DelayProxy

FEATURES = {"FEATURES": TensorSpec("FEATURES", "FP32", ("N", 3))}
LABELS = {"LABELS": TensorSpec("LABELS", "INT64", ("N",))}


def client(url, model="exatrkx", options=None):
    return TritonClient(model=model, servers=url, inputs=FEATURES, outputs=LABELS,
                        options=options)


def feats(n=20):
    return {"FEATURES": np.random.default_rng(0).uniform(0.1, 1, (n, 3)).astype(np.float32)}


@pytest.mark.parametrize(
    ("make", "message"),
    [(lambda: TrackFindingConfig(inference="remote"), "inference must be one of"),
     (lambda: TrackFindingConfig(inference="triton"), "needs servers"),
     (lambda: TrackFindingConfig(inference="triton", servers="localhost"),
      "bad Triton server URL 'localhost'"),
     (lambda: TrackFindingConfig(inference="triton", servers="h:1", mode="later"),
      "mode must be one of"),
     (lambda: TrackFindingConfig(inference="triton", servers="h:1", service_option="S9"),
      "service_option must be one of"),
     (lambda: TrackFindingConfig(inference="triton", servers="h:1", service_option=("knn",)),
      "service_option must be one of .* got ('knn',)"),
     (lambda: TritonOptions(retry=RetryPolicy(allowed_tries=0)), "allowed_tries"),
     (lambda: TritonOptions(protocol="udp"), "protocol must be"),
     (lambda: TrackFindingConfig(inference="triton", servers="h:1", output_intermediates="x"),
      "output_intermediates needs inference='local'"),
     (lambda: TrackFindingConfig(inference="triton", servers=["h:1", "h:1"]), "listed twice")],
)
def test_configuration_is_validated_at_construction(sonic_models, make, message):
    with pytest.raises(ConfigurationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ExaTrkXTrackFinding(make())

def test_no_server_answering_is_a_clear_error(sim_events, sonic_models):
    url = f"127.0.0.1:{free_ports('127.0.0.1', 1)[0]}"
    alg = ExaTrkXTrackFinding(TrackFindingConfig(models=sonic_models, inference="triton",
                                                 servers=url))
    with pytest.raises(ServerUnavailableError, match=f"no Triton server answers.*{url}"):
        run_job(CsvEventReader(sim_events), alg)


@pytest.mark.triton
def test_unknown_model_and_version(exatrkx_server):
    with pytest.raises(UnknownModelError, match="no ready model 'nope'.*serves: .*exatrkx"):
        client(exatrkx_server.grpc_url, model="nope").check()
    with pytest.raises(UnknownModelError, match="'exatrkx' version 7"):
        client(exatrkx_server.grpc_url, options=TritonOptions(model_version=7)).check()


@pytest.mark.triton
def test_declared_output_mismatch_fails_at_start(exatrkx_server):
    wrong = TritonClient(model="exatrkx", servers=exatrkx_server.grpc_url, inputs=FEATURES,
                         outputs={"LABELS": TensorSpec("LABELS", "INT32", ("N",))})
    with pytest.raises(ConfigurationError, match="declares output 'LABELS' as INT64"):
        wrong.check()


@pytest.mark.triton
@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_wrong_output_shape_is_a_clear_error_not_retried(exatrkx_server, protocol):
    url = exatrkx_server.grpc_url if protocol == "grpc" else exatrkx_server.http_url
    c = client(url, model=BAD_SHAPE_MODEL, options=TritonOptions(protocol=protocol))
    c.check()  # the declared shape is fine; the answer is not
    with pytest.raises(OutputCheckError,
                       match=rf"{BAD_SHAPE_MODEL}: output 'LABELS' is int64 \[19\], "
                             r"expected int64 \[N=20\]"):
        c.infer(feats(20))
    assert (c.stats.retries, c.stats.failures) == (0, 1)
    c.close()


@pytest.mark.triton
def test_invalid_argument_is_never_retried(exatrkx_server):
    c = client(exatrkx_server.grpc_url,
               options=TritonOptions(retry=RetryPolicy(allowed_tries=5)))
    bad = {"FEATURES": np.zeros((5, 4), np.float32)}
    with pytest.raises(InferenceError, match="INVALID_ARGUMENT|unexpected shape") as err:
        c.infer(bad)
    assert not is_recoverable(err.value.__cause__)
    assert c.stats.retries == 0
    c.close()


@pytest.mark.triton
def test_timeout_fails_or_retries_by_config(exatrkx_server):
    with DelayProxy(exatrkx_server.grpc_url, 0.1) as proxy:
        strict = client(proxy.url, options=TritonOptions(
            timeout_s=0.05, retry=RetryPolicy(on_timeout="fail")))
        with pytest.raises(RequestTimeoutError, match="timed out after 0.05 s"):
            strict.infer(feats())
        retrying = client(proxy.url, options=TritonOptions(
            timeout_s=0.05, retry=RetryPolicy(allowed_tries=2, backoff_s=0.01, budget_s=0)))
        with pytest.raises(InferenceError, match=r"every server failed.*\(2 tries\)"):
            retrying.infer(feats())
        assert retrying.stats.retries == 1
        patient = client(proxy.url, options=TritonOptions(timeout_s=5.0))
        assert patient.infer(feats())["LABELS"].shape == (20,)
        for c in (strict, retrying, patient):
            c.close()
