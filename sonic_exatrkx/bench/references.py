"""The seeds' published figures, drawn as reference points on our plots and quoted next to
our figures (docs/performance.md). Measured by the seeds, not by this project; the machines
differ (GPUs there, CPUs here), so they are points to read against, not targets.

Sources (``shared/notes/design.md``): the reference ExaTrkX service on an NVIDIA A100
(Perlmutter, small HNL events, mean 1,321 space points) and the V100 poster (100 HNL
events without pileup, NERSC V100s, service options S0-S4).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["A100", "REFERENCE_SPACEPOINTS", "V100_NOTES", "Reference"]

#: Mean space points per event of the reference events (small HNL, no pileup).
REFERENCE_SPACEPOINTS = 1321


@dataclass(frozen=True)
class Reference:
    """Points ``(x, y)`` of one curve of the seeds, with where they come from."""

    label: str
    x: tuple[float, ...]
    y: tuple[float, ...]
    source: str


A100 = {
    # Fig. 4a: events/s vs concurrent requests (direct: 44 at 1, 65 at 8, only the ends
    # are quoted); custom backend ~54 and ensemble ~25.5 events/s (flat in concurrency).
    "direct": Reference("seeds A100 direct", (1, 8), (44.0, 65.0), "A100 Fig. 4a"),
    "custom": Reference("seeds A100 custom backend", (1,), (54.0,), "A100 Fig. 4a"),
    "ensemble": Reference("seeds A100 ensemble", (1,), (25.5,), "A100 Fig. 4a"),
    # Fig. 4b: custom backend events/s vs model instances.
    "instances": Reference("seeds A100 custom backend", (1, 2, 3, 4, 5),
                           (54.0, 71.0, 79.0, 83.0, 84.0), "A100 Fig. 4b"),
    # The ensemble's time per stage, ms per event (x: stage index in STAGES order).
    "stages_ms": Reference("seeds A100 ensemble", (0, 1, 2, 3, 4),
                           (0.8, 4.1, 2.5, 11.7, 76.0), "A100 ensemble per stage"),
}

#: What the V100 poster says in words (its S0-S4 table is a figure whose numbers are not in
#: our copy): quoted in summaries next to the service-options study.
V100_NOTES = (
    "V100 poster: serving the embedding (S1, S3) costs about 0.9 ms of overhead per event "
    "on its small events; the ensemble (S4) was slower than the stages served one by one "
    "(S3), under investigation there; filtering timed the same with or without a server.",
    "V100 poster: the total time per event rose when concurrent events were enabled, for "
    "local models and for the remote ensemble alike.",
)
