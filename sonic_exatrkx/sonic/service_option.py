"""Where the ExaTrkX stages run: the seeds' service options S0-S4, parsed once.

==================  ==============================================================
option              what runs on the server (the rest runs in this process)
==================  ==============================================================
``S0``              nothing: everything local
``S1``              the torch models: embedding, filter, GNN (graph and tracks local)
``S2``              S1 plus graph building (track building local)
``S3``              every stage, each as its own request
``S4``              the ensemble (one request, stages chained server-side)
``custom``          the custom backend (one request, whole pipeline in one model)
``custom-batched``  the custom backend behind Triton's dynamic batcher
                    (``exatrkx_dynamic``): concurrent events in one pass
==================  ==============================================================

A sequence of stage names (e.g. ``("graph",)``, or ``"embed+graph"`` on the command
line) serves exactly those stages. :meth:`ServiceOption.parse` turns any of these into
one :class:`ServiceOption`, which the client factory and the thread budget both take.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sonic_exatrkx.exatrkx.stages import STAGES
from sonic_exatrkx.framework import ConfigurationError

#: Option name -> the stages served on their own models, or the one model serving all.
SERVICE_OPTIONS: dict[str, tuple[str, ...] | str] = {
    "S0": (),
    "S1": ("embed", "filter", "gnn"),
    "S2": ("embed", "graph", "filter", "gnn"),
    "S3": STAGES,
    "S4": "ensemble",
    "custom": "pipeline",
    "custom-batched": "dynamic",
}
#: Share of the cores a job keeps for the stages it runs itself (the thread budget).
JOB_SHARE: dict[str, float] = {"custom": 0.0, "custom-batched": 0.0, "S4": 0.0, "S3": 0.0,
                               "S2": 0.25, "S1": 0.5, "S0": 1.0}


@dataclass(frozen=True)
class ServiceOption:
    """A parsed service option. ``name``: the option ("S2", "custom", or stage names
    joined by "+"). ``whole``: "pipeline" (custom backend), "dynamic" (custom backend with
    server-side batching) or "ensemble" (S4) when one request runs the chain, else None.
    ``stages``: the stages served each on its own model (S1-S3 and stage lists)."""

    name: str
    whole: str | None
    stages: tuple[str, ...]

    @classmethod
    def parse(cls, value: str | Sequence[str] | ServiceOption) -> ServiceOption:
        """From an option name, "stage+stage" or a sequence of stage names."""
        if isinstance(value, ServiceOption):
            return value
        if isinstance(value, str) and value in SERVICE_OPTIONS:
            served = SERVICE_OPTIONS[value]
            if isinstance(served, str):
                return cls(value, served, ())
            return cls(value, None, served)
        names = value.split("+") if isinstance(value, str) else [str(v) for v in value]
        unknown = [s for s in names if s not in STAGES]
        if unknown or not names:
            raise ConfigurationError(
                f"service_option must be one of {', '.join(SERVICE_OPTIONS)} or stage names "
                f"from {', '.join(STAGES)} (e.g. embed+graph), got {value!r}")
        stages = tuple(s for s in STAGES if s in names)
        named = next((k for k, v in SERVICE_OPTIONS.items() if v == stages), None)
        return cls(named or "+".join(stages), None, stages)

    @property
    def remote(self) -> bool:
        """Whether anything is served (False for S0)."""
        return self.whole is not None or bool(self.stages)

    @property
    def job_share(self) -> float:
        """Share of the cores the job keeps when it starts its own server: its local
        stages need them (a stage list keeps half unless it serves every stage)."""
        if self.name in JOB_SHARE:
            return JOB_SHARE[self.name]
        return 0.0 if len(self.stages) == len(STAGES) else 0.5

    def __str__(self) -> str:
        return self.name
