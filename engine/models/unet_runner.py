"""Calling the UNet from the sampling loop: eagerly, or by replaying a CUDA graph.

A sampling loop calls the UNet with the same shapes fifty times. On a GPU, launching its few
thousand kernels one by one from Python costs as much as running them at 512×512; a CUDA graph
records the launches once and replays them with one call. The graph reads its inputs from, and
writes its output to, fixed buffers: each call copies the inputs in and the output out.

A graph is recorded per input shape (a new seed or prompt reuses it; a new size or batch records
another; the last few are kept) and is thrown away when the weights move, since it holds their
addresses. What else a call passes the UNet (SDXL's size and pooled-text embeddings, a ControlNet's
residuals: `extra`, the UNet's own keyword arguments) is copied into fixed buffers the same way.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

KEPT_GRAPHS = 4
_WARMUP_CALLS = 2  # before recording: lets cuDNN/cuBLAS pick their kernels and compiled code settle


@dataclass
class _Recorded:
    graph: Any
    sample: Any
    timestep: Any
    embeddings: Any
    output: Any
    extra: Any = None


def _shapes(value: Any) -> Any:
    """The shapes and dtypes of every tensor in nested dicts, lists and tuples (a recording's key)."""
    if isinstance(value, Mapping):
        return tuple((key, _shapes(item)) for key, item in sorted(value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_shapes(item) for item in value)
    return (tuple(value.shape), value.dtype) if hasattr(value, "shape") else value


def _cloned(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _cloned(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_cloned(item) for item in value)
    return value.clone() if hasattr(value, "clone") else value


def _copy_into(target: Any, source: Any) -> None:
    if isinstance(target, Mapping):
        for key, item in target.items():
            _copy_into(item, source[key])
    elif isinstance(target, (list, tuple)):
        for item, new in zip(target, source, strict=True):
            _copy_into(item, new)
    elif hasattr(target, "copy_"):
        target.copy_(source)


class UNetRunner:
    """`runner(sample, timestep, embeddings, extra)` is `unet(..., **extra).sample`, through a CUDA graph
    when asked for and the inputs are on a CUDA device."""

    def __init__(self, unet: Any, cuda_graphs: bool = False) -> None:
        self.unet = unet
        self.cuda_graphs = cuda_graphs
        self._recorded: OrderedDict[tuple[Any, ...], _Recorded] = OrderedDict()
        self._weights_at: int | None = None
        self._pool: Any = None
        self.recordings = 0  # how many graphs were recorded (a warm server records none for a new seed)

    def __call__(
        self, sample: Any, timestep: Any, embeddings: Any, extra: Mapping[str, Any] | None = None
    ) -> Any:
        extra = dict(extra or {})
        if not (self.cuda_graphs and sample.is_cuda):
            return self._eager(sample, timestep, embeddings, extra)
        import torch

        timestep = torch.as_tensor(timestep, device=sample.device)
        self._forget_if_moved()
        key = (
            tuple(sample.shape),
            sample.dtype,
            tuple(embeddings.shape),
            embeddings.dtype,
            timestep.dtype,
            _shapes(extra),
        )
        recorded = self._recorded.get(key)
        if recorded is None:
            recorded = self._record(sample, timestep, embeddings, extra)
            self._recorded[key] = recorded
            while len(self._recorded) > KEPT_GRAPHS:
                self._recorded.popitem(last=False)
        else:
            self._recorded.move_to_end(key)
            recorded.sample.copy_(sample)
            recorded.timestep.copy_(timestep)
            recorded.embeddings.copy_(embeddings)
            _copy_into(recorded.extra, extra)
        recorded.graph.replay()
        return recorded.output.clone()  # the next replay overwrites the buffer; schedulers keep outputs

    def _eager(self, sample: Any, timestep: Any, embeddings: Any, extra: Mapping[str, Any]) -> Any:
        return self.unet(sample, timestep, encoder_hidden_states=embeddings, return_dict=False, **extra)[0]

    def _forget_if_moved(self) -> None:
        pointer = next(self.unet.parameters()).data_ptr()
        if pointer != self._weights_at:
            self._recorded.clear()
            self._weights_at = pointer

    def _record(self, sample: Any, timestep: Any, embeddings: Any, extra: Mapping[str, Any]) -> _Recorded:
        import torch

        static_sample = sample.clone()
        static_timestep = timestep.clone()
        static_embeddings = embeddings.clone()
        static_extra = _cloned(extra)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(_WARMUP_CALLS):
                self._eager(static_sample, static_timestep, static_embeddings, static_extra)
        torch.cuda.current_stream().wait_stream(side)
        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()  # one memory pool for every recorded shape
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self._pool):
            output = self._eager(static_sample, static_timestep, static_embeddings, static_extra)
        self.recordings += 1
        return _Recorded(graph, static_sample, static_timestep, static_embeddings, output, static_extra)
