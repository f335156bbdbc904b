"""A study's results on disk: raw rows (CSV), settings + machine + headline figures (JSON),
a Markdown summary; and the statistics every study uses on its repeated trials.

Layout of ``-o DIR`` (one folder per study, so runs of different machines or commits can be
compared folder by folder)::

    DIR/<study>/raw.csv       one row per trial and setting (warm-up excluded)
    DIR/<study>/result.json   study, settings, machine, headline figures, notes, files
    DIR/<study>/summary.md    the medians over trials with their spread, and the notes
    DIR/<study>/*.png         plots (:mod:`sonic_exatrkx.bench.plots`)

Trials: every setting is measured ``trials`` times; a figure is the median over trials
with the smallest and largest as its spread, and a ratio (served / direct, ...) is taken
within each trial (the same minute of the same machine), then its median.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, is_dataclass
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["RAW_CSV", "RESULT_JSON", "SUMMARY_MD", "ResultsError", "Stat", "StudyResult",
           "cell", "jsonable", "markdown_table", "ratio_by_trial", "summarize", "study_dirs"]

RAW_CSV = "raw.csv"
RESULT_JSON = "result.json"
SUMMARY_MD = "summary.md"


class ResultsError(ValueError):
    """A results folder that cannot be read (the message names the file)."""


@dataclass(frozen=True)
class Stat:
    """The median of a figure over trials and its spread (smallest, largest)."""

    median: float
    low: float
    high: float
    trials: int

    @classmethod
    def of(cls, values: Iterable[float]) -> Stat:
        v = np.asarray([x for x in values if x is not None and math.isfinite(x)], float)
        if v.size == 0:
            return cls(math.nan, math.nan, math.nan, 0)
        return cls(float(np.median(v)), float(v.min()), float(v.max()), int(v.size))

    def text(self, fmt: str = ".2f", unit: str = "") -> str:
        """``"12.30 (11.90-12.80)"``: the median and the range over trials."""
        if self.trials == 0:
            return "-"
        if self.trials == 1:
            return f"{self.median:{fmt}}{unit}"
        return f"{self.median:{fmt}}{unit} ({self.low:{fmt}}-{self.high:{fmt}})"


def jsonable(value: Any) -> Any:
    """Settings and figures as plain JSON values (dataclasses, paths, enums, numpy)."""
    if is_dataclass(value) and not isinstance(value, type):
        return jsonable(asdict(value))
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating | float):
        return None if not math.isfinite(float(value)) else float(value)
    return value


def summarize(rows: pd.DataFrame, by: Sequence[str], metrics: Sequence[str]) -> pd.DataFrame:
    """Per setting (``by`` columns): each metric's median over trials (column ``m``), its
    smallest and largest (``m_low``, ``m_high``) and the number of trials, in the order the
    settings first appear."""
    if rows.empty:
        return pd.DataFrame(columns=[*by, *metrics, "trials"])
    out = []
    for keys, group in rows.groupby(list(by), sort=False, dropna=False):
        keys = keys if isinstance(keys, tuple) else (keys,)
        item: dict[str, Any] = dict(zip(by, keys, strict=True))
        for m in metrics:
            s = Stat.of(group[m].astype(float))
            item.update({m: s.median, f"{m}_low": s.low, f"{m}_high": s.high})
        item["trials"] = int(group["trial"].nunique()) if "trial" in group else len(group)
        out.append(item)
    return pd.DataFrame(out)


def ratio_by_trial(rows: pd.DataFrame, metric: str, numerator: Mapping[str, Any],
                   denominator: Mapping[str, Any], by: Sequence[str] = ()) -> dict[Any, Stat]:
    """``numerator / denominator`` of ``metric`` within each trial (rows selected by column
    values, matched on ``trial`` and the ``by`` columns), as a :class:`Stat` per ``by``
    value (key ``None`` when ``by`` is empty)."""
    def pick(select: Mapping[str, Any]) -> pd.DataFrame:
        mask = np.ones(len(rows), bool)
        for k, v in select.items():
            mask &= (rows[k] == v).to_numpy()
        return rows[mask][["trial", *by, metric]]

    keys = ["trial", *by]
    joined = pick(numerator).merge(pick(denominator), on=keys, suffixes=("_n", "_d"))
    joined = joined[joined[f"{metric}_d"] > 0]
    ratios = joined[f"{metric}_n"] / joined[f"{metric}_d"]
    if not by:
        return {None: Stat.of(ratios)}
    out: dict[Any, Stat] = {}
    for key, idx in joined.groupby(list(by), sort=False).groups.items():
        out[key] = Stat.of(ratios.loc[idx])
    return out


Column = str | Callable[[Any], str] | tuple[str, Callable[[Any], str] | str]


def markdown_table(frame: pd.DataFrame, columns: Mapping[str, Column]) -> list[str]:
    """A Markdown table of ``frame``. ``columns`` maps a column to its header (values shown
    with ``str``, floats ``.3g``), to a function of the row giving the cell (the column
    name is the header), to ``(header, function)``, or to ``(header, format)``: the
    median over trials with its range (:func:`cell`, :func:`summarize` columns)."""
    def header(col: str, how: Column) -> str:
        return how if isinstance(how, str) else how[0] if isinstance(how, tuple) else col

    lines = ["| " + " | ".join(header(c, h) for c, h in columns.items()) + " |",
             "|" + "---|" * len(columns)]
    for _, row in frame.iterrows():
        cells = []
        for col, how in columns.items():
            fn = how[1] if isinstance(how, tuple) else how if callable(how) else None
            if isinstance(fn, str):
                cells.append(cell(row, col, fn))
                continue
            if fn is not None:
                cells.append(fn(row))
                continue
            value = row[col]
            if isinstance(value, float):
                cells.append("-" if not math.isfinite(value) else f"{value:.3g}")
            else:
                cells.append(str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def cell(row: Mapping[str, Any], metric: str, fmt: str = ".2f") -> str:
    """A summary cell: the median with the range over trials (:func:`summarize` columns);
    "-" when not measured."""
    if not math.isfinite(float(row[metric])):
        return "-"
    return Stat(row[metric], row[f"{metric}_low"], row[f"{metric}_high"],
                int(row.get("trials", 1))).text(fmt)


@dataclass
class StudyResult:
    """One study run: what it measured (``rows``, one per trial and setting), how
    (``settings``), where (``machine``), and its headline figures and notes."""

    study: str
    settings: dict[str, Any]
    rows: pd.DataFrame
    machine: dict[str, Any]
    started: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(
        timespec="seconds"))
    duration_s: float = 0.0
    headline: dict[str, float] = field(default_factory=dict)  # figures worth quoting
    notes: list[str] = field(default_factory=list)  # summary lines (goals, caveats)
    tables: list[str] = field(default_factory=list)  # Markdown lines of the summary
    files: list[str] = field(default_factory=list)  # written next to result.json
    folder: Path | None = None  # where it was written or read from

    def write(self, root: Path) -> Path:
        """Write ``root/<study>/`` (raw.csv, result.json, summary.md); returns the folder."""
        folder = Path(root) / self.study
        folder.mkdir(parents=True, exist_ok=True)
        self.rows.to_csv(folder / RAW_CSV, index=False)
        files = sorted({RAW_CSV, RESULT_JSON, SUMMARY_MD, *self.files})
        payload = {"study": self.study, "started": self.started,
                   "duration_s": round(self.duration_s, 2), "settings": self.settings,
                   "machine": self.machine, "headline": self.headline, "notes": self.notes,
                   "files": files}
        (folder / RESULT_JSON).write_text(json.dumps(jsonable(payload), indent=2) + "\n")
        (folder / SUMMARY_MD).write_text("\n".join(self.summary_lines()) + "\n")
        self.folder = folder
        return folder

    def summary_lines(self) -> list[str]:
        m = self.machine
        gpu = ", ".join(g["name"] for g in m.get("gpus") or []) or "no GPU"
        commit = (m.get("git") or {}).get("commit") or "unknown"
        lines = [f"# {self.study}", "",
                 f"{self.started}, {self.duration_s:.0f} s; {m.get('cpu_model')} "
                 f"({m.get('usable_cores')} of {m.get('cores')} cores usable), {gpu}; "
                 f"load average at start {m.get('load_average')}; commit {commit[:12]}"
                 + (" (with local changes)" if (m.get("git") or {}).get("dirty") else ""),
                 ""]
        lines += [*self.tables, ""] if self.tables else []
        lines += [f"- {n}" for n in self.notes]
        lines += [""] + [f"![{f}]({f})" for f in self.files if f.endswith(".png")]
        return lines

    @classmethod
    def load(cls, folder: Path) -> StudyResult:
        """Read a study folder written by :meth:`write`."""
        folder = Path(folder)
        path = folder / RESULT_JSON
        try:
            payload = json.loads(path.read_text())
            rows = pd.read_csv(folder / RAW_CSV)
        except FileNotFoundError as exc:
            raise ResultsError(f"{exc.filename}: not found (not a study folder written by "
                               "`sonic-exatrkx bench`)") from None
        except (json.JSONDecodeError, pd.errors.ParserError) as exc:
            raise ResultsError(f"{path}: cannot be read: {exc}") from None
        try:
            return cls(study=payload["study"], settings=payload["settings"], rows=rows,
                       machine=payload["machine"], started=payload.get("started", ""),
                       duration_s=float(payload.get("duration_s", 0.0)),
                       headline=payload.get("headline", {}), notes=payload.get("notes", []),
                       files=payload.get("files", []), folder=folder)
        except KeyError as exc:
            raise ResultsError(f"{path}: key {exc} missing") from None


def study_dirs(root: Path) -> dict[str, Path]:
    """The study folders of a run folder (``root`` itself when it is one), by study."""
    root = Path(root)
    if (root / RESULT_JSON).is_file():
        return {json.loads((root / RESULT_JSON).read_text()).get("study", root.name): root}
    if not root.is_dir():
        raise ResultsError(f"{root}: no such folder")
    found = {p.parent.name: p.parent for p in sorted(root.glob(f"*/{RESULT_JSON}"))}
    if not found:
        raise ResultsError(f"{root}: no study results in it (no */{RESULT_JSON})")
    return found
