"""Small parts without a server: URL parsing, error classes, statistics, output checks."""

from __future__ import annotations

import http.client

import numpy as np
import pytest

from sonic_exatrkx.framework import ConfigurationError
from sonic_exatrkx.sonic import (
    ClientStats,
    OutputCheckError,
    TensorSpec,
    check_outputs,
    is_recoverable,
    parse_servers,
    write_prometheus,
)


def test_parse_servers():
    assert parse_servers("a:1, grpc://b:2") == ["a:1", "b:2"]
    assert parse_servers(["[::1]:8001"]) == ["[::1]:8001"]
    for bad in ("a", "a:0", "a:99999", "a:b", ""):
        with pytest.raises(ConfigurationError, match="bad Triton server URL|no Triton"):
            parse_servers(bad)


def test_recoverable_errors():
    from tritonclient.utils import InferenceServerException

    def exc(status):
        return InferenceServerException("x", status=status)

    assert is_recoverable(exc("StatusCode.UNAVAILABLE"))
    assert is_recoverable(exc("StatusCode.DEADLINE_EXCEEDED"))
    assert not is_recoverable(exc("StatusCode.INVALID_ARGUMENT"))
    assert not is_recoverable(exc("StatusCode.NOT_FOUND"))
    assert not is_recoverable(exc("StatusCode.INTERNAL"))
    assert not is_recoverable(exc("400"))
    assert is_recoverable(ConnectionRefusedError())
    assert is_recoverable(http.client.RemoteDisconnected("gone"))
    assert not is_recoverable(ValueError("bad"))
    assert not is_recoverable(OutputCheckError("bad"))


def test_output_checks_bind_symbolic_dims():
    specs = {"LABELS": TensorSpec("LABELS", "INT64", ("N",)),
             "EDGES": TensorSpec("EDGES", "INT64", (2, -1))}
    good = {"LABELS": np.zeros(5, np.int64), "EDGES": np.zeros((2, 7), np.int64)}
    check_outputs("m", specs, good, {"N": 5})
    with pytest.raises(OutputCheckError, match=r"'LABELS' is int64 \[4\], expected int64 "
                                               r"\[N=5\]"):
        check_outputs("m", specs, {**good, "LABELS": np.zeros(4, np.int64)}, {"N": 5})
    with pytest.raises(OutputCheckError, match=r"'EDGES' is int32"):
        check_outputs("m", specs, {**good, "EDGES": np.zeros((2, 7), np.int32)}, {"N": 5})
    with pytest.raises(OutputCheckError, match="'EDGES' missing"):
        check_outputs("m", specs, {"LABELS": good["LABELS"]}, {"N": 5})


def test_stats_lines_and_prometheus(tmp_path):
    a, b = ClientStats("triton:exatrkx"), ClientStats("local:pipeline")
    a.add(requests=3, retries=1, bytes_sent=3000)
    for s in (0.01, 0.02, 0.03):
        a.record_latency(s)
    b.add(requests=1)
    assert "3 requests, 1 retries" in a.line() and "p50 20.0 ms" in a.line()
    text = write_prometheus(tmp_path / "m.prom", [a, b]).read_text()
    assert text.count("# TYPE sonic_client_requests_total counter") == 1
    assert 'sonic_client_requests_total{client="triton:exatrkx"} 3' in text
    assert 'sonic_client_requests_total{client="local:pipeline"} 1' in text
    assert 'sonic_client_latency_seconds_count{client="triton:exatrkx"} 3' in text
