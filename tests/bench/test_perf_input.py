"""`bench perf-input`: perf_analyzer's JSON input for our served models. Its tensors, sent
with tritonclient to a real server, give the labels of our own client (and the file's
validation labels), for the custom backend and the ensemble alike."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from sonic_exatrkx.bench.perf_input import read_perf_input, write_perf_input
from sonic_exatrkx.cli.main import app


def _infer(url, model, tensors):
    import tritonclient.grpc as tg

    client = tg.InferenceServerClient(url)
    try:
        inputs = []
        for name, array in tensors.items():
            inp = tg.InferInput(name, list(array.shape),
                                "FP32" if array.dtype == np.float32 else "INT64")
            inp.set_data_from_numpy(array)
            inputs.append(inp)
        return client.infer(model, inputs).as_numpy("LABELS")
    finally:
        client.close()


def _our_labels(models, url, option, features):
    from sonic_exatrkx.exatrkx import Pipeline
    from sonic_exatrkx.sonic import exatrkx_client

    client = exatrkx_client(Pipeline.from_directory(models), option, [url])
    try:
        client.check()
        return [client.infer({"FEATURES": f})["LABELS"] for f in features]
    finally:
        client.close()


@pytest.mark.triton
@pytest.mark.parametrize("encoding", ["list", "b64"])
def test_perf_input_is_accepted_by_the_served_models(exatrkx_server, sonic_models, sim_events,
                                                     tmp_path, encoding):
    out = tmp_path / "input.json"
    written = write_perf_input([sim_events], out, models=sonic_models, encoding=encoding,
                               max_events=3)
    assert (written.requests, written.events, written.validation) == (3, 3, True)
    payload = json.loads(out.read_text())
    entry = payload["data"][0]["FEATURES"]
    assert set(entry) == {"content", "shape"} and len(entry["shape"]) == 2
    if encoding == "list":
        assert len(entry["content"]) == entry["shape"][0] * entry["shape"][1]
    else:
        assert set(entry["content"]) == {"b64"}
    data, checks = read_perf_input(out)
    features = [d["FEATURES"] for d in data]
    assert written.space_points == sum(f.shape[0] for f in features)
    url = exatrkx_server.grpc_url
    ours = _our_labels(sonic_models, url, "custom", features)
    for model, option in (("exatrkx", "custom"), ("exatrkx_ensemble", "S4")):
        got = [_infer(url, model, d) for d in data]
        mine = ours if option == "custom" else _our_labels(sonic_models, url, option, features)
        for a, b, check in zip(got, mine, checks, strict=True):
            assert np.array_equal(a, b), model
            assert np.array_equal(a, check["LABELS"]), model


@pytest.mark.triton
def test_several_events_per_request_carry_row_splits(exatrkx_server, sonic_models,
                                                     sim_events, tmp_path):
    out = tmp_path / "batched.json"
    single = tmp_path / "single.json"
    write_perf_input([sim_events], out, models=sonic_models, events_per_request=2)
    write_perf_input([sim_events], single, models=sonic_models, validation=False)
    data, checks = read_perf_input(out)
    alone, no_checks = read_perf_input(single)
    assert len(data) == 2 and no_checks == []
    assert [int(d["ROW_SPLITS"][-1]) for d in data] == [d["FEATURES"].shape[0] for d in data]
    url = exatrkx_server.grpc_url
    for i, (entry, check) in enumerate(zip(data, checks, strict=True)):
        labels = _infer(url, "exatrkx", entry)
        assert np.array_equal(labels, check["LABELS"])
        splits = entry["ROW_SPLITS"]
        for k in range(2):  # each event's slice as a one-event request numbers it
            one = _infer(url, "exatrkx", alone[2 * i + k])
            assert np.array_equal(labels[splits[k]:splits[k + 1]], one)


def test_perf_input_command_and_its_errors(sonic_models, sim_events, tmp_path):
    runner = CliRunner()
    event = sim_events / "event000000001-spacepoint.csv"
    result = runner.invoke(app, ["bench", "perf-input", str(event), "-o",
                                 str(tmp_path / "one.json"), "--models", str(sonic_models),
                                 "--encoding", "b64", "--no-validation"])
    assert result.exit_code == 0, result.output
    assert "1 request(s), 1 event(s)" in result.output
    payload = json.loads((tmp_path / "one.json").read_text())
    assert "validation_data" not in payload and len(payload["data"]) == 1
    missing = runner.invoke(app, ["bench", "perf-input", str(tmp_path / "nope.csv"),
                                  "--models", str(sonic_models)])
    assert missing.exit_code == 1 and "nope.csv: no such file" in missing.output
    assert "Traceback" not in missing.output
    bad = tmp_path / "event000000000-spacepoint.csv"
    bad.write_text("x,y\n1,2\n")
    result = runner.invoke(app, ["bench", "perf-input", str(bad), "--models",
                                 str(sonic_models), "-o", str(tmp_path / "bad.json")])
    assert result.exit_code == 1 and bad.name in result.output and "Traceback" not in \
        result.output
    assert not (tmp_path / "bad.json").exists()
