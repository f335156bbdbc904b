"""ROOT input faults a user meets: each is one clear error naming the file (and tree or
event), never a deep uproot traceback or a silently wrong event split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sonic_exatrkx.io import InputFormatError
from sonic_exatrkx.io.acts_root import iter_spacepoints_root, read_spacepoints_root


def _columns(event_ids: list[int]) -> dict[str, np.ndarray]:
    n = len(event_ids)
    return {"event_id": np.array(event_ids, np.uint32),
            "measurement_id": np.arange(n, dtype=np.uint64),
            "x": np.linspace(1, 2, n, dtype=np.float32), "y": np.ones(n, np.float32),
            "z": np.ones(n, np.float32), "var_r": np.zeros(n, np.float32),
            "var_z": np.zeros(n, np.float32)}


def _write(path: Path, columns: dict[str, np.ndarray], tree: str = "spacePoints") -> Path:
    import uproot

    with uproot.recreate(path) as f:
        f.mktree(tree, {k: v.dtype for k, v in columns.items()}).extend(columns)
    return path


def test_a_missing_root_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.root"
    with pytest.raises(FileNotFoundError, match=f"no such ROOT file: {missing}"):
        read_spacepoints_root(missing)


def test_a_tree_without_space_point_branches_names_the_missing_ones(tmp_path: Path) -> None:
    columns = _columns([0, 0, 1])
    del columns["var_r"], columns["x"]
    path = _write(tmp_path / "sp.root", columns)
    with pytest.raises(InputFormatError) as err:
        read_spacepoints_root(path)
    text = str(err.value)
    assert text.startswith("sp.root") and "lacks space point branches ['var_r', 'x']" in text


def test_a_file_without_the_tree_lists_the_trees_it_has(tmp_path: Path) -> None:
    path = _write(tmp_path / "sp.root", _columns([0]), tree="hits")
    with pytest.raises(InputFormatError, match=r"no tree 'spacePoints' \(TTrees in the file: "
                                               r"\['hits'\]\)"):
        read_spacepoints_root(path)


def test_non_contiguous_events_are_refused_when_streamed_and_grouped_when_read_whole(
        tmp_path: Path) -> None:
    # Event 0's rows come back after event 1's: streamed in chunks this cannot be cut
    # into events without holding the file, so it is an error naming the event; read at
    # once, the rows are grouped (in file order within each event).
    path = _write(tmp_path / "sp.root", _columns([0, 0, 1, 1, 0]))
    with pytest.raises(InputFormatError) as err:
        list(iter_spacepoints_root(path, step_size=2))
    assert "rows of event 0 are not contiguous" in str(err.value)
    assert str(err.value).startswith("sp.root")
    whole = read_spacepoints_root(path)
    assert sorted(whole) == [0, 1]
    np.testing.assert_array_equal(whole[0]["measurement_id"].to_numpy(), [0, 1, 4])
    np.testing.assert_array_equal(whole[1]["measurement_id"].to_numpy(), [2, 3])
