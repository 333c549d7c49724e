"""What a CONDITIONING socket carries: text embeddings and what a model family or a later node adds.

CLIPTextEncode makes a `Conditioning`: the embeddings the UNet attends to ([B, 77, width]: 768 for
SD 1.x, 1024 for SD 2.x, 2048 for SDXL's two encoders side by side), and for SDXL the pooled, projected
embedding of its second encoder and the size conditioning (`SizeConditioning`: original size, crop,
target size; unset, the sampler takes the image's size and no crop, as diffusers does). `additions`
are what nodes applied to the conditioning that add to every UNet call while sampling
(`nodes.unet_additions`: a ControlNet's residuals); the sampler passes them on. The socket type stays
"CONDITIONING"; a plain tensor, or ComfyUI's `[[embeddings, {"pooled_output": ...}]]`, is read too
(`as_conditioning`).

`ConditioningInfo` is what validation knows of one before anything runs: the family whose text
encoder made it, so a sampler can refuse conditioning its model cannot read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from depthgraph.engine.models.families import Family
from depthgraph.nodes.heavy import torch

NO_POOLED = (
    "this conditioning has no pooled text embedding, which SDXL needs: encode the prompt with the SDXL "
    "model's CLIP (CheckpointLoader's CLIP output)"
)


@dataclass(frozen=True)
class SizeConditioning:
    """SDXL's micro-conditioning, as diffusers' `_get_add_time_ids` takes it, (height, width) pairs:
    the size the training image had, the top-left corner of its crop, the size to make. None: the
    size of the image being sampled."""

    original_size: tuple[int, int] | None = None
    crops_coords_top_left: tuple[int, int] = (0, 0)
    target_size: tuple[int, int] | None = None

    def time_ids(self, image_size: tuple[int, int]) -> list[int]:
        """The six numbers SDXL's UNet embeds: original (h, w), crop (top, left), target (h, w)."""
        original = self.original_size or image_size
        target = self.target_size or image_size
        return [*original, *self.crops_coords_top_left, *target]


@dataclass(frozen=True, eq=False)
class Conditioning:
    """Text embeddings for the sampler, and what SDXL and later nodes add (see the module docstring)."""

    embeddings: torch.Tensor
    pooled: torch.Tensor | None = None
    sizes: SizeConditioning | None = None
    additions: tuple[Any, ...] = ()  # each a `nodes.unet_additions.UNetAddition`

    def with_addition(self, addition: Any) -> Conditioning:
        """The same conditioning with one more addition to every UNet call (a ControlNet stacks so)."""
        return replace(self, additions=(*self.additions, addition))

    def require_pooled(self) -> torch.Tensor:
        if self.pooled is None:
            raise ValueError(NO_POOLED)
        return self.pooled

    def time_ids(self, image_size: tuple[int, int]) -> list[int]:
        return (self.sizes or SizeConditioning()).time_ids(image_size)


@dataclass(frozen=True)
class ConditioningInfo:
    """What validation knows of a CONDITIONING: the family whose text encoder made it."""

    family: Family


def as_conditioning(value: Any) -> Conditioning:
    """A CONDITIONING input as a `Conditioning`: itself, embeddings alone (a tensor [B, 77, width]), or
    ComfyUI's list of `[embeddings, {"pooled_output": ...}]` (its first entry)."""
    if isinstance(value, Conditioning):
        return value
    if isinstance(value, torch.Tensor):
        return Conditioning(value)
    if isinstance(value, Sequence) and value and isinstance(value[0], Sequence) and len(value[0]) == 2:
        embeddings, options = value[0]
        if isinstance(embeddings, torch.Tensor) and isinstance(options, dict):
            return Conditioning(embeddings, options.get("pooled_output"))
    raise TypeError(
        f"a CONDITIONING input got {type(value).__name__}; it takes a Conditioning "
        "(depthgraph.nodes.conditioning_value), a tensor of embeddings, or ComfyUI's [[embeddings, {...}]]"
    )
