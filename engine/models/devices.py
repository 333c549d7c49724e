"""Choosing the device a run uses. torch is imported only when the choice needs it."""

from __future__ import annotations

import importlib.util

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


class DeviceError(ValueError):
    """A device that was asked for but is not there."""


def resolve_device(requested: str) -> str:
    """Turn "auto" into cuda, then mps, then cpu, whichever is present; check an explicit choice."""
    if requested not in DEVICE_CHOICES:
        raise DeviceError(f"unknown device {requested!r}; choose one of {', '.join(DEVICE_CHOICES)}")
    if requested == "cpu":
        return "cpu"
    if importlib.util.find_spec("torch") is None:
        if requested == "auto":
            return "cpu"
        raise DeviceError(f"device {requested!r} needs torch, which is not installed")
    import torch

    cuda = torch.cuda.is_available()
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    if requested == "auto":
        return "cuda" if cuda else "mps" if mps else "cpu"
    if requested == "cuda" and not cuda:
        raise DeviceError("device 'cuda' was asked for, but torch sees no CUDA GPU; use --device cpu")
    if requested == "mps" and not mps:
        raise DeviceError("device 'mps' was asked for, but this machine has no Apple GPU; use --device cpu")
    return requested
