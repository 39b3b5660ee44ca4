"""Which torch device a job may run on: ``--device`` checked against what this machine has, before a model loads
(a job that failed on its first batch would have loaded a checkpoint for nothing)."""

from __future__ import annotations

from typing import Any

from ser_hf.errors import SERError
from ser_hf.paths import printable

__all__ = ["check_device"]


def _available_devices() -> list[str]:
    import torch

    found = ["cpu"]
    if torch.cuda.is_available():
        found += ["cuda"] + [f"cuda:{index}" for index in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    return found


def check_device(device: Any) -> None:
    """Refuse a ``--device`` torch cannot parse or this machine does not have, before the model loads.

    Raises:
        SERError: naming --device, what was given and the devices available here.
    """
    if device is None:
        return
    import torch

    available = _available_devices()
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        parsed = None
    if parsed is None or parsed.type not in ("cpu", "cuda", "mps"):
        what = "is not a device torch knows" if parsed is None else "is not a device ser-hf predict runs on"
        raise SERError(f"--device {printable(str(device))!r} {what}; expected cpu, cuda, cuda:N or mps. Available "
                       f"here: {available}; pass one of them, or leave --device out for the CPU.")
    if parsed.type == "cpu" or (parsed.type == "mps" and "mps" in available):
        return
    if parsed.type == "cuda" and "cuda" in available and (parsed.index or 0) < torch.cuda.device_count():
        return
    reason = ("no CUDA GPU is visible (or torch was built without CUDA)" if parsed.type == "cuda" and "cuda" not in
              available else "this torch has no MPS (Apple GPU) backend here" if parsed.type == "mps" else
              f"this machine has {torch.cuda.device_count()} CUDA device(s)")
    raise SERError(f"--device {str(parsed)!r} is not available: {reason}. Available here: {available}; pass one of "
                   f"them, or leave --device out for the CPU.")
