"""Errors raised for bad input files.

Every error carries where the problem is (file, 1-based line, column) and what was
expected, so a user can open the file at that line instead of guessing which of
thousands of event files is broken. All derive from `ValueError`; the "file is not
there" errors also derive from `FileNotFoundError` so generic handlers still work.
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path

__all__ = [
    "BadReferenceError",
    "EmptyFileError",
    "EventDirectoryError",
    "InputFormatError",
    "MissingColumnError",
    "MissingEventFileError",
    "NonFiniteValueError",
]


class InputFormatError(ValueError):
    """A file could not be read as the expected format.

    Attributes: `path` (the file), `row` (1-based line number in the file, the header
    being line 1; None when the problem is not tied to one line), `column`, `expected`
    (a short description of what should be there) and `event` (event number or None).
    The message is one line: ``<file> line <row>, column '<col>': <detail>``.
    """

    #: Name the file by its full path instead of its name (for directories, whose
    #: names alone like "data" say little).
    _full_path_in_message = False

    def __init__(
        self,
        path: str | PathLike[str] | None,
        detail: str,
        *,
        row: int | None = None,
        column: str | None = None,
        expected: str | None = None,
        event: int | None = None,
    ) -> None:
        self.path = Path(path) if path is not None else None
        self.row = row
        self.column = column
        self.expected = expected
        self.event = event
        self.detail = detail
        if self.path is None:
            where = ["<input>"]
        else:
            where = [str(self.path) if self._full_path_in_message else self.path.name]
        if row is not None:
            where.append(f" line {row}")
        if column is not None:
            where.append(f", column '{column}'")
        super().__init__(f"{''.join(where)}: {detail}")


class MissingColumnError(InputFormatError):
    """Required columns are absent from the header; `missing` lists them and
    `suggestions` maps a missing name to the closest existing header name (typos)."""

    def __init__(
        self,
        path: str | PathLike[str] | None,
        missing: list[str],
        suggestions: dict[str, str],
        found: list[str],
        *,
        event: int | None = None,
        row: int | None = 1,
        what: str = "",
    ) -> None:
        self.missing = list(missing)
        self.suggestions = dict(suggestions)
        self.found = list(found)
        parts = []
        for name in missing:
            hint = f" (did you mean '{suggestions[name]}'?)" if name in suggestions else ""
            parts.append(f"'{name}'{hint}")
        label = "column" if len(missing) == 1 else "columns"
        detail = (
            f"missing required {what}{label} {', '.join(parts)}; "
            f"found columns: {', '.join(found) if found else '(none)'}"
        )
        super().__init__(
            path,
            detail,
            row=row,
            column=missing[0] if len(missing) == 1 else None,
            expected=", ".join(missing),
            event=event,
        )


class EmptyFileError(InputFormatError):
    """The file has no header line at all (0 bytes or only blank lines)."""


class NonFiniteValueError(InputFormatError):
    """A NaN or infinite value in a column that must hold finite numbers."""


class BadReferenceError(InputFormatError):
    """An id in one table refers to a row that does not exist in another."""


class MissingEventFileError(InputFormatError, FileNotFoundError):
    """The file of one kind is missing for an event (e.g. hits present, spacepoint not)."""


class EventDirectoryError(InputFormatError, FileNotFoundError):
    """An event directory is missing, not a directory, or holds no file of a kind."""

    _full_path_in_message = True
