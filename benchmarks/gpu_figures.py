"""Figures for the depth-to-image benchmark: device timing, per-run peak memory, the UNet's FLOPs per
step, the device's dense matmul rate and a timer around the engine's sampling loop.

Everything works on a CPU too, where memory figures are None (torch tracks no peak there).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

GIB = 2**30


def synchronize(device: str) -> None:
    """Wait for the device to finish its queued work (a no-op on a CPU)."""
    if device == "cuda":
        torch.cuda.synchronize()


def weight_bytes(modules: Iterable[torch.nn.Module]) -> int:
    """Bytes of the parameters and buffers of `modules`, each tensor counted once."""
    seen: set[int] = set()
    total = 0
    for module in modules:
        for tensor in [*module.parameters(), *module.buffers()]:
            if tensor.data_ptr() in seen or tensor.device.type == "meta":
                continue
            seen.add(tensor.data_ptr())
            total += tensor.numel() * tensor.element_size()
    return total


@dataclass
class Measured:
    """One run: its wall time, and on CUDA the most memory it allocated above what was allocated
    before it started (its activations and outputs; weights loaded during the run count too)."""

    seconds: float
    peak_bytes: int | None


def measure(function: Callable[[], Any], device: str) -> Measured:
    """Run `function` once between device synchronisations, tracking its peak memory on CUDA."""
    synchronize(device)
    before = 0
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    started = time.perf_counter()
    function()
    synchronize(device)
    seconds = time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated() - before if device == "cuda" else None
    return Measured(seconds, peak)


def graph_pool_bytes(device: str) -> int | None:
    """Bytes the caching allocator holds in private pools: the memory of recorded CUDA graphs, which
    stays reserved between replays (a replay allocates nothing, so per-run peaks miss it)."""
    if device != "cuda":
        return None
    segments = torch.cuda.memory_snapshot()
    return sum(
        int(segment["total_size"])
        for segment in segments
        if tuple(segment.get("segment_pool_id", (0, 0))) != (0, 0)
    )


def process_peaks(device: str) -> tuple[int, int] | None:
    """The process's peak (allocated, reserved) bytes since the last reset, on CUDA."""
    if device != "cuda":
        return None
    return torch.cuda.max_memory_allocated(), torch.cuda.max_memory_reserved()


def reset_process_peaks(device: str) -> None:
    """Return cached blocks to the driver and start counting peaks afresh (on CUDA)."""
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def matmul_tflops(device: str, dtype: torch.dtype) -> float:
    """The device's measured dense matmul rate in TFLOP/s: 8192² on CUDA in `dtype`, 2048² float32 on a
    CPU (2·n³ floating-point operations per product)."""
    cuda = device == "cuda"
    size, warmups, iterations = (8192, 5, 20) if cuda else (2048, 1, 5)
    dtype = dtype if cuda else torch.float32
    left = torch.randn(size, size, device=device, dtype=dtype)
    right = torch.randn(size, size, device=device, dtype=dtype)
    for _ in range(warmups):
        torch.mm(left, right)
    synchronize(device)
    started = time.perf_counter()
    for _ in range(iterations):
        torch.mm(left, right)
    synchronize(device)
    seconds = time.perf_counter() - started
    return 2 * size**3 * iterations / seconds / 1e12


def unet_flops(config: Mapping[str, Any], batch: int, latent_size: tuple[int, int], tokens: int) -> int:
    """Floating-point operations of one UNet forward (torch's FlopCounterMode) for `batch` latents of
    `latent_size` and `tokens` text embeddings each, counted on a copy of the architecture on the
    meta device: shapes only, no weights, no device time."""
    from diffusers import UNet2DConditionModel
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(config)
        sample = torch.zeros(batch, config["in_channels"], *latent_size)
        embeddings = torch.zeros(batch, tokens, config["cross_attention_dim"])
        timestep = torch.tensor(500)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        unet(sample, timestep, encoder_hidden_states=embeddings, return_dict=False)
    return int(counter.get_total_flops())


class LoopClock:
    """Times the engine's sampling loop (`nodes.sampling.sample`, which the DepthSampler node calls by
    that module-level name): CUDA events around it on CUDA, so the loop's own device time is measured
    without adding a wait; the wall clock elsewhere."""

    def __init__(self, device: str) -> None:
        self.device = device
        self._pending: list[Callable[[], float]] = []

    def wrap(self, loop: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            if self.device == "cuda":
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                result = loop(*args, **kwargs)
                end.record()
                self._pending.append(lambda: start.elapsed_time(end) / 1000)
                return result
            started = time.perf_counter()
            result = loop(*args, **kwargs)
            seconds = time.perf_counter() - started
            self._pending.append(lambda: seconds)
            return result

        return timed

    def take(self) -> float:
        """Seconds of the loops run since the last call (after the device has finished them)."""
        synchronize(self.device)
        seconds = sum(reading() for reading in self._pending)
        self._pending.clear()
        return seconds


@contextmanager
def timing_sampling_loop(device: str) -> Iterator[LoopClock]:
    """Wrap the engine's sampling loop with a `LoopClock` for the duration of the block."""
    from depthgraph.nodes import sampling

    clock = LoopClock(device)
    original = sampling.sample
    sampling.sample = clock.wrap(original)
    try:
        yield clock
    finally:
        sampling.sample = original


def gib(size: int | None) -> str:
    """`size` bytes in GiB, or "-" when unknown."""
    return "-" if size is None else f"{size / GIB:.2f}"
