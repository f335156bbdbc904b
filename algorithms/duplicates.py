"""What the readers do with duplicated space points (the same x, y, z twice in an event):
count them and warn (``"warn"``, the default) or drop the repeats (``"drop"``)."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from sonic_exatrkx.framework import ConfigurationError
from sonic_exatrkx.io.spacepoint_checks import DUPLICATES, duplicate_mask


def check_duplicates_policy(owner: str, policy: str) -> None:
    if policy not in DUPLICATES:
        raise ConfigurationError(f"{owner}: duplicates must be one of {DUPLICATES}, got "
                                 f"{policy!r}")


def handle_duplicates(logger: logging.Logger, event: int, spacepoints: pd.DataFrame,
                      truth: np.ndarray | None, policy: str
                      ) -> tuple[pd.DataFrame, np.ndarray | None]:
    """The event's space points (and particle ids) after the policy, warning with the
    count when there are duplicates."""
    repeated = duplicate_mask(spacepoints)
    n = int(repeated.sum())
    if n == 0:
        return spacepoints, truth
    if policy == "warn":
        logger.warning("event %d: %d of %d space points repeat another's x, y, z exactly "
                       "(they change the graph; --drop-duplicates removes them)", event, n,
                       len(spacepoints))
        return spacepoints, truth
    logger.warning("event %d: dropping %d duplicated space points of %d", event, n,
                   len(spacepoints))
    kept = spacepoints[~repeated].reset_index(drop=True)
    kept.attrs.update(spacepoints.attrs)
    return kept, truth[~repeated] if truth is not None else None
