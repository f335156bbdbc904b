"""Space points and tracks in ROOT files (uproot + awkward), ACTS-compatible.

Layouts of the ``spacePoints`` tree:

* ``flat`` (ACTS `RootSpacepointWriter`): one tree entry per space point with branches
  ``event_id`` (uint32), ``measurement_id``, ``geometry_id`` (uint64), ``x, y, z, r, t,
  var_r, var_z`` (float32). The two-measurement variant adds ``measurement_id_2`` and
  ``geometry_id_2`` (uint64), as current ACTS does; ``measurement_id``/``geometry_id``
  hold ``measurement_id_1``/``geometry_id_1``. A flat tree cannot hold an event with no
  space points (it has no rows); use the jagged layout if empty events matter.
* ``jagged``: one entry per event, ``event_id`` plus the same branches as
  variable-length arrays counted by ``n_spacepoints``.

Extra numeric table columns (e.g. a truth ``particle_id`` per space point) become
extra branches of their own dtype and come back after the schema columns.

So that CSV -> ROOT -> CSV gives the same DataFrame, the tree title records which
table columns existed (e.g. ``spacePoints; sonic-exatrkx columns=measurement_id,x,...``):
optional columns missing from the table are written with ACTS's fill values
(geometry id 0, ``t`` NaN, ACTS's "no time") and dropped again on reading. ``r`` is
derived (hypot(x, y)) and never read back. Files from ACTS itself have no such title;
all their branches are read.

Writers buffer events and write in chunks (few large baskets instead of one per
event), write to a temporary sibling file and rename it on `close()`; an exception
inside ``with`` deletes the temporary file, so no partial file is ever left.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import awkward as ak
import numpy as np
import pandas as pd
import uproot

from ._atomic import commit, discard, temp_path_for
from .acts_csv import _tracks_by_spacepoint
from .acts_paths import StrPath
from .csv_diagnostics import nonfinite_rows
from .errors import InputFormatError, NonFiniteValueError
from .schema import F32, I64, SPACEPOINT, SPACEPOINT_SINGLE, U32, TableSchema, spacepoint_schema
from .spacepoint_checks import check_envelope

__all__ = [
    "SpacePointRootWriter",
    "TrackRootWriter",
    "iter_spacepoints_root",
    "read_spacepoints_root",
    "read_tracks_root",
    "root_event_ids",
]


# Table column -> ROOT branch (both variants); ACTS names the first id without "_1".
_BRANCH_OF = {
    "measurement_id_1": "measurement_id",
    "geometry_id_1": "geometry_id",
    "measurement_id_2": "measurement_id_2",
    "geometry_id_2": "geometry_id_2",
    "measurement_id": "measurement_id",
    "geometry_id": "geometry_id",
    "x": "x", "y": "y", "z": "z", "t": "t", "var_r": "var_r", "var_z": "var_z",
}
_BRANCH_ORDER = ("measurement_id", "geometry_id", "measurement_id_2", "geometry_id_2",
                 "x", "y", "z", "r", "t", "var_r", "var_z")
_COUNTER = "n_spacepoints"
_TITLE_MARK = "sonic-exatrkx columns="
_FLUSH_ROWS = 1_000_000


def _branch_types(schema: TableSchema) -> dict[str, np.dtype]:
    """ROOT branches (name -> dtype) written for a space point variant, ACTS order.
    ``r`` and ``t`` are always there, as in ACTS (``t`` NaN when the table has none)."""
    types = {_BRANCH_OF[c]: t for c, t in schema.columns.items()}
    types["r"] = F32
    types["t"] = F32
    return {b: types[b] for b in _BRANCH_ORDER if b in types}


def _column_of(schema: TableSchema) -> dict[str, str]:
    """ROOT branch -> table column for a variant (inverse of `_BRANCH_OF`)."""
    return {_BRANCH_OF[c]: c for c in schema.columns}


def _fill_value(branch: str, dtype: np.dtype) -> object:
    return np.nan if branch == "t" else dtype.type(0)


class _AtomicRootFile:
    """An uproot file written under a temporary name and renamed on close."""

    def __init__(self, path: StrPath) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = temp_path_for(self.path)
        self._file = uproot.recreate(self._tmp)
        self._done = False

    def mktree(self, name: str, types: dict[str, object], title: str) -> object:
        return self._file.mktree(
            name, types, title=title,
            field_name=lambda outer, inner: inner,
            counter_name=lambda counted: _COUNTER,
        )

    def close(self) -> None:
        if self._done:
            return
        self._done = True
        try:
            self._file.close()
            commit(self._tmp, self.path)
        except BaseException:
            discard(self._tmp)
            raise

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        try:
            self._file.close()
        finally:
            discard(self._tmp)


class _BufferedWriter:
    """Common buffering / context-manager logic of the tree writers."""

    def __init__(self, path: StrPath) -> None:
        self._file = _AtomicRootFile(path)
        self._events: set[int] = set()
        self._buffered_rows = 0

    @property
    def path(self) -> Path:
        return self._file.path

    def _check_event(self, event_id: int) -> int:
        event_id = int(event_id)
        if not 0 <= event_id < 2**32:
            raise ValueError(f"event_id {event_id} does not fit the uint32 event_id branch")
        if event_id in self._events:
            raise ValueError(f"event {event_id} was already written to {self.path.name}")
        self._events.add(event_id)
        return event_id

    def _flush(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def _ensure_tree(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def close(self) -> None:
        """Write what is buffered, finish the file and move it to its final name."""
        try:
            self._ensure_tree()
            self._flush()
        except BaseException:
            self._file.abort()
            raise
        self._file.close()

    def abort(self) -> None:
        """Drop everything written so far; no file is left behind."""
        self._file.abort()

    def __enter__(self) -> _BufferedWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class SpacePointRootWriter(_BufferedWriter):
    """Write per-event space point tables to one ROOT file (flat or jagged layout).

    All events must be of the same variant and have the same columns (the first
    `write` fixes them). Use as a context manager, or call `close()` at the end.
    """

    def __init__(self, path: StrPath, layout: str = "flat", tree: str = "spacePoints") -> None:
        if layout not in ("flat", "jagged"):
            raise ValueError(f"layout must be 'flat' or 'jagged', got {layout!r}")
        super().__init__(path)
        self.layout = layout
        self.tree_name = tree
        self._tree: object | None = None
        self._schema: TableSchema | None = None
        self._columns: list[str] | None = None
        self._extras: dict[str, np.dtype] = {}
        self._chunks: list[tuple[int, dict[str, np.ndarray]]] = []

    def write(self, event_id: int, df: pd.DataFrame) -> None:
        """Buffer the space points of one event (written in chunks, and on close).

        Numeric columns beyond the variant's (e.g. a truth ``particle_id``) are written
        as extra branches of their own dtype and read back after the schema columns.
        """
        schema = spacepoint_schema(df)
        columns = [c for c in schema.columns if c in df.columns]
        extras = {str(c): df[c].dtype for c in df.columns if c not in schema.columns}
        if self._columns is None:
            missing = [c for c in schema.required if c not in df.columns]
            if missing:
                raise ValueError(f"space point table lacks required columns {missing}")
            reserved = {"event_id", _COUNTER, *_branch_types(schema)}
            for name, dtype in extras.items():
                if name in reserved or dtype.kind not in "biuf":
                    raise ValueError(
                        f"extra column '{name}' ({dtype}) cannot be a branch: extra columns "
                        f"must be numeric and not named like a space point branch"
                    )
            self._schema, self._columns, self._extras = schema, columns, extras
        elif columns != self._columns or extras != self._extras:
            raise ValueError(
                f"event {event_id} has columns {columns + list(extras)}, but this file holds "
                f"{self._columns + list(self._extras)}"
            )
        event_id = self._check_event(event_id)
        assert self._schema is not None
        column_of = _column_of(self._schema)
        branches: dict[str, np.ndarray] = {}
        for name in self._extras:
            branches[name] = df[name].to_numpy()
        for branch, dtype in _branch_types(self._schema).items():
            column = column_of.get(branch)
            if branch == "r":
                values = np.hypot(df["x"].to_numpy(F32), df["y"].to_numpy(F32))
            elif column in df.columns:
                values = df[column].to_numpy()
                if dtype.kind == "u" and values.dtype.kind not in "iu":
                    raise ValueError(f"column '{column}' must be integer, got {values.dtype}")
            else:
                values = np.full(len(df), _fill_value(branch, dtype), dtype=dtype)
            branches[branch] = values.astype(dtype)
        self._chunks.append((event_id, branches))
        self._buffered_rows += len(df)
        if self._buffered_rows >= _FLUSH_ROWS:
            self._ensure_tree()
            self._flush()

    def _ensure_tree(self) -> None:
        if self._tree is not None:
            return
        if self._schema is None:  # no event written: an empty tree of the current variant
            self._schema = SPACEPOINT
            self._columns = list(SPACEPOINT.columns)
        types = {**_branch_types(self._schema), **self._extras}
        columns = [*(self._columns or []), *self._extras]
        title = f"{self.tree_name}; {_TITLE_MARK}{','.join(columns)}"
        if self.layout == "flat":
            spec: dict[str, object] = {"event_id": U32, **types}
        else:
            record = ak.zip({b: ak.Array(np.empty(0, dtype=t)) for b, t in types.items()})
            spec = {"event_id": U32, "sp": ak.unflatten(record, [0]).type.content}
        self._tree = self._file.mktree(self.tree_name, spec, title)

    def _flush(self) -> None:
        if not self._chunks:
            return
        events = np.array([e for e, _ in self._chunks], dtype=U32)
        counts = np.array([len(b["x"]) for _, b in self._chunks], dtype=np.int64)
        names = [*_branch_types(self._schema), *self._extras]  # the tree's order
        content = {n: np.concatenate([b[n] for _, b in self._chunks]) for n in names}
        if self.layout == "flat":
            data = {"event_id": np.repeat(events, counts), **content}
        else:
            data = {
                "event_id": events,
                "sp": ak.zip({n: ak.unflatten(v, counts) for n, v in content.items()}),
            }
        self._tree.extend(data)  # type: ignore[union-attr]
        self._chunks.clear()
        self._buffered_rows = 0


class TrackRootWriter(_BufferedWriter):
    """Track labels per event: one entry per event with ``event_id`` and jagged
    ``spacepoint_id`` / ``track_id`` (int64), counted by ``n_spacepoints``."""

    def __init__(self, path: StrPath, tree: str = "tracks") -> None:
        super().__init__(path)
        self.tree_name = tree
        self._tree: object | None = None
        self._chunks: list[tuple[int, np.ndarray]] = []

    def write(self, event_id: int, track_ids: np.ndarray) -> None:
        """Buffer one event's track label per space point (index = space point id)."""
        ids = np.asarray(track_ids)
        if ids.ndim != 1 or (ids.size and ids.dtype.kind not in "iu"):
            raise ValueError(f"track_ids must be a 1-D integer array, got {ids.dtype} "
                             f"with shape {ids.shape}")
        event_id = self._check_event(event_id)
        self._chunks.append((event_id, ids.astype(I64)))
        self._buffered_rows += ids.size
        if self._buffered_rows >= _FLUSH_ROWS:
            self._ensure_tree()
            self._flush()

    def _ensure_tree(self) -> None:
        if self._tree is None:
            empty = ak.zip({"spacepoint_id": ak.Array(np.empty(0, I64)),
                            "track_id": ak.Array(np.empty(0, I64))})
            spec = {"event_id": U32, "sp": ak.unflatten(empty, [0]).type.content}
            self._tree = self._file.mktree(self.tree_name, spec, self.tree_name)

    def _flush(self) -> None:
        if not self._chunks:
            return
        counts = np.array([ids.size for _, ids in self._chunks], dtype=np.int64)
        tracks = np.concatenate([ids for _, ids in self._chunks])
        spacepoints = np.concatenate([np.arange(n, dtype=I64) for n in counts])
        self._tree.extend({  # type: ignore[union-attr]
            "event_id": np.array([e for e, _ in self._chunks], dtype=U32),
            "sp": ak.zip({"spacepoint_id": ak.unflatten(spacepoints, counts),
                          "track_id": ak.unflatten(tracks, counts)}),
        })
        self._chunks.clear()
        self._buffered_rows = 0


# ---------------------------------------------------------------------------- reading


def _open_tree(path: StrPath, tree: str) -> tuple[object, object]:
    path = Path(path)
    if path.is_dir():
        raise InputFormatError(path, "is a folder; ROOT input is one .root file (event "
                               "folders: --input-format csv or trackml)")
    if not path.is_file():
        raise FileNotFoundError(f"no such ROOT file: {path}")
    try:
        file = uproot.open(path)
        classes = {k.split(";")[0]: c for k, c in file.classnames().items()}
    except (ValueError, OSError) as err:  # uproot: "not a ROOT file", truncated headers
        raise InputFormatError(path, f"not a readable ROOT file ({_first_line(err)})"
                               ) from err
    if classes.get(tree) != "TTree":
        file.close()
        trees = sorted(k for k, c in classes.items() if c == "TTree")
        what = f"'{tree}' is a {classes[tree]}, not a TTree" if tree in classes \
            else f"no tree '{tree}'"
        raise InputFormatError(path, f"{what} (TTrees in the file: {trees})")
    return file, file[tree]


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _is_jagged(tree: object, branch: str) -> bool:
    interpretation = tree[branch].interpretation  # type: ignore[index]
    return isinstance(interpretation, uproot.interpretation.jagged.AsJagged)


def _branch_dtype(tree: object, branch: str) -> np.dtype:
    """Native-endian numpy dtype of a (flat or jagged) numeric branch."""
    interpretation = tree[branch].interpretation  # type: ignore[index]
    if isinstance(interpretation, uproot.interpretation.jagged.AsJagged):
        interpretation = interpretation.content
    return np.dtype(interpretation.from_dtype).newbyteorder("=")


def _check_branch_kind(tree: object, path: StrPath, branch: str, want: np.dtype) -> None:
    """A branch must hold the schema's kind of number: an integer id or event number
    stored as floats would be truncated (0.5 and 0.9 both become event 0) and integer
    coordinates lose their precision, both silently."""
    have = _branch_dtype(tree, branch)
    integer = want.kind in "iu"
    if (have.kind in "iu") != integer or (not integer and have.kind != "f"):
        kind = "an integer" if integer else "a floating-point"
        raise InputFormatError(path, f"branch '{branch}' of tree '{tree.name}' holds "  # type: ignore[attr-defined]
                               f"{have} values, expected {kind} type", column=branch,
                               expected=f"{kind} type like {want}")


def _layout_columns(
    tree: object, path: StrPath
) -> tuple[list[tuple[str, str, np.dtype]], bool]:
    """(table column, branch, dtype) to return, and whether the layout is jagged."""
    keys = set(tree.keys())  # type: ignore[attr-defined]
    required = {"event_id", "measurement_id", "x", "y", "z", "var_r", "var_z"}
    if not required <= keys:
        raise InputFormatError(
            path, f"tree '{tree.name}' lacks space point branches "  # type: ignore[attr-defined]
            f"{sorted(required - keys)}"
        )
    schema = SPACEPOINT if "measurement_id_2" in keys else SPACEPOINT_SINGLE
    match = re.search(re.escape(_TITLE_MARK) + r"(\S+)", tree.title or "")  # type: ignore[attr-defined]
    if match:
        columns = [c for c in match[1].split(",") if c in schema.columns or c in keys]
    else:
        columns = [c for c in schema.columns if _BRANCH_OF[c] in keys]
    _check_branch_kind(tree, path, "event_id", np.dtype(np.uint32))
    spec = []
    for column in columns:
        if column in schema.columns:
            _check_branch_kind(tree, path, _BRANCH_OF[column], schema.columns[column])
            spec.append((column, _BRANCH_OF[column], schema.columns[column]))
        else:  # an extra branch written from an extra table column
            spec.append((column, column, _branch_dtype(tree, column)))
    return spec, _is_jagged(tree, "x")


def _frames(
    spec: list[tuple[str, str, np.dtype]],
    events: np.ndarray,
    offsets: np.ndarray,
    content: dict[str, np.ndarray],
) -> Iterator[tuple[int, pd.DataFrame]]:
    """Cut concatenated branch arrays into one typed DataFrame per event."""
    columns = [c for c, _, _ in spec]
    for i, event in enumerate(events):
        lo, hi = offsets[i], offsets[i + 1]
        frame = pd.DataFrame(
            {c: content[b][lo:hi].astype(t) for c, b, t in spec}, columns=columns
        )
        yield int(event), frame


def _flat_groups(event_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stable grouping of flat rows by event: (row order, event ids, offsets)."""
    order = np.argsort(event_ids, kind="stable")
    sorted_ids = event_ids[order]
    starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]]) if sorted_ids.size \
        else np.empty(0, dtype=np.intp)
    offsets = np.r_[starts, sorted_ids.size]
    return order, sorted_ids[starts], offsets


def read_spacepoints_root(path: StrPath, tree: str = "spacePoints", *,
                          nonfinite: str = "error") -> dict[int, pd.DataFrame]:
    """All events of a space point tree, flat or jagged (detected), as event -> table."""
    return dict(iter_spacepoints_root(path, tree, step_size=None, nonfinite=nonfinite))


def iter_spacepoints_root(
    path: StrPath, tree: str = "spacePoints", step_size: int | str | None = "100 MB", *,
    nonfinite: str = "error",
) -> Iterator[tuple[int, pd.DataFrame]]:
    """Yield (event_id, table) one event at a time, reading `step_size` at once.

    Flat files are read in chunks; each event's rows must be contiguous (as ACTS and
    our writer write them) - an event id that reappears later is an error here
    (`read_spacepoints_root` reads everything at once and has no such limit).
    Events come in file order; ``step_size=None`` reads the whole tree at once.
    ``nonfinite``: a NaN/inf position or variance is `NonFiniteValueError` naming the
    event, space point and branch ("error"), or the space point is left out ("drop",
    counted in ``table.attrs["dropped_nonfinite"]``), as for CSV (`acts_csv.NonFinite`).
    """
    if nonfinite not in ("error", "drop"):
        raise ValueError(f"nonfinite must be 'error' or 'drop', got {nonfinite!r}")
    frames = _iter_frames(path, tree, step_size)
    while True:
        try:
            event, frame = next(frames)
        except StopIteration:
            return
        except (InputFormatError, FileNotFoundError):
            raise
        except (uproot.deserialization.DeserializationError, OSError) as err:  # truncated
            raise InputFormatError(path, f"truncated or corrupt ROOT file: {tree} "
                                   f"cannot be read ({_first_line(err)})") from err
        frame = _finite(frame, Path(path), event, nonfinite)
        check_envelope(frame, Path(path), event)
        yield event, frame


def _finite(frame: pd.DataFrame, path: Path, event: int, nonfinite: str) -> pd.DataFrame:
    """The event's table without non-finite positions/variances, or the located error."""
    arrays = {c: frame[c].to_numpy() for c in frame.columns}
    bad, first = nonfinite_rows(arrays)
    frame.attrs["dropped_nonfinite"] = 0
    if first is None:
        return frame
    row, column = first
    if nonfinite == "error":
        raise NonFiniteValueError(
            path, f"event {event}, space point {row}: non-finite {column} = "
            f"{arrays[column][row]}, expected a finite float32 (--nonfinite drop leaves "
            "such space points out)", column=_BRANCH_OF.get(column, column),
            expected="finite float32", event=event)
    kept = frame[~bad].reset_index(drop=True)
    kept.attrs["dropped_nonfinite"] = int(bad.sum())
    return kept


def _iter_frames(
    path: StrPath, tree: str, step_size: int | str | None
) -> Iterator[tuple[int, pd.DataFrame]]:
    file, ttree = _open_tree(path, tree)
    try:
        spec, jagged = _layout_columns(ttree, path)
        branches = ["event_id", *dict.fromkeys(b for _, b, _ in spec)]
        steps = ttree.iterate(  # type: ignore[attr-defined]
            branches, step_size=step_size or ttree.num_entries or 1,  # type: ignore[attr-defined]
            library="ak" if jagged else "np",
        )
        if jagged:
            for chunk in steps:
                counts = ak.to_numpy(ak.num(chunk["x"], axis=1)).astype(np.int64)
                offsets = np.r_[0, np.cumsum(counts)]
                content = {b: ak.to_numpy(ak.flatten(chunk[b], axis=None)) for b in branches[1:]}
                yield from _frames(spec, ak.to_numpy(chunk["event_id"]), offsets, content)
            return
        if step_size is None:  # whole file: group all rows, any order
            data = next(iter(steps), None)
            if data is None or data["event_id"].size == 0:
                return
            order, events, offsets = _flat_groups(data["event_id"])
            content = {b: data[b][order] for b in branches[1:]}
            yield from _frames(spec, events, offsets, content)
            return
        yield from _iter_flat_chunks(steps, spec, branches, path)
    finally:
        file.close()  # type: ignore[attr-defined]


def _iter_flat_chunks(
    steps: Iterator[dict[str, np.ndarray]],
    spec: list[tuple[str, str, np.dtype]],
    branches: list[str],
    path: StrPath,
) -> Iterator[tuple[int, pd.DataFrame]]:
    """Chunked flat reading: hold back the last (possibly split) event of a chunk."""
    seen: set[int] = set()
    carry: dict[str, np.ndarray] | None = None
    for chunk in steps:
        if carry is not None:
            chunk = {b: np.concatenate([carry[b], chunk[b]]) for b in branches}
        ids = chunk["event_id"]
        if ids.size == 0:
            continue
        starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
        last = starts[-1]
        complete = {b: chunk[b][:last] for b in branches}
        carry = {b: chunk[b][last:] for b in branches}
        yield from _checked(complete, starts[:-1], spec, seen, path)
    if carry is not None and carry["event_id"].size:
        yield from _checked(carry, np.array([0]), spec, seen, path)


def _checked(
    data: dict[str, np.ndarray],
    starts: np.ndarray,
    spec: list[tuple[str, str, np.dtype]],
    seen: set[int],
    path: StrPath,
) -> Iterator[tuple[int, pd.DataFrame]]:
    events = data["event_id"][starts]
    for event in events.tolist():  # one per event, not per row
        if event in seen:
            raise InputFormatError(
                path, f"rows of event {event} are not contiguous in the flat tree; "
                "use read_spacepoints_root to read it whole"
            )
        seen.add(event)
    offsets = np.r_[starts, data["event_id"].size]
    yield from _frames(spec, events, offsets, data)


def root_event_ids(path: StrPath, tree: str = "spacePoints") -> list[int]:
    """Sorted event ids in a space point or track tree (flat or jagged)."""
    file, ttree = _open_tree(path, tree)
    try:
        ids = ttree["event_id"].array(library="np")  # type: ignore[index]
    finally:
        file.close()  # type: ignore[attr-defined]
    return [int(e) for e in np.unique(ids)]


def read_tracks_root(path: StrPath, tree: str = "tracks") -> dict[int, np.ndarray]:
    """event -> track label per space point (int64, index = spacepoint_id)."""
    file, ttree = _open_tree(path, tree)
    try:
        data = ttree.arrays(["event_id", "spacepoint_id", "track_id"],  # type: ignore[attr-defined]
                            library="ak")
    finally:
        file.close()  # type: ignore[attr-defined]
    counts = ak.to_numpy(ak.num(data["track_id"], axis=1)).astype(np.int64)
    offsets = np.r_[0, np.cumsum(counts)]
    sp = ak.to_numpy(ak.flatten(data["spacepoint_id"]))
    tracks = ak.to_numpy(ak.flatten(data["track_id"]))
    out: dict[int, np.ndarray] = {}
    for i, event in enumerate(ak.to_numpy(data["event_id"])):
        lo, hi = offsets[i], offsets[i + 1]
        out[int(event)] = _tracks_by_spacepoint(
            sp[lo:hi], tracks[lo:hi], Path(path), int(event), lines=False
        )
    return out
