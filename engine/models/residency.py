"""Which model weights sit on the compute device, within a memory budget shared with the result cache.

Loaded components stay in memory; the question is where. With no budget everything stays on the
device (fastest). With a budget (`acceleration.vram_budget`), weights and cached results on the
device may hold that many bytes together: to make room, components are moved to host memory in
offload order — the depth estimator and the text encoder first (they run once per image), then the
VAE, the UNet last — least recently used first; then the oldest cached results on the device are
dropped. The low-memory mode keeps only the component in use on the device. A component moved back
comes from host memory, never from disk.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Protocol

OFFLOAD_ORDER = ("depth_estimator", "text_encoder", "text_encoder_2", "vae", "unet")
Key = tuple[str, str]  # (model name, component)


class DeviceCache(Protocol):
    """What the residency needs of the result cache (engine.core.cache.ResultCache)."""

    def usage(self) -> dict[str, int]: ...

    def shrink(self, device: str, limit: int) -> int: ...


def module_bytes(module: Any) -> int:
    """Bytes of a module's parameters and buffers."""
    tensors = [*module.parameters(), *module.buffers()]
    return sum(tensor.numel() * tensor.element_size() for tensor in tensors)


class Residency:
    """Moves components between the compute device and host memory to keep within the budget."""

    def __init__(
        self, device: str, budget: int | None = None, offload: bool = False, offload_device: str = "cpu"
    ) -> None:
        self.device = device
        self.device_type = device.split(":")[0]
        self.budget = budget
        self.offload = offload
        self.offload_device = offload_device
        self.cache: DeviceCache | None = None
        self._on_device: OrderedDict[Key, int] = OrderedDict()  # least recently used first
        self._modules: dict[Key, Any] = {}
        self.offloads = 0
        self.restores = 0

    def on_device(self) -> list[Key]:
        return list(self._on_device)

    def resident_bytes(self) -> int:
        return sum(self._on_device.values())

    def cache_allowance(self) -> int | None:
        """Bytes the result cache may hold on the device next to the resident weights (None: no limit)."""
        if self.budget is None:
            return None
        return max(0, self.budget - self.resident_bytes())

    def bring(self, key: Key, module: Any) -> Any:
        """Put `module` on the device (making room first if needed) and mark it most recently used."""
        if key in self._on_device:
            self._on_device.move_to_end(key)
            return module
        size = module_bytes(module)
        self._make_room(key, size)
        if key in self._modules:
            self.restores += 1
        module.to(device=self.device)
        self._modules[key] = module
        self._on_device[key] = size
        return module

    def forget(self, key: Key) -> None:
        self._on_device.pop(key, None)
        self._modules.pop(key, None)

    def _make_room(self, key: Key, size: int) -> None:
        if self.offload:
            for other in list(self._on_device):
                self._offload(other)
            return
        if self.budget is None:
            return

        def excess() -> int:
            cached = self.cache.usage().get(self.device_type, 0) if self.cache is not None else 0
            return self.resident_bytes() + size + cached - self.budget  # type: ignore[operator]

        rank = {name: index for index, name in enumerate(OFFLOAD_ORDER)}
        candidates = sorted(
            (other for other in self._on_device if other != key),
            key=lambda other: rank.get(other[1], len(OFFLOAD_ORDER)),
        )  # a stable sort: within one kind, least recently used first
        for other in candidates:
            if excess() <= 0:
                return
            self._offload(other)
        if excess() > 0 and self.cache is not None:
            self.cache.shrink(self.device_type, max(0, self.budget - self.resident_bytes() - size))

    def _offload(self, key: Key) -> None:
        self._modules[key].to(device=self.offload_device)
        del self._on_device[key]
        self.offloads += 1
