"""Inference against the shared real Triton server: health, metadata, gRPC/HTTP, errors."""

from __future__ import annotations

import ipaddress
import re
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sonic_exatrkx.server import TritonServer, stubs_of

from .conftest import SCALE_INSTANCES

pytestmark = pytest.mark.triton

PROTOCOLS = ("grpc", "http")


@pytest.fixture
def connect(triton_server: TritonServer) -> Iterator[Callable[[str], tuple[Any, Any]]]:
    """Factory of (tritonclient module, client) per protocol; closes them after the test.

    An HTTP client left open keeps a kept-alive connection that delays server shutdown.
    """
    opened = []

    def make(protocol: str) -> tuple[Any, Any]:
        if protocol == "grpc":
            import tritonclient.grpc as tc

            c = tc.InferenceServerClient(triton_server.grpc_url)
        else:
            import tritonclient.http as tc

            c = tc.InferenceServerClient(triton_server.http_url, concurrency=8)
        opened.append(c)
        return tc, c

    yield make
    for c in opened:
        c.close()


def infer_input(tc, x: np.ndarray, name: str = "INPUT", datatype: str | None = None):
    from tritonclient.utils import np_to_triton_dtype

    inp = tc.InferInput(name, list(x.shape), datatype or np_to_triton_dtype(x.dtype))
    inp.set_data_from_numpy(x)
    return inp


def _listening_addresses(port: int) -> set[str]:
    """Local addresses listening on TCP ``port``, from /proc/net/tcp and tcp6.

    gRPC listens on an IPv6 socket bound to the IPv4-mapped ``::ffff:127.0.0.1``, which is
    reported as 127.0.0.1.
    """
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        path = Path(table)
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            addr, hexport = fields[1].split(":")
            if fields[3] != "0A" or int(hexport, 16) != port:  # 0A = LISTEN
                continue
            # The kernel prints each 32-bit word of the address in host (little-endian) order.
            raw = b"".join(bytes.fromhex(addr[i:i + 8])[::-1] for i in range(0, len(addr), 8))
            ip = ipaddress.ip_address(raw)
            mapped = getattr(ip, "ipv4_mapped", None)
            found.add(str(mapped or ip))
    return found


def test_ready_on_loopback_only(triton_server: TritonServer, connect) -> None:
    assert triton_server.is_running()
    assert triton_server.grpc_url.startswith("127.0.0.1:")
    assert triton_server.http_url.startswith("127.0.0.1:")
    for port in (triton_server.http_port, triton_server.grpc_port, triton_server.metrics_port):
        assert _listening_addresses(port) == {"127.0.0.1"}
    for protocol in PROTOCOLS:
        _, c = connect(protocol)
        assert c.is_server_live() and c.is_server_ready()
        assert c.is_model_ready("scale") and c.is_model_ready("twice")
        assert not c.is_model_ready("nope")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_model_metadata_and_config(connect, protocol: str) -> None:
    _, c = connect(protocol)
    if protocol == "grpc":
        meta = c.get_model_metadata("scale", as_json=True)
        cfg = c.get_model_config("scale", as_json=True)["config"]
    else:
        meta = c.get_model_metadata("scale")
        cfg = c.get_model_config("scale")
    assert meta["name"] == "scale"
    assert meta["versions"] == ["1"]
    inputs = {t["name"]: (t["datatype"], [int(d) for d in t["shape"]]) for t in meta["inputs"]}
    outputs = {t["name"]: (t["datatype"], [int(d) for d in t["shape"]]) for t in meta["outputs"]}
    assert inputs == {"INPUT": ("FP32", [-1, 3])}
    assert outputs == {"OUTPUT": ("FP32", [-1, 3]), "INSTANCE": ("INT32", [1])}
    assert cfg["backend"] == "python"
    assert [int(d) for d in cfg["input"][0]["dims"]] == [-1, 3]
    assert [(g["count"], g["kind"]) for g in cfg["instance_group"]] == [(SCALE_INSTANCES,
                                                                         "KIND_CPU")]
    assert cfg["parameters"]["factor"]["string_value"] == "2"


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("n", [1, 7, 2000])
def test_infer_matches_numpy(connect, protocol: str, n: int) -> None:
    tc, c = connect(protocol)
    x = np.random.default_rng(n).normal(size=(n, 3)).astype(np.float32)
    out = c.infer("scale", [infer_input(tc, x)])
    np.testing.assert_array_equal(out.as_numpy("OUTPUT"), x * np.float32(2))
    assert out.as_numpy("INSTANCE").dtype == np.int32
    ens = c.infer("twice", [infer_input(tc, x)])
    np.testing.assert_array_equal(ens.as_numpy("OUTPUT"), x * np.float32(4))


def _metric(text: str, name: str, model: str) -> float:
    total = 0.0
    for line in text.splitlines():
        m = re.match(rf'{name}\{{(.*)\}} ([0-9.eE+-]+)$', line)
        if m and f'model="{model}"' in m.group(1):
            total += float(m.group(2))
    return total


def test_two_instances_serve_and_are_counted(triton_server: TritonServer, connect) -> None:
    stubs = stubs_of(triton_server.pid)
    assert sorted(s.instance for s in stubs) == [f"scale_0_{i}" for i in range(SCALE_INSTANCES)]
    assert all(Path(f"/dev/shm/{s.shm_region}").exists() for s in stubs)

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def scraped_count() -> float:
        with opener.open(triton_server.metrics_url, timeout=10) as resp:
            return _metric(resp.read().decode(), "nv_inference_count", "scale")

    tc, c = connect("http")
    before = scraped_count()
    stats_before = int(c.get_inference_statistics("scale")["model_stats"][0]["inference_count"])
    x = np.ones((4, 3), np.float32)
    sent, used = 0, set()
    for _ in range(5):  # concurrent requests (10 ms each) reach both idle instances
        handles = [c.async_infer("scale", [infer_input(tc, x)]) for _ in range(16)]
        used |= {int(h.get_result().as_numpy("INSTANCE")[0]) for h in handles}
        sent += len(handles)
        if used == set(range(SCALE_INSTANCES)):
            break
    assert used == set(range(SCALE_INSTANCES))

    def stats_count() -> int:
        return int(c.get_inference_statistics("scale")["model_stats"][0]["inference_count"])

    # Statistics are recorded after the responses go out, and Prometheus metrics are
    # refreshed periodically (every 2 s by default): poll briefly for the final counts.
    for count, start in ((stats_count, stats_before), (scraped_count, before)):
        deadline = time.monotonic() + 15
        while count() - start < sent and time.monotonic() < deadline:
            time.sleep(0.25)
        assert count() - start == sent


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(
    ("model", "x", "name", "message"),
    [
        ("scale", np.zeros((5, 3), np.float64), "INPUT",
         "data-type is 'FP64', but model 'scale' expects 'FP32'"),
        ("twice", np.zeros((5, 4), np.float32), "INPUT",
         "unexpected shape for input 'INPUT' for model 'twice'. Expected [-1,3], got [5,4]"),
        ("scale", np.zeros((5, 3), np.float32), "X", "unexpected inference input 'X'"),
        ("nope", np.zeros((5, 3), np.float32), "INPUT", "unknown model"),
    ],
    ids=["dtype", "shape", "name", "model"],
)
def test_bad_request_is_rejected_and_server_keeps_serving(
    triton_server: TritonServer, connect, protocol: str, model: str, x: np.ndarray, name: str,
    message: str,
) -> None:
    from tritonclient.utils import InferenceServerException

    tc, c = connect(protocol)
    with pytest.raises(InferenceServerException) as err:
        c.infer(model, [infer_input(tc, x, name)])
    assert message in err.value.message()
    good = np.ones((2, 3), np.float32)
    np.testing.assert_array_equal(
        c.infer("scale", [infer_input(tc, good)]).as_numpy("OUTPUT"), good * 2)
    assert triton_server.is_running()
