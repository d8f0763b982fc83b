"""Which torch devices this machine has, and a clear error for one it has not.

Checked where a device is validated (the ``Device`` config type, ``genrec encode --device``), so a
missing GPU is reported before any work starts instead of as a driver traceback mid-run.
"""

from __future__ import annotations

import torch

ALWAYS_THERE = ("cpu", "meta")  # meta: shapes without storage, on every machine


class DeviceUnavailableError(ValueError):
    """A device torch can name but this machine does not have; the message lists the ones it has."""


def available_devices() -> list[str]:
    """The devices this process can use: ``cpu``, then ``cuda:0``... and ``mps`` where present."""
    found = ["cpu"]
    if torch.cuda.is_available():
        found += [f"cuda:{index}" for index in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        found.append("mps")
    return found


def check_device_available(device: str | torch.device) -> str:
    """``device`` (as given) if this machine has it, else :class:`DeviceUnavailableError`, e.g.
    ``device 'cuda:7' is not available: this machine has no CUDA device; available: cpu``.

    ``device`` must parse as a torch device (``torch.device`` raises otherwise).
    """
    parsed = torch.device(device)
    index = parsed.index or 0
    if parsed.type in ALWAYS_THERE:
        return str(device)
    if parsed.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if index < count:
            return str(device)
        has = "no CUDA device" if count == 0 else f"{count} CUDA device(s), cuda:0 to cuda:{count - 1}"
    elif parsed.type == "mps":
        if torch.backends.mps.is_available():
            return str(device)
        has = "no MPS device (Apple silicon with an MPS build of torch)"
    else:  # xpu, hpu...: the backends torch exposes as torch.<type> with is_available()
        backend = getattr(torch, parsed.type, None)
        available = getattr(backend, "is_available", None)
        if available is not None and available() and index < backend.device_count():
            return str(device)
        has = f"no {parsed.type} device torch can use"
    raise DeviceUnavailableError(
        f"device {str(device)!r} is not available: this machine has {has}; available: {', '.join(available_devices())}"
    )
