"""The result cache: node results by signature, kept where they were produced, bounded per device.

Each entry holds a node's output values and its UI output. Its size is counted on every device its
tensors live on; when a device's total passes its budget, least-recently-used entries holding bytes
on that device are dropped. An entry larger than a budget on its own is not kept at all.

On a device whose memory is also budgeted for model weights (the model manager's VRAM budget), the
cache may hold only what the resident weights leave: `allowance` says how much that is.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .sizing import measure

GIB = 1024**3
DEFAULT_BUDGETS: Mapping[str, int] = {"cpu": 4 * GIB, "cuda": 4 * GIB, "mps": 2 * GIB}


@dataclass(slots=True)
class CachedResult:
    values: tuple[Any, ...]
    ui: Mapping[str, Any] | None = None
    sizes: Mapping[str, int] = field(default_factory=dict)


class ResultCache:
    """Least-recently-used cache of node results with a byte budget per device type."""

    def __init__(self, budgets: Mapping[str, int] | None = None) -> None:
        self.budgets = dict(DEFAULT_BUDGETS if budgets is None else budgets)
        self._entries: OrderedDict[str, CachedResult] = OrderedDict()
        self._usage: dict[str, int] = {}
        self.evictions = 0
        # Bytes left for results on a device after the model weights there (None: no such limit).
        self.allowance: Callable[[str], int | None] = lambda device: None

    def budget(self, device: str) -> int:
        """The byte budget of `device`; a device with none configured shares the CPU's."""
        configured = self.budgets.get(device, self.budgets.get("cpu", 0))
        allowance = self.allowance(device)
        return configured if allowance is None else min(configured, allowance)

    def get(self, signature: str) -> CachedResult | None:
        entry = self._entries.get(signature)
        if entry is not None:
            self._entries.move_to_end(signature)
        return entry

    def __contains__(self, signature: object) -> bool:
        return signature in self._entries

    def signatures(self) -> list[str]:
        """The signatures of every result held, oldest first."""
        return list(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, signature: str, values: tuple[Any, ...], ui: Mapping[str, Any] | None = None) -> bool:
        """Keep a result; return False if it is larger than a device's whole budget."""
        sizes = measure(values)
        self.discard(signature)
        for device, size in sizes.items():
            if size > self.budget(device):
                return False
        self._entries[signature] = CachedResult(values, ui, sizes)
        for device, size in sizes.items():
            used = self._usage.get(device, 0) + size
            self._usage[device] = used
            if used > self.budget(device):
                self._evict(device)
        return True

    def discard(self, signature: str) -> None:
        entry = self._entries.pop(signature, None)
        if entry is not None:
            for device, size in entry.sizes.items():
                self._usage[device] -= size

    def clear(self) -> None:
        self._entries.clear()
        self._usage.clear()

    def usage(self) -> dict[str, int]:
        """Bytes held per device type."""
        return {device: size for device, size in self._usage.items() if size}

    def shrink(self, device: str, limit: int) -> int:
        """Drop the oldest entries holding bytes on `device` until it holds at most `limit`; return
        how many were dropped."""
        before = self.evictions
        self._evict(device, limit)
        return self.evictions - before

    def _evict(self, device: str, limit: int | None = None) -> None:
        excess = self._usage.get(device, 0) - (self.budget(device) if limit is None else limit)
        victims: list[str] = []
        for signature, entry in self._entries.items():  # oldest first
            if excess <= 0:
                break
            size = entry.sizes.get(device, 0)
            if size:
                victims.append(signature)
                excess -= size
        for signature in victims:
            self.discard(signature)
        self.evictions += len(victims)
