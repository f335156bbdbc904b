"""`bench serve`: the measuring functions on the session's ExaTrkX server, and argument
errors (the full command starts its own servers; it is run by hand, not here)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from sonic_exatrkx.bench.serve import bench_direct, bench_served, format_ratios, format_table
from sonic_exatrkx.bench.workers import run_concurrent
from sonic_exatrkx.cli.bench_serve import bench_serve_cmd
from sonic_exatrkx.server import TritonServer

runner = CliRunner()
app = typer.Typer()
app.command("serve")(bench_serve_cmd)
app.command("other")(lambda: None)


def test_run_concurrent_keeps_order_and_raises() -> None:
    wall, lat, res = run_concurrent(lambda x: x * 2, list(range(10)), 3)
    assert res == [2 * x for x in range(10)] and len(lat) == 10 and wall >= 0

    def boom(x: int) -> int:
        if x == 4:
            raise RuntimeError("bad item")
        return x

    with pytest.raises(RuntimeError, match="bad item"):
        run_concurrent(boom, list(range(10)), 2)


@pytest.mark.triton
@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_bench_rows_against_the_session_server(exatrkx_server: TritonServer, exatrkx_models,
                                               sim_features: list[np.ndarray],
                                               protocol: str) -> None:
    _, pipe = exatrkx_models
    blocks = {0.0: sim_features[:3]}
    rows, expected = bench_direct(pipe, blocks, [1, 2])
    assert [(r.path, r.labels_equal) for r in rows] == [("direct", None), ("direct", True)]
    url = exatrkx_server.grpc_url if protocol == "grpc" else exatrkx_server.http_url
    served = bench_served(url, protocol, blocks, [1, 2], [1, 2], 1, expected)
    assert [(r.concurrency, r.path, r.events_per_request) for r in served] == [
        (c, p, b) for c in (1, 2)
        for p, b in (("exatrkx", 1), ("exatrkx x2", 2), ("ensemble", 1))]
    assert all(r.labels_equal for r in served)
    assert all(r.events == 3 and r.events_per_s > 0 for r in served)
    assert len(served[1].latencies_s) == 2  # 3 events in requests of 2 and 1
    table = format_table(rows + served)
    assert table.count("\n") == 2 + len(rows) + len(served) - 1
    ratios = format_ratios(rows + served)
    assert "custom/direct | custom/ensemble | exatrkx x2/custom |" in ratios
    assert ratios.count("\n") == 3


def test_bench_serve_argument_errors(tmp_path: Path) -> None:
    result = runner.invoke(app, ["serve", "--concurrency", "0", "--models", str(tmp_path)])
    assert result.exit_code == 2 and "--concurrency" in result.output
    result = runner.invoke(app, ["serve", "--protocol", "udp", "--models", str(tmp_path)])
    assert result.exit_code == 2 and "grpc or http" in result.output
    result = runner.invoke(app, ["serve", "--models", str(tmp_path)])
    assert result.exit_code == 2 and "no trained pipeline" in result.output
