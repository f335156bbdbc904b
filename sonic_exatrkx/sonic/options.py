"""How a client talks to Triton: one frozen, self-validating options value.

CMSSW gives each SONIC producer one nested ``Client`` parameter set; this is ours. The
algorithm, the command line and the example job configs build one :class:`TritonOptions`
and pass it down as one value: every :class:`~sonic_exatrkx.sonic.triton.TritonClient` of a
job (one per served model) reads the same object, so no setting is renamed or re-checked
on the way. Where the servers are is not in here (the job's placement says that), nor
which stages are served (:class:`~sonic_exatrkx.sonic.service_option.ServiceOption`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from sonic_exatrkx.framework import ConfigurationError
from sonic_exatrkx.sonic.errors import check_count
from sonic_exatrkx.sonic.retry import RetryPolicy

PROTOCOLS = ("grpc", "http")
COMPRESSION = (None, "gzip", "deflate")
BALANCE = ("least-outstanding", "failover")


@dataclass(frozen=True)
class TritonOptions:
    """Transport settings shared by every Triton request of a job.

    ``protocol``: grpc (truly asynchronous) or http. ``timeout_s``: per-request deadline;
    None (the default) scales it with the event: ``deadline_base_s`` plus
    ``deadline_per_point_s`` per space point (30 s + 0.5 ms each: about 31 s at mu=0 and
    80 s at mu=200, far above a healthy request), so a hung server costs a bounded wait,
    then the retry policy's next step; ``float("inf")``: no deadline. ``slow_log_s``: a
    request waiting longer than this is logged (once) while it waits. The scaled deadline
    applies over gRPC; HTTP connections time out after ``timeout_s`` or 600 s.
    ``retry``: tries per server, backoff, how long a failed server is skipped and what a
    timeout means (:class:`RetryPolicy`). ``fallback_local``: run a
    request in this process when every server failed. ``compression``: gzip / deflate of
    the request. ``headers``: sent with every request (e.g. a token). ``tls_root_certificates``:
    a PEM file; gRPC over TLS when given. ``shared_memory``: tensors through ``/dev/shm``
    (a server on this node; others get the network, logged once). ``model_version``:
    "" for the server's latest. ``http_concurrency``: HTTP connections (threads) per model.
    ``health_timeout_s``: deadline of health, metadata and statistics calls.
    ``balance``: ``least-outstanding`` sends each request to the server with the fewest
    requests in flight from this client (a slow or loaded server gets fewer), the others
    in list order as failover; ``failover`` always prefers the first server that is up.
    ``probe_interval_s``: how often the servers' readiness is probed, to mark a server down
    before requests fail there and back up as soon as it is ready again (0: no probing;
    a failed server is then tried again after ``retry.down_s``).
    """

    protocol: str = "grpc"
    timeout_s: float | None = None
    deadline_base_s: float = 30.0
    deadline_per_point_s: float = 5e-4
    slow_log_s: float = 10.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    fallback_local: bool = False
    compression: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    tls_root_certificates: str | None = None
    shared_memory: bool = False
    model_version: str = ""
    http_concurrency: int = 4
    health_timeout_s: float = 5.0
    balance: str = "least-outstanding"
    probe_interval_s: float = 2.0

    def __post_init__(self) -> None:
        if self.balance not in BALANCE:
            raise ConfigurationError(f"balance must be one of {BALANCE}, got "
                                     f"{self.balance!r}")
        if isinstance(self.probe_interval_s, bool) or not isinstance(
                self.probe_interval_s, int | float) or self.probe_interval_s < 0:
            raise ConfigurationError(f"probe_interval_s must be a number >= 0, got "
                                     f"{self.probe_interval_s!r}")
        if self.protocol not in PROTOCOLS:
            raise ConfigurationError(f"protocol must be one of {PROTOCOLS}, got "
                                     f"{self.protocol!r}")
        if self.compression not in COMPRESSION:
            raise ConfigurationError(f"compression must be one of {COMPRESSION}, got "
                                     f"{self.compression!r}")
        if not isinstance(self.retry, RetryPolicy):
            raise ConfigurationError(f"retry must be a RetryPolicy, got {self.retry!r}")
        for key in ("timeout_s", "health_timeout_s", "deadline_base_s",
                    "deadline_per_point_s", "slow_log_s"):
            value = getattr(self, key)
            if value is None and key == "timeout_s":
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ConfigurationError(f"{key} must be a number > 0, got {value!r}")
        check_count(self.http_concurrency, "http_concurrency")
        for key in ("fallback_local", "shared_memory"):
            if not isinstance(getattr(self, key), bool):
                raise ConfigurationError(f"{key} must be True or False, got "
                                         f"{getattr(self, key)!r}")
        if isinstance(self.headers, Mapping):  # accept a dict; keep a hashable value
            object.__setattr__(self, "headers", tuple(sorted(
                (str(k), str(v)) for k, v in self.headers.items())))
        if self.tls_root_certificates is not None:
            if self.protocol == "http":
                raise ConfigurationError("tls_root_certificates: TLS is supported over "
                                         "gRPC only here")
            object.__setattr__(self, "tls_root_certificates",
                               os.fspath(self.tls_root_certificates))
        object.__setattr__(self, "model_version", str(self.model_version))

    def deadline_s(self, points: int) -> float | None:
        """The per-request deadline for an event of ``points`` space points (None: none)."""
        if self.timeout_s is not None:
            return None if self.timeout_s == float("inf") else float(self.timeout_s)
        return self.deadline_base_s + self.deadline_per_point_s * points

    @property
    def ssl(self) -> bool:
        """gRPC over TLS (a root certificate was given)."""
        return self.tls_root_certificates is not None

    @property
    def header_dict(self) -> dict[str, str] | None:
        """The headers as tritonclient takes them (None when there are none)."""
        return dict(self.headers) if self.headers else None

