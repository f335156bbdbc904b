"""Errors of the ExaTrkX layer.

Configuration problems (a bad value in a ``*Config``, a bad ``config.json``, model files
that are missing or do not match the configuration) are `ExaTrkXConfigError`: the caller
can tell "fix the settings" apart from a bad event and report it before any event runs.
It derives from `ValueError`, so ``except ValueError`` code keeps working.

Problems with the arrays of one call (non-finite features, wrong shapes, a label array
that does not match the particle ids) and with plain function arguments stay
`ValueError`: they are the caller's data, checked where they enter a stage, and nothing
catches them apart from other bad input.
"""

from __future__ import annotations

__all__ = ["ExaTrkXConfigError", "MissingModelFileError"]


class ExaTrkXConfigError(ValueError):
    """A pipeline, stage or training setting is invalid."""


class MissingModelFileError(ExaTrkXConfigError, FileNotFoundError):
    """A model directory, model file or pipeline config file is not there (also a
    `FileNotFoundError`, which callers catch for missing inputs)."""
