"""Compare two job output folders as a user would: the same files, byte for byte, except
what cannot be (ROOT files carry a creation time and UUID: compared by content; timing,
plots and the bookkeeping of commits and manifest differ run to run)."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import uproot

NOT_COMPARED = ("commits", "manifest.json", "timing.csv", "failed_events.csv", "chunks")


def output_files(folder: Path) -> list[Path]:
    return sorted(p.relative_to(folder) for p in folder.rglob("*")
                  if p.is_file() and p.relative_to(folder).parts[0] not in NOT_COMPARED)


def assert_same_tracks(a: Path, b: Path) -> None:
    """The same tracks (CSV byte for byte, ROOT by content) and track-level performance: a
    served run has no edge-level figures (the served models return labels only)."""
    import json

    csv = sorted(p.relative_to(a) for p in (a / "tracks").glob("*.csv"))
    assert csv and csv == sorted(p.relative_to(b) for p in (b / "tracks").glob("*.csv"))
    for rel in csv:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    ta, tb = uproot.open(a / "tracks.root")["tracks"], uproot.open(b / "tracks.root")["tracks"]
    branches = ta.keys()  # uproot's TTree, not a dict
    for branch in branches:
        assert ak.all(ak.ravel(ta[branch].array()) == ak.ravel(tb[branch].array())), branch
    pa, pb = (json.loads((f / "performance.json").read_text()) for f in (a, b))
    for key in ("events", "spacepoints", "all_pt", "pt>1", "trackml_score"):
        assert pa[key] == pb[key], key


def assert_same_outputs(a: Path, b: Path) -> None:
    assert output_files(a) == output_files(b)
    for rel in output_files(a):
        if rel.suffix == ".png":
            continue
        if rel.suffix == ".root":
            ta, tb = uproot.open(a / rel)["tracks"], uproot.open(b / rel)["tracks"]
            branches = ta.keys()
            assert ta.num_entries == tb.num_entries and branches == tb.keys()
            for branch in branches:
                assert ak.all(ak.ravel(ta[branch].array()) == ak.ravel(tb[branch].array())), \
                    f"{rel}:{branch}"
            continue
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
