"""Where the pipeline's torch work runs: ``cpu``, ``cuda`` or ``cuda:N``.

A device that was asked for and cannot be used is an error with one line saying why (this
torch has no CUDA, CUDA sees no GPU, fewer GPUs than the index), never a silent run on the
CPU: a user who asked for a GPU and got the CPU would only notice from the time it took
(an ACTS user complaint). The name is checked when a config is built (:func:`check_device`,
no torch needed) and the device when a pipeline is built (:func:`usable_device`).
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

from .errors import ExaTrkXConfigError

if TYPE_CHECKING:
    import torch

__all__ = ["DEVICES_HELP", "DeviceUnavailableError", "check_device", "is_cuda",
           "usable_device"]

_DEVICE = re.compile(r"^(cpu|cuda(:(0|[1-9][0-9]*))?)$")
DEVICES_HELP = "'cpu', 'cuda' (the first GPU) or 'cuda:N'"


class DeviceUnavailableError(ExaTrkXConfigError):
    """A GPU device was asked for and none (or not that one) is usable here."""


def check_device(name: object, what: str = "device") -> str:
    """``name`` if it is a device name of :data:`DEVICES_HELP` (``cuda`` is kept as
    given: torch's current CUDA device)."""
    if not isinstance(name, str) or not _DEVICE.match(name):
        raise ExaTrkXConfigError(f"{what} must be {DEVICES_HELP}, got {name!r}")
    return name


def is_cuda(name: str) -> bool:
    return check_device(name).startswith("cuda")


def usable_device(name: str) -> torch.device:
    """The torch device ``name``, or :class:`DeviceUnavailableError` saying in one line
    why it cannot be used here."""
    import torch

    check_device(name)
    if name == "cpu":
        return torch.device("cpu")
    if torch.version.cuda is None:
        reason = f"this torch ({torch.__version__}) is built without CUDA"
    elif not torch.cuda.is_available() or torch.cuda.device_count() == 0:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        reason = "CUDA finds no GPU" + (f" (CUDA_VISIBLE_DEVICES={visible!r})"
                                        if visible is not None else "")
    else:
        count = torch.cuda.device_count()
        index = int(name.split(":")[1]) if ":" in name else torch.cuda.current_device()
        if index < count:
            return torch.device("cuda", index)
        reason = f"only {count} GPU(s) are visible (cuda:0 to cuda:{count - 1})"
    raise DeviceUnavailableError(f"device {name!r} was asked for, but {reason}; use device "
                                 "'cpu' or run where a GPU is visible")
