"""What the readers (ACTS CSV, ROOT, TrackML) do with duplicated space points (the same
x, y, z twice in an event): count them and warn (``"warn"``, the default) or drop the
repeats (``"drop"``)."""

from __future__ import annotations

import logging
from typing import NamedTuple

import numpy as np
import pandas as pd

from sonic_exatrkx.framework import ConfigurationError
from sonic_exatrkx.io.spacepoint_checks import DUPLICATES, duplicate_mask


def check_duplicates_policy(owner: str, policy: str) -> None:
    if policy not in DUPLICATES:
        raise ConfigurationError(f"{owner}: duplicates must be one of {DUPLICATES}, got "
                                 f"{policy!r}")


class Deduplicated(NamedTuple):
    """The event's space points after the policy; ``keep``: the rows kept (None when
    none was dropped), to apply to per-space-point arrays; ``found``: the repeats."""

    spacepoints: pd.DataFrame
    keep: np.ndarray | None
    found: int

    def apply(self, values: np.ndarray | None) -> np.ndarray | None:
        """A per-space-point array cut like the space points."""
        return values if values is None or self.keep is None else values[self.keep]


def handle_duplicates(logger: logging.Logger, event: int, spacepoints: pd.DataFrame,
                      policy: str) -> Deduplicated:
    """Apply the policy, warning with the count when the event has duplicates."""
    repeated = duplicate_mask(spacepoints)
    n = int(repeated.sum())
    if n == 0:
        return Deduplicated(spacepoints, None, 0)
    if policy == "warn":
        logger.warning("event %d: %d of %d space points repeat another's x, y, z exactly "
                       "(they change the graph; --drop-duplicates removes them)", event, n,
                       len(spacepoints))
        return Deduplicated(spacepoints, None, n)
    logger.warning("event %d: dropping %d duplicated space points of %d", event, n,
                   len(spacepoints))
    kept = spacepoints[~repeated].reset_index(drop=True)
    kept.attrs.update(spacepoints.attrs)
    return Deduplicated(kept, ~repeated, n)
