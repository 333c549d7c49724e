"""How the UNet and the VAE are made fast on a device: fused attention projections, channels-last
memory, `torch.compile`, CUDA graphs for the sampling loop, tiled VAE and a low-memory mode.

Every switch is "auto", "on" or "off"; "auto" turns the speed-ups on for CUDA and off elsewhere
(on a CPU they cost compile time and gain little). The low-memory mode keeps only the component in
use on the GPU and tiles the VAE, and turns compiling and CUDA graphs off: both tie compiled code to
weights that would move between devices. Attention is always PyTorch's scaled-dot-product attention
(flash or memory-efficient kernels where the GPU has them), diffusers' default on torch 2.

Compiled code is specialised to input shapes (`dynamic=False`): a new seed, prompt or strength reuses
it; a new image size compiles once more. Inductor's artefacts are kept in a folder (`cache_dir`)
so a later process compiles the same shapes from its cache.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

# A cache folder the user chose for Inductor, read before torch runs: torch writes its default into
# the environment the first time it looks, so later the two cannot be told apart.
_USER_COMPILE_CACHE = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
SWITCH = ("auto", "on", "off")
COMPILE_MODES = ("default", "max-autotune-no-cudagraphs", "reduce-overhead", "max-autotune")
# Inductor modes that capture CUDA graphs themselves: our own capture would nest inside theirs.
_MODES_WITH_GRAPHS = frozenset({"reduce-overhead", "max-autotune"})
# The VAE works in tiles of this many pixels a side on images larger than one tile: in auto mode
# SD2's VAE's own sample size (what diffusers uses); with tiling on, or in low-memory mode, smaller.
TILE_PIXELS = 768
SMALL_TILE_PIXELS = 512
_TILE_OVERLAP = 0.25


class AccelerationError(ValueError):
    """A speed or memory setting that cannot be used; the message names it."""


@dataclass(frozen=True)
class Acceleration:
    """The speed and memory settings, as the user wrote them (see the module docstring)."""

    compile: str = "auto"
    compile_mode: str = "default"
    # A torch.compile backend: "inductor" for speed; tests use "eager" or a counting function.
    compile_backend: str | Callable[..., Any] = "inductor"
    cuda_graphs: str = "auto"
    channels_last: str = "auto"
    fuse_qkv: str = "auto"
    vae_tiling: str = "auto"
    low_memory: bool = False
    # Bytes of device memory that resident weights and cached results may hold together (None: no limit).
    vram_budget: int | None = None
    cache_dir: Path | None = None

    def __post_init__(self) -> None:
        for name in ("compile", "cuda_graphs", "channels_last", "fuse_qkv", "vae_tiling"):
            value = getattr(self, name)
            if value not in SWITCH:
                choices = ", ".join(SWITCH)
                raise AccelerationError(f"acceleration.{name} is {value!r}; choose one of {choices}")
        if self.compile_mode not in COMPILE_MODES:
            choices = ", ".join(COMPILE_MODES)
            mode = self.compile_mode
            raise AccelerationError(f"acceleration.compile_mode is {mode!r}; choose one of {choices}")
        if self.vram_budget is not None and self.vram_budget < 0:
            raise AccelerationError("acceleration.vram_budget must be a size of 0 or more")

    def resolve(self, device: str) -> Plan:
        """What actually happens on `device`."""
        cuda = device == "cuda"

        def switch(value: str, auto: bool) -> bool:
            return auto if value == "auto" else value == "on"

        compiled = switch(self.compile, cuda) and not self.low_memory
        graphs = switch(self.cuda_graphs, cuda) and cuda and not self.low_memory
        if compiled and self.compile_mode in _MODES_WITH_GRAPHS:
            graphs = False
        small_tiles = self.low_memory or self.vae_tiling == "on"
        return Plan(
            compile=compiled,
            compile_mode=self.compile_mode,
            compile_backend=self.compile_backend,
            cuda_graphs=graphs,
            channels_last=switch(self.channels_last, cuda),
            fuse_qkv=switch(self.fuse_qkv, cuda),
            vae_tiling=self.vae_tiling != "off",
            tile_pixels=SMALL_TILE_PIXELS if small_tiles else TILE_PIXELS,
            offload=self.low_memory,
            vram_budget=self.vram_budget,
            cache_dir=self.cache_dir,
        )


@dataclass(frozen=True)
class Plan:
    """The settings resolved for one device: plain booleans and numbers."""

    compile: bool = False
    compile_mode: str = "default"
    compile_backend: str | Callable[..., Any] = "inductor"
    cuda_graphs: bool = False
    channels_last: bool = False
    fuse_qkv: bool = False
    vae_tiling: bool = True  # images larger than one tile are encoded and decoded tile by tile
    tile_pixels: int = TILE_PIXELS
    offload: bool = False  # low-memory mode: only the component in use stays on the device
    vram_budget: int | None = None
    cache_dir: Path | None = None

    def describe(self) -> str:
        parts = [
            f"compile {'on (' + self.compile_mode + ')' if self.compile else 'off'}",
            f"CUDA graphs {'on' if self.cuda_graphs else 'off'}",
            f"channels_last {'on' if self.channels_last else 'off'}",
            f"fused QKV {'on' if self.fuse_qkv else 'off'}",
            f"VAE tiles {f'of {self.tile_pixels} px' if self.vae_tiling else 'off'}",
        ]
        if self.offload:
            parts.append("low memory (components offloaded when not in use)")
        elif self.vram_budget is not None:
            parts.append(f"VRAM budget {self.vram_budget / 2**30:.1f} GiB")
        return ", ".join(parts)


def acceleration_from_mapping(data: Mapping[str, Any], base: Acceleration | None = None) -> Acceleration:
    """Settings from a config file's `acceleration:` mapping; sizes as bytes already parsed."""
    known = {item.name for item in fields(Acceleration)} - {"compile_backend", "cache_dir"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise AccelerationError(
            f"unknown acceleration setting {unknown[0]!r}; known settings: {', '.join(sorted(known))}"
        )
    changes = dict(data)
    if "low_memory" in changes and not isinstance(changes["low_memory"], bool):
        raise AccelerationError("acceleration.low_memory must be true or false")
    for name, value in changes.items():
        if isinstance(value, bool) and name != "low_memory":
            changes[name] = "on" if value else "off"  # YAML reads `on`/`off` as booleans
    return replace(base or Acceleration(), **changes)


def use_compile_cache(folder: Path | None) -> None:
    """Point Inductor's on-disk cache at `folder` (unless the user already set one), so compiled
    kernels and graphs are reused by later processes."""
    if folder is None or _USER_COMPILE_CACHE is not None:
        return
    folder.mkdir(parents=True, exist_ok=True)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(folder.resolve())


def _compile(module: Any, plan: Plan) -> None:
    """Compile `module` in place (its class, attributes and weights stay as they are)."""
    import torch

    if plan.compile_backend == "inductor":
        use_compile_cache(plan.cache_dir)
    # A server sees a handful of image sizes; each is one specialised graph.
    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 32)
    options: dict[str, Any] = {"backend": plan.compile_backend, "fullgraph": True, "dynamic": False}
    if plan.compile_backend == "inductor":
        options["mode"] = plan.compile_mode
    module.compile(**options)


def fuse_projections(model: Any) -> None:
    """Fuse each attention's query/key/value projections into one matrix product, and drop the
    separate projections the fused attention no longer reads (diffusers keeps them, which would
    hold those weights twice): self-attention reads only the fused one, cross-attention the
    query and the fused key/value."""
    from diffusers.models.attention_processor import Attention

    model.fuse_qkv_projections()
    for module in model.modules():
        if isinstance(module, Attention) and getattr(module, "fused_projections", False):
            unused = ("to_k", "to_v") if module.is_cross_attention else ("to_q", "to_k", "to_v")
            for name in unused:
                setattr(module, name, None)


def _prepare(model: Any, plan: Plan, compiled_part: Any) -> Any:
    import torch

    if plan.fuse_qkv:
        fuse_projections(model)
    if plan.channels_last:
        model.to(memory_format=torch.channels_last)
    if plan.compile:
        _compile(compiled_part, plan)
    return model


def prepare_unet(unet: Any, plan: Plan) -> Any:
    """The UNet made fast as the plan says: fused QKV, channels-last, compiled."""
    return _prepare(unet, plan, unet)


def prepare_vae(vae: Any, plan: Plan) -> Any:
    """The VAE made fast as the plan says; only its decoder is compiled (encoding runs once per image)."""
    return _prepare(vae, plan, vae.decoder)


def tiling_for(vae: Any, plan: Plan, pixels: tuple[int, int]) -> bool:
    """Set the VAE up to tile (or not) for images of `pixels` (height, width); True when it tiles."""
    if not plan.vae_tiling or max(pixels) <= plan.tile_pixels:
        vae.disable_tiling()
        return False
    scale = 2 ** (len(vae.config.block_out_channels) - 1)
    vae.enable_tiling()
    vae.tile_sample_min_size = plan.tile_pixels
    vae.tile_latent_min_size = plan.tile_pixels // scale
    vae.tile_overlap_factor = _TILE_OVERLAP
    return True
