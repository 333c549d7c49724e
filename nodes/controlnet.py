"""ControlNet: loading one, turning a depth map into its control image, and applying it to a
conditioning, as ComfyUI's ControlNetLoader and ControlNetApplyAdvanced do.

Apply ControlNet adds a `ControlNetAddition` to both conditionings (`nodes.unet_additions`): at every
step of the run between `start_percent` and `end_percent` the sampler runs the ControlNet on what the
UNet is about to get, with the control image, and the UNet adds its residuals scaled by `strength`,
as diffusers' ControlNet pipelines do (a step k of n is inside when k/n ≥ start and (k+1)/n ≤ end).
Several Apply ControlNet nodes in a row stack: every ControlNet's residuals are summed. A ControlNet
shared by both halves of the guided batch runs once on both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from depthgraph.engine.core.context import NodeContext
from depthgraph.engine.core.files import FileStore
from depthgraph.engine.core.registry import Combo, Float, Output, Socket, node
from depthgraph.engine.core.sockets import CONDITIONING, CONTROL_NET, DEPTH, IMAGE
from depthgraph.engine.models.common import ModelError
from depthgraph.engine.models.controlnets import (
    ControlNetHandle,
    ControlNetInfo,
    ControlNetSource,
    controlnet_names,
    controlnet_not_found_message,
    find_controlnet,
    find_controlnets,
)
from depthgraph.engine.models.manager import ModelManager
from depthgraph.nodes.conditioning_value import Conditioning, as_conditioning
from depthgraph.nodes.depth_ops import normalize_percentile
from depthgraph.nodes.heavy import torch
from depthgraph.nodes.pairing import controlnet_apply_check
from depthgraph.nodes.spatial import resize_planes, stretch_depth
from depthgraph.nodes.unet_additions import UNetCall

DEFAULT_CONTROLNET = "tiny-controlnet-sd15"
LATENT_SCALE = 8  # a ControlNet's control-image embedding shrinks 8×, to the latents' size


def _choices(files: FileStore) -> list[str]:
    return controlnet_names(files.models_dir)


def _where_controlnets_are(files: FileStore, name: str) -> str:
    return controlnet_not_found_message(name, files.models_dir)


def _source(files: FileStore, name: Any) -> ControlNetSource | None:
    return next((source for source in find_controlnets(files.models_dir) if source.name == name), None)


def _fingerprint(inputs: Mapping[str, Any], files: FileStore) -> str:
    source = _source(files, inputs["control_net_name"])
    return "missing" if source is None else source.fingerprint()


def describe_controlnet(known: Mapping[str, Any], files: FileStore) -> ControlNetInfo | None:
    """At validation: the family the ControlNet typed in is for (None when it cannot be told)."""
    source = _source(files, known.get("control_net_name"))
    try:
        return None if source is None else source.info()
    except ModelError:
        return None


def _check_controlnet(known: Mapping[str, Any], files: FileStore) -> dict[str, str]:
    """A file in models/controlnet/ that is no ControlNet is refused now, saying what it is."""
    source = _source(files, known.get("control_net_name"))
    try:
        if source is not None:
            source.info()
    except ModelError as error:
        return {"control_net_name": str(error)}
    return {}


@node(
    "ControlNetLoader",
    display_name="Load ControlNet",
    category="loaders",
    description=(
        "Picks a ControlNet for Stable Diffusion 1.x, 2.x or XL from models/controlnet/ (diffusers folders "
        "or single files; tiny ones built in), e.g. a depth ControlNet to steer image-to-image by depth."
    ),
    outputs=[Output(CONTROL_NET, describe=describe_controlnet)],
    fingerprint=_fingerprint,
    inputs_check=_check_controlnet,
)
def controlnet_loader(
    control_net_name: str = Combo(
        _choices,
        default=DEFAULT_CONTROLNET,
        tooltip=(
            "a diffusers folder or .safetensors/.pth file in models/controlnet/ (e.g. "
            "control_v11f1p_sd15_depth, controlnet-depth-sdxl-1.0); the tiny-* ones are random"
        ),
        missing_hint=_where_controlnets_are,
    ),
    *,
    context: NodeContext,
) -> tuple[ControlNetHandle]:
    """The ControlNet's handle; it is loaded (once, then kept) when a sampler first runs it."""
    if not isinstance(context.models, ModelManager):
        raise ModelError("this run has no model manager, so no ControlNet can be loaded")
    source = find_controlnet(control_net_name, context.files.models_dir)
    source.info()  # a file that is no ControlNet is refused here, saying what it is
    return (ControlNetHandle(context.models, source),)


@dataclass(frozen=True, eq=False)
class ControlNetAddition:
    """One applied ControlNet: what it adds to every UNet call inside its share of the schedule."""

    control_net: ControlNetHandle
    image: torch.Tensor  # the control image, [B, 3, H, W] in 0..1
    strength: float
    start: float
    end: float
    _hints: dict[tuple[Any, ...], torch.Tensor] = field(default_factory=dict, repr=False)

    def applies_at(self, step: int, steps: int) -> bool:
        """diffusers' rule (`controlnet_keep`): step k of n is inside when k/n ≥ start and (k+1)/n ≤ end."""
        return not (step / steps < self.start or (step + 1) / steps > self.end)

    def _hint(self, sample: torch.Tensor) -> torch.Tensor:
        """The control image at the latents' size × 8, on their device and dtype, repeated over their
        batch (one image for all, or one per image, repeated for each guidance half): made once per run."""
        height, width = sample.shape[-2] * LATENT_SCALE, sample.shape[-1] * LATENT_SCALE
        batch, images = sample.shape[0], self.image.shape[0]
        key = (height, width, batch, sample.device, sample.dtype)
        if key not in self._hints:
            if batch % images:
                raise ValueError(
                    f"the control image has a batch of {images} but the latents have {batch}; give one "
                    "control image for all images, or one per image"
                )
            image = resize_planes(self.image.to(sample.device), height, width).clamp(0.0, 1.0)
            self._hints.clear()
            self._hints[key] = image.repeat(batch // images, 1, 1, 1).to(sample.dtype)
        return self._hints[key]

    def unet_inputs(self, call: UNetCall) -> Mapping[str, Any] | None:
        if self.strength == 0.0 or not self.applies_at(call.step, call.steps):
            return None
        model = self.control_net.get()
        width = model.config.cross_attention_dim
        if call.embeddings.shape[-1] != width:
            raise ValueError(
                f"the ControlNet {self.control_net.source.name!r} reads {width}-wide text embeddings but the "
                f"prompt's are {call.embeddings.shape[-1]} wide: it is for another model family; load a "
                "ControlNet made for this model"
            )
        hint = self._hint(call.sample)
        down, middle = model(
            call.sample.to(model.dtype),
            call.timestep,
            encoder_hidden_states=call.embeddings.to(model.dtype),
            controlnet_cond=hint.to(model.dtype),
            conditioning_scale=self.strength,
            added_cond_kwargs=dict(call.added) if call.added else None,
            return_dict=False,
        )
        dtype = call.sample.dtype
        return {
            "down_block_additional_residuals": [residual.to(dtype) for residual in down],
            "mid_block_additional_residual": middle.to(dtype),
        }


def _same_as(name: str) -> Any:
    def describe(known: Mapping[str, Any], files: FileStore) -> Any:
        return known.get(name)

    return describe


PERCENT = {"min": 0.0, "max": 1.0, "step": 0.001}


@node(
    "ControlNetApply",
    display_name="Apply ControlNet",
    category="conditioning",
    description=(
        "Applies a ControlNet with its control image (for a depth ControlNet: Depth to Control Image) to "
        "both prompts; chain several to stack them."
    ),
    outputs=[
        Output(CONDITIONING, "positive", describe=_same_as("positive")),
        Output(CONDITIONING, "negative", describe=_same_as("negative")),
    ],
    inputs_check=controlnet_apply_check,
)
def controlnet_apply(
    positive: Conditioning = Socket(CONDITIONING),
    negative: Conditioning = Socket(CONDITIONING),
    control_net: ControlNetHandle = Socket(CONTROL_NET),
    image: torch.Tensor = Socket(IMAGE, tooltip="the control image; resized to the image being sampled"),
    strength: float = Float(
        1.0, min=0.0, max=10.0, step=0.01, tooltip="how strongly it steers; 0 turns it off"
    ),
    start_percent: float = Float(0.0, **PERCENT, tooltip="from how far through the steps it applies"),
    end_percent: float = Float(1.0, **PERCENT, tooltip="until how far through the steps it applies"),
) -> tuple[Conditioning, Conditioning]:
    """Both conditionings with the ControlNet added (unchanged at strength 0, as in ComfyUI)."""
    if start_percent > end_percent:
        raise ValueError(
            f"start_percent ({start_percent:g}) is after end_percent ({end_percent:g}): the ControlNet "
            "would never apply; lower start_percent or raise end_percent"
        )
    positive, negative = as_conditioning(positive), as_conditioning(negative)
    if strength == 0.0:
        return positive, negative
    planes = image.float().permute(0, 3, 1, 2).contiguous()
    addition = ControlNetAddition(control_net, planes, strength, start_percent, end_percent)
    return positive.with_addition(addition), negative.with_addition(addition)


@node(
    "DepthToControlImage",
    display_name="Depth to Control Image",
    category="depth",
    description=(
        "Turns a depth map into the control image depth ControlNets were trained on: near white, far "
        "black, stretched over its range, three channels."
    ),
    outputs=[Output(IMAGE)],
)
def depth_to_control_image(
    depth: torch.Tensor = Socket(DEPTH),
    low_percentile: float = Float(
        0.0, min=0.0, max=100.0, step=0.5, tooltip="this share of the farthest values becomes black"
    ),
    high_percentile: float = Float(
        100.0, min=0.0, max=100.0, step=0.5, tooltip="values past this percentile (the nearest) become white"
    ),
    image: torch.Tensor | None = Socket(IMAGE, optional=True, tooltip="the control image takes its size"),
) -> tuple[torch.Tensor]:
    """[B, H, W, 3] in 0..1. As the depth ControlNets' own preprocessors make it (MiDaS: each map's
    nearest value white, its farthest black; diffusers' SDXL depth ControlNet example likewise, after
    a bicubic resize to the image). Percentiles other than 0 and 100 clip outliers first. With an
    image, the map is stretched to its size (bicubic)."""
    if image is not None:
        depth = stretch_depth(depth, int(image.shape[1]), int(image.shape[2]))
    stretched = normalize_percentile(depth.float(), low_percentile, high_percentile).clamp(0.0, 1.0)
    return (stretched[:, 0, :, :, None].expand(-1, -1, -1, 3).contiguous(),)
