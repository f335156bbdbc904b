"""What a Triton client does when a try fails: the retry / failover policy.

One object decides, as CMSSW's ``RetryActionBase`` family does, so the client only
carries the decision out. After a failed try the answer is one of: try again on the same
server after a delay (exponential backoff), move to the next server of the list, hand the
request to the local fallback, or fail it. Recoverable failures (connection lost, server
unavailable, and timeouts unless ``on_timeout="fail"``) are retried ``allowed_tries``
times per server; a server that used up its tries is skipped by later requests for
``down_s`` seconds. Anything else (invalid arguments, an error raised in the model, a
wrong output) fails at once: trying again would give the same answer. A server that
does not serve the model ("unknown model": a pool member with another repository, or a
load balancer refusing it) sends the request to the next server without retrying there;
one too large for the servers (MAX_SPACEPOINTS) goes to the local fallback when there is
one.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from sonic_exatrkx.framework import ConfigurationError
from sonic_exatrkx.sonic.errors import (
    check_count,
    is_elsewhere,
    is_recoverable,
    is_timeout,
    is_too_large,
)

ON_TIMEOUT = ("retry", "fail")


class Action(enum.Enum):
    RETRY = "retry on the same server"
    NEXT_SERVER = "next server"
    WAIT = "wait, then every server again"  # within the retry budget
    FALLBACK = "local fallback"
    FAIL = "fail"


class Why(enum.Enum):
    """Why a request failed for good (the client words its error from it)."""

    NONE = ""
    TIMEOUT = "timed out"
    NOT_RECOVERABLE = "not recoverable"
    EXHAUSTED = "every server failed"


@dataclass(frozen=True)
class Decision:
    """The policy's answer to one failed try. ``server_down``: mark the server down
    (its tries are used up)."""

    action: Action
    delay_s: float = 0.0
    server_down: bool = False
    why: Why = Why.NONE


@dataclass(frozen=True)
class RetryPolicy:
    """Tries per server, backoff, how long a failed server is skipped, and timeouts.

    ``budget_s``: when every server has used up its tries (and there is no fallback), the
    request waits and tries them all again, with exponential backoff from ``backoff_s`` up
    to ``max_backoff_s``, each wait drawn in [50 %, 100 %] of that (jitter: requests that
    failed together do not all come back at once), until ``budget_s`` seconds have passed
    since its first failure; then it fails. So a server restarted on the same address
    (about 10 s for Triton with our models on CPU) costs time, not events, and a server
    that stays away fails the job in bounded time. 0: no waiting (fail at once).
    """

    allowed_tries: int = 3
    backoff_s: float = 0.05
    down_s: float = 30.0
    on_timeout: str = "retry"
    budget_s: float = 60.0
    max_backoff_s: float = 2.0

    def __post_init__(self) -> None:
        check_count(self.allowed_tries, "allowed_tries")
        for key in ("backoff_s", "down_s", "budget_s", "max_backoff_s"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ConfigurationError(f"{key} must be a number >= 0, got {value!r}")
        if self.on_timeout not in ON_TIMEOUT:
            raise ConfigurationError(f"on_timeout must be one of {ON_TIMEOUT}, got "
                                     f"{self.on_timeout!r}")

    def delay_s(self, tries: int) -> float:
        """Backoff before the try after ``tries`` failed ones on one server."""
        return min(float(self.backoff_s) * 2 ** (tries - 1), self.max_backoff_s)

    def wait_s(self, rounds: int, draw: float) -> float:
        """The jittered wait before round ``rounds + 1`` over every server; ``draw`` is
        uniform in [0, 1)."""
        return self.delay_s(rounds + 1) * (0.5 + 0.5 * draw)

    def decide(self, error: BaseException, *, tries: int, servers_left: int,
               fallback: bool, waited_s: float = 0.0, rounds: int = 0,
               draw: float = 0.5) -> Decision:
        """After ``tries`` failed tries on the current server, with ``servers_left``
        servers after it and a local fallback or not; ``waited_s`` since the request's
        first failure, ``rounds`` over every server so far (the retry budget)."""
        if is_timeout(error) and self.on_timeout == "fail":
            return Decision(Action.FAIL, why=Why.TIMEOUT)
        if is_too_large(error):  # every server refuses it; this process can run it
            return Decision(Action.FALLBACK) if fallback \
                else Decision(Action.FAIL, why=Why.NOT_RECOVERABLE)
        if is_elsewhere(error):  # this server does not serve the model: no retry here
            if servers_left > 0:
                return Decision(Action.NEXT_SERVER, server_down=True)
            if fallback:
                return Decision(Action.FALLBACK, server_down=True)
            return Decision(Action.FAIL, why=Why.NOT_RECOVERABLE)
        if not is_recoverable(error):
            return Decision(Action.FAIL, why=Why.NOT_RECOVERABLE)
        if tries < self.allowed_tries:
            return Decision(Action.RETRY, delay_s=self.delay_s(tries))
        if servers_left > 0:
            return Decision(Action.NEXT_SERVER, server_down=True)
        if fallback:
            return Decision(Action.FALLBACK, server_down=True)
        wait = self.wait_s(rounds, draw)
        if waited_s + wait < self.budget_s:
            return Decision(Action.WAIT, delay_s=wait, server_down=True)
        return Decision(Action.FAIL, server_down=True, why=Why.EXHAUSTED)
