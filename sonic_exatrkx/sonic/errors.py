"""Errors of the SONIC layer, and which server failures are worth another try."""

from __future__ import annotations

import http.client

from sonic_exatrkx.checks import check_count as _check_count
from sonic_exatrkx.framework import ConfigurationError


def check_count(value: object, what: str) -> None:
    """Refuse anything but an integer >= 1 (``bool`` too) for a count setting ``what``:
    `sonic_exatrkx.checks.check_count` raising this layer's `ConfigurationError`."""
    _check_count(value, what, error=ConfigurationError)


class SonicError(RuntimeError):
    """Base of the errors raised while serving an event."""


class ServerUnavailableError(ConfigurationError):
    """No configured server answers its health check (bad URL, server down)."""


class UnknownModelError(ConfigurationError):
    """The server answers but does not serve the model (or that version)."""


class ModelMismatchError(UnknownModelError):
    """The server serves the model from other models than the job's (their checksums
    differ): tracks would not be identical, so that server is not used."""


class OutputCheckError(SonicError):
    """A server returned an output of the wrong name, dtype or shape: a server or
    repository mismatch, never retried."""


class InferenceError(SonicError):
    """A request failed for good: not recoverable, or every try, server and fallback
    was used up. The message names the model, the servers tried and the last error."""


class RequestTimeoutError(InferenceError):
    """A request exceeded its per-request timeout (``on_timeout="fail"``)."""


# gRPC codes (as tritonclient's `status()` spells them) that mean "the server or the
# network is gone or busy": another try, possibly elsewhere, may succeed.
_RECOVERABLE_STATUS = {"StatusCode.UNAVAILABLE", "503", "502", "504"}
_TIMEOUT_STATUS = {"StatusCode.DEADLINE_EXCEEDED", "408"}


def is_timeout(exc: BaseException) -> bool:
    """Whether ``exc`` is a per-request deadline being exceeded."""
    status = _status(exc)
    return status in _TIMEOUT_STATUS or isinstance(exc, TimeoutError)


#: What a server says when it does not serve the model (another server of a pool may).
_ELSEWHERE_STATUS = {"StatusCode.NOT_FOUND"}
_ELSEWHERE_TEXT = ("unknown model", "is not found", "no ready model")


def is_too_large(exc: BaseException) -> bool:
    """Whether the server refused the request for its size (our models' MAX_SPACEPOINTS,
    Triton's own request-size limits): every server of the pool would, but this process
    has no such limit, so a local fallback may run it."""
    text = describe(exc).lower()
    return not isinstance(exc, SonicError) and ("max_spacepoints" in text
                                                or "exceeds the maximum" in text)


def is_elsewhere(exc: BaseException) -> bool:
    """Whether ``exc`` says "not this server": the model is not there (unknown, or not
    loaded), so the request may succeed on another server of the pool, never here."""
    if isinstance(exc, UnknownModelError):
        return True
    if isinstance(exc, SonicError):
        return False
    text = describe(exc).lower()
    return _status(exc) in _ELSEWHERE_STATUS or any(t in text for t in _ELSEWHERE_TEXT)


def is_recoverable(exc: BaseException) -> bool:
    """Whether a failed request may succeed when sent again (or to another server).

    Connection loss and unavailability are; invalid arguments, unknown models, errors
    raised by the model itself and output mismatches are not: they fail the same way
    every time, so retrying would only hide them.
    """
    if isinstance(exc, SonicError):
        return False
    status = _status(exc)
    if status is not None:
        return status in _RECOVERABLE_STATUS or status in _TIMEOUT_STATUS
    # The HTTP client does not wrap connection failures (see triton-on-cpu.md).
    return isinstance(exc, (http.client.HTTPException, OSError))


def _status(exc: BaseException) -> str | None:
    status = getattr(exc, "status", None)
    if callable(status):
        try:
            value = status()
        except Exception:  # noqa: BLE001 - a foreign exception type with a status attr
            return None
        return None if value is None else str(value)
    return None


def describe(exc: BaseException) -> str:
    """One line for a client error: tritonclient's message without its debug noise."""
    message = getattr(exc, "message", None)
    text = message() if callable(message) else str(exc)
    status = _status(exc)
    head = f"{status}: " if status and not str(text).startswith("[") else ""
    return f"{head}{text}".strip() or type(exc).__name__
