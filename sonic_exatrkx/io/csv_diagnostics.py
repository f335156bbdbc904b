"""Located errors for CSV files that do not parse: which line, which column, and why.

This is the slow path of `acts_csv`: it runs only after the fast `pandas.read_csv`
pass has failed (or found something suspicious), re-reads the raw text and returns the
`InputFormatError` that names the first bad (line, column). Line numbers count the
file's lines as an editor does, blank lines included, though pandas skips them.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import InputFormatError, NonFiniteValueError
from .schema import (
    DTYPE_NAME,
    F32,
    FILL_FROM,
    FINITE_COLUMNS,
    INT_RANGE,
    NA_TOKENS,
    STR,
    TableSchema,
)

__all__ = [
    "bad_tokens",
    "diagnose",
    "field_count_error",
    "line_of_row",
    "nonfinite_error",
    "nonfinite_rows",
    "source_path",
]

# ------------------------------------------------------------------ line numbers


def _line_spans(data: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Byte start and end of every line of a file's bytes, and whether it has content
    (anything but spaces, tabs and carriage returns)."""
    newline = data == 10
    ends = np.flatnonzero(newline)
    starts = np.concatenate(([0], ends + 1))
    ends = np.concatenate((ends, [data.size]))
    content = ~(np.isin(data, (32, 9, 13)) | newline)
    cum = np.concatenate(([0], np.cumsum(content)))
    return starts, ends, cum[ends] - cum[starts] > 0


def _content_lines(path: Path) -> np.ndarray:
    """1-based numbers of the non-blank lines of a file (header first).

    pandas skips blank and whitespace-only lines, so data row i is the (i+2)-th
    content line; counting them here makes reported line numbers match an editor's.
    Only used on the error path.
    """
    _, _, has_content = _line_spans(np.frombuffer(path.read_bytes(), dtype=np.uint8))
    return np.flatnonzero(has_content) + 1


def line_of_row(path: Path | None, row: int) -> int:
    """1-based file line of 0-based data row `row` (header = line 1)."""
    if path is not None and path.is_file():
        lines = _content_lines(path)
        if row + 1 < lines.size:
            return int(lines[row + 1])
    return row + 2


def source_path(df: pd.DataFrame) -> Path | None:
    """The file a table was read from (``df.attrs["path"]``), for cross-table errors."""
    src = df.attrs.get("path")
    return Path(src) if src else None


# ----------------------------------------------------------------- value checks


def _exceeds(digits: pd.Series, limit: int) -> np.ndarray:
    """Digit strings (no sign, no leading zeros) whose value is > `limit`, compared as
    text so arbitrarily long numbers never overflow."""
    lim = str(limit)
    length = digits.str.len()
    return ((length > len(lim)) | ((length == len(lim)) & (digits > lim))).to_numpy(bool)


def bad_tokens(tokens: pd.Series, dtype: np.dtype, allow_empty: bool) -> tuple[np.ndarray, str]:
    """Mask of raw string tokens that do not parse as `dtype`, and the expected form."""
    text = tokens.astype(object).fillna("").astype(str).str.strip()
    name = DTYPE_NAME[dtype]
    if dtype == F32:
        number = pd.to_numeric(text, errors="coerce")
        bad = number.isna().to_numpy(bool) & ~text.isin(NA_TOKENS).to_numpy(bool)
        return bad, name
    lo, hi = INT_RANGE[dtype]
    fmt_ok = text.str.fullmatch(r"[+-]?\d+").fillna(False).to_numpy(bool)
    negative = text.str.startswith("-").to_numpy(bool)
    digits = text.str.lstrip("+-").str.lstrip("0").where(fmt_ok, "")
    too_big = np.where(negative, _exceeds(digits, -lo), _exceeds(digits, hi))
    bad = ~fmt_ok | too_big
    if allow_empty:
        bad &= text.to_numpy(str) != ""
    return bad, name


def _describe_bad(token: str, dtype: np.dtype) -> str:
    """Why one token failed, for the error message."""
    name = DTYPE_NAME[dtype]
    stripped = token.strip()
    if stripped == "":
        return f"empty value, expected {name}"
    if dtype != F32 and re.fullmatch(r"[+-]?\d+", stripped):
        if stripped.startswith("-") and INT_RANGE[dtype][0] == 0:
            return f"cannot parse '{token}' as {name}: negative value in an unsigned column"
        lo, hi = INT_RANGE[dtype]
        return f"cannot parse '{token}' as {name}: out of range [{lo}, {hi}]"
    return f"cannot parse '{token}' as {name}"


def diagnose(
    path: Path, columns: list[str], schema: TableSchema, event: int | None, failed: str
) -> InputFormatError:
    """Second pass over raw strings: the first (line, column) that does not parse."""
    raw = pd.read_csv(
        path, usecols=columns, dtype=str, keep_default_na=False, na_filter=False,
        index_col=False, engine="c",
    )
    best: tuple[int, int, str] | None = None
    for order, column in enumerate(columns):
        dtype = schema.columns[column]
        if dtype == STR:
            continue
        bad, _ = bad_tokens(raw[column], dtype, allow_empty=column in FILL_FROM)
        rows = np.flatnonzero(bad)
        if rows.size and (best is None or (rows[0], order) < (best[0], best[1])):
            best = (int(rows[0]), order, column)
    if best is None:  # pandas refused a column whose every token looks valid
        name = DTYPE_NAME[schema.columns[failed]]
        return InputFormatError(path, f"values could not be read as {name}", column=failed,
                                expected=name, event=event)
    row, _, column = best
    dtype = schema.columns[column]
    return InputFormatError(
        path,
        _describe_bad(str(raw[column].iloc[row]), dtype),
        row=line_of_row(path, row),
        column=column,
        expected=DTYPE_NAME[dtype],
        event=event,
    )


def field_count_error(path: Path, n_fields: int, event: int | None) -> InputFormatError | None:
    """The first row whose number of fields differs from the header's, found by counting
    separators per line (ACTS files are never quoted); None if every row matches."""
    data = np.frombuffer(path.read_bytes(), dtype=np.uint8)
    starts, ends, has_content = _line_spans(data)
    comma = np.concatenate(([0], np.cumsum(data == ord(","))))
    fields = comma[ends] - comma[starts] + 1
    lines = np.flatnonzero(has_content)[1:]  # content lines after header
    bad = lines[fields[lines] != n_fields]
    if not bad.size:
        return None
    line = int(bad[0])
    found = int(fields[line])
    hint = " (truncated line?)" if found < n_fields else ""
    return InputFormatError(
        path,
        f"expected {n_fields} fields (as in the header), found {found}{hint}",
        row=line + 1,
        expected=f"{n_fields} fields",
        event=event,
    )



def nonfinite_rows(frame: dict[str, np.ndarray]) -> tuple[np.ndarray, tuple[int, str] | None]:
    """Mask of rows with NaN/inf in a must-be-finite column, and the first (row, column)."""
    n = len(next(iter(frame.values()))) if frame else 0
    mask = np.zeros(n, dtype=bool)
    best: tuple[int, str] | None = None
    for column, arr in frame.items():
        if column not in FINITE_COLUMNS or arr.dtype.kind != "f":
            continue
        bad = ~np.isfinite(arr)
        rows = np.flatnonzero(bad)
        if rows.size:
            mask |= bad
            if best is None or rows[0] < best[0]:
                best = (int(rows[0]), column)
    return mask, best


def nonfinite_error(
    path: Path, frame: dict[str, np.ndarray], best: tuple[int, str], event: int | None
) -> NonFiniteValueError:
    """The error for the first non-finite value, `best` = (row, column) from
    `nonfinite_rows`."""
    row, column = best
    return NonFiniteValueError(
        path,
        f"non-finite value {frame[column][row]}, expected a finite float32 (--nonfinite "
        "drop goes on without such rows)",
        row=line_of_row(path, row),
        column=column,
        expected="finite float32",
        event=event,
    )
