"""Input files for Triton's ``perf_analyzer`` (``sonic-exatrkx bench perf-input``): the
seeds measured the service with it, feeding detector hits as JSON.

The file is perf_analyzer's "real input data" JSON: one entry per request, each tensor
with its ``content`` (row-major, as a list of numbers or base64 little-endian bytes) and
its ``shape`` (our inputs are variable-sized, so every entry states its own and no
``--shape`` option is needed)::

    {"data": [{"FEATURES": {"content": [...], "shape": [N, F]}}, ...],
     "validation_data": [{"LABELS": {"content": [...], "shape": [N]}}, ...]}

``FEATURES`` are the pipeline's node features of each event's space points (computed with
the models' ``config.json``, as our client sends them), so the same file drives both the
custom backend (``exatrkx``) and the ensemble (``exatrkx_ensemble``). With several events
per request the entries also carry ``ROW_SPLITS`` (custom backend only). The optional
``validation_data`` holds the labels of the pipeline run here, which perf_analyzer checks
the answers against.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sonic_exatrkx.checks import check_count

__all__ = ["ENCODINGS", "PerfInput", "decode_tensor", "read_perf_input", "read_space_points",
           "write_perf_input"]

ENCODINGS = ("list", "b64")
#: Wire types of the tensors the file may hold (the contract's).
DTYPES = {"FEATURES": np.dtype("<f4"), "ROW_SPLITS": np.dtype("<i8"),
          "LABELS": np.dtype("<i8")}


@dataclass(frozen=True)
class PerfInput:
    """What was written: requests, events and space points, and whether labels were."""

    path: Path
    requests: int
    events: int
    space_points: int
    validation: bool

    def line(self) -> str:
        return (f"wrote {self.path}: {self.requests} request(s), {self.events} event(s), "
                f"{self.space_points} space points"
                + (", with validation labels" if self.validation else ""))


def read_space_points(paths: Sequence[Path], max_events: int | None = None
                      ) -> list[tuple[str, np.ndarray]]:
    """``(name, [3, N] x/y/z in mm)`` of each event: ACTS ``event*-spacepoint.csv`` files,
    or folders of them (every event, in order); at most ``max_events``."""
    from sonic_exatrkx.io import acts_csv

    found: list[tuple[str, Path]] = []
    for path in map(Path, paths):
        if path.is_dir():
            found += [(f"{path.name}/event{e}", acts_csv.event_path(path, e, "spacepoint"))
                      for e in acts_csv.list_events(path, "spacepoint")]
        elif path.is_file():
            found.append((path.name, path))
        else:
            raise FileNotFoundError(f"{path}: no such file or event folder")
    out = []
    for name, path in found[:max_events]:
        sp = acts_csv.read_spacepoints(path)
        out.append((name, np.stack([sp[c].to_numpy(np.float64) for c in ("x", "y", "z")])))
    return out


def _tensor(array: np.ndarray, name: str, encoding: str) -> dict[str, Any]:
    a = np.ascontiguousarray(array, dtype=DTYPES[name])
    content: Any = {"b64": base64.b64encode(a.tobytes()).decode("ascii")} \
        if encoding == "b64" else a.reshape(-1).tolist()
    return {"content": content, "shape": list(a.shape)}


def write_perf_input(events: Sequence[Path], output: Path, *, models: Path | None = None,
                     events_per_request: int = 1, encoding: str = "list",
                     validation: bool = True, max_events: int | None = None) -> PerfInput:
    """Write perf_analyzer's JSON input for the space points of ``events`` (see the module
    doc); ``models``: the served pipeline folder (default: the shipped one)."""
    from sonic_exatrkx.exatrkx import Pipeline
    from sonic_exatrkx.server import batch_events

    check_count(events_per_request, "events per request")
    if max_events is not None:
        check_count(max_events, "max events")
    if encoding not in ENCODINGS:
        raise ValueError(f"encoding must be one of {', '.join(ENCODINGS)}, got {encoding!r}")
    if models is None:
        from sonic_exatrkx.paths import data_dir

        models = data_dir() / "models"
    pipe = Pipeline.from_directory(models)
    positions = read_space_points(events, max_events)
    if not positions:
        raise ValueError("no events to write")
    feats = [pipe.features(*xyz) for _, xyz in positions]
    data, checks = [], []
    for i in range(0, len(feats), events_per_request):
        group = feats[i:i + events_per_request]
        if len(group) == 1 and events_per_request == 1:
            entry = {"FEATURES": _tensor(group[0], "FEATURES", encoding)}
        else:
            batch, splits = batch_events(group)
            entry = {"FEATURES": _tensor(batch, "FEATURES", encoding),
                     "ROW_SPLITS": _tensor(splits, "ROW_SPLITS", encoding)}
        data.append(entry)
        if validation:
            labels = np.concatenate([pipe.run(f).labels for f in group])
            checks.append({"LABELS": _tensor(labels, "LABELS", encoding)})
    payload: dict[str, Any] = {"data": data}
    if validation:
        payload["validation_data"] = checks
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".tmp")
    tmp.write_text(json.dumps(payload))
    tmp.replace(output)
    return PerfInput(output, len(data), len(feats), int(sum(f.shape[0] for f in feats)),
                     validation)


def decode_tensor(name: str, value: dict[str, Any]) -> np.ndarray:
    """One tensor of a perf_analyzer JSON entry as a numpy array of its wire type."""
    dtype = DTYPES.get(name)
    if dtype is None:
        raise ValueError(f"unknown tensor {name!r} (known: {', '.join(DTYPES)})")
    content, shape = value["content"], value["shape"]
    if isinstance(content, dict):
        flat = np.frombuffer(base64.b64decode(content["b64"]), dtype=dtype)
    else:
        flat = np.asarray(content, dtype=dtype)
    return flat.reshape(shape)


def read_perf_input(path: Path) -> tuple[list[dict[str, np.ndarray]], list[dict[str, np.ndarray]]]:
    """The requests and validation outputs of a perf_analyzer JSON file, as arrays."""
    payload = json.loads(Path(path).read_text())
    data = [{k: decode_tensor(k, v) for k, v in entry.items()} for entry in payload["data"]]
    checks = [{k: decode_tensor(k, v) for k, v in entry.items()}
              for entry in payload.get("validation_data", [])]
    return data, checks
