"""Single-file checkpoints (`.ckpt` / `.safetensors`, as A1111 and ComfyUI users keep them).

A file holds its models under LDM names: the UNet (`model.diffusion_model.`), the VAE
(`first_stage_model.`), the text encoder(s) (`engine.models.ldm_text` lists each family's) and, in
SD2-depth's `512-depth-ema`, the MiDaS DPT-hybrid depth estimator (`depth_model.model.`). UNet, VAE
and text towers are converted with diffusers' own single-file helpers, given the family's configs
(which `ldm_config` finds offline; diffusers' `from_single_file` would fetch them from the hub, and
takes an SD2-depth file for SD 2.1 and cannot build its depth estimator). The MiDaS names are
converted to transformers' `DPTForDepthEstimation` by the renaming rules of transformers' DPT-hybrid
conversion script.

Files are read by `engine.models.checkpoint_read`: nothing in them is ever run.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .checkpoint_read import read_state_dict
from .common import DEPTH_UNET_CHANNELS, ModelError
from .ldm_text import OPEN_CLIP_PREFIX, TEXT_TOWERS, empty_text_encoder, text_weights, with_prefix

log = logging.getLogger("depthgraph.models")

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
TEXT_PREFIX = OPEN_CLIP_PREFIX  # SD 2.x's OpenCLIP text tower
DEPTH_PREFIX = "depth_model.model."
StateDict = dict[str, Any]


def check_depth_unet(state: Mapping[str, Any], path: Path) -> None:
    """Refuse a checkpoint read as SD2-depth whose UNet is not the depth one, saying what it is."""
    first = state.get(UNET_PREFIX + "input_blocks.0.0.weight")
    if first is None:
        missing = f"{UNET_PREFIX}input_blocks.0.0.weight"
        raise ModelError(f"{path} has no Stable Diffusion UNet ({missing} is missing)")
    channels = int(first.shape[1])
    if channels != DEPTH_UNET_CHANNELS:
        raise ModelError(
            f"{path} is not a depth model: its UNet takes {channels} channels, the depth model takes "
            f"{DEPTH_UNET_CHANNELS} (4 latent + 1 depth). Use 512-depth-ema."
        )


def has_midas(state: Mapping[str, Any]) -> bool:
    return any(key.startswith(DEPTH_PREFIX) for key in state)


def check_depth_checkpoint(state: Mapping[str, Any], path: Path) -> None:
    """Refuse a checkpoint that is not a complete SD2-depth file, saying what it is instead."""
    check_depth_unet(state, path)
    if not has_midas(state):
        raise ModelError(
            f"{path} has a depth UNet but no MiDaS depth weights ({DEPTH_PREFIX}...): the file was pruned "
            "of its depth model. Use the complete 512-depth-ema file, which carries them."
        )


# --- MiDaS DPT-hybrid -> transformers DPT --------------------------------------------------------
# Each rule: (substring that must be present, substrings that must be absent, old, new); applied in
# order to every key, replacing every occurrence (the order matters: later rules see earlier output).
_MIDAS_RULES: list[tuple[str, tuple[str, ...], str, str]] = [
    ("pretrained.model", ("cls_token", "pos_embed", "patch_embed"), "pretrained.model", "dpt.encoder"),
    ("pretrained.model", (), "pretrained.model", "dpt.embeddings"),
    ("patch_embed", (), "patch_embed", ""),
    ("pos_embed", (), "pos_embed", "position_embeddings"),
    ("attn.proj", (), "attn.proj", "attention.output.dense"),
    ("proj", ("project",), "proj", "projection"),
    ("blocks", (), "blocks", "layer"),
    ("mlp.fc1", (), "mlp.fc1", "intermediate.dense"),
    ("mlp.fc2", (), "mlp.fc2", "output.dense"),
    ("norm1", ("backbone",), "norm1", "layernorm_before"),
    ("norm2", ("backbone",), "norm2", "layernorm_after"),
    ("scratch.output_conv", (), "scratch.output_conv", "head"),
    ("scratch", (), "scratch", "neck"),
    *[(f"layer{n}_rn", (), f"layer{n}_rn", f"convs.{n - 1}") for n in range(1, 5)],
    ("refinenet", (), "", ""),  # handled specially: refinenet k -> fusion_stage.layers.(4 - k)
    ("out_conv", (), "out_conv", "projection"),
    ("resConfUnit1", (), "resConfUnit1", "residual_layer1"),
    ("resConfUnit2", (), "resConfUnit2", "residual_layer2"),
    ("conv1", (), "conv1", "convolution1"),
    ("conv2", (), "conv2", "convolution2"),
    *[
        (old, (), old, f"neck.reassemble_stage.readout_projects.{n - 1}.0")
        for n in range(1, 5)
        for old in [f"pretrained.act_postprocess{n}.0.project.0"]
    ],
    *[
        (f"pretrained.act_postprocess{n}.{index}", (), f"pretrained.act_postprocess{n}.{index}", new)
        for n, index, new in [
            (1, 3, "neck.reassemble_stage.layers.0.projection"),
            (1, 4, "neck.reassemble_stage.layers.0.resize"),
            (2, 3, "neck.reassemble_stage.layers.1.projection"),
            (2, 4, "neck.reassemble_stage.layers.1.resize"),
            (3, 3, "neck.reassemble_stage.layers.2.projection"),
            (4, 3, "neck.reassemble_stage.layers.3.projection"),
            (4, 4, "neck.reassemble_stage.layers.3.resize"),
        ]
    ],
    ("pretrained", (), "pretrained", "dpt"),
    ("bn", (), "bn", "batch_norm"),
    ("head", (), "head", "head.head"),
    ("encoder.norm", (), "encoder.norm", "layernorm"),
    ("auxlayer", (), "auxlayer", "auxiliary_head.head"),
    ("backbone", (), "backbone", "backbone.bit.encoder"),
    ("..", (), "..", "."),
    ("stem.conv", (), "stem.conv", "bit.embedder.convolution"),
    ("blocks", (), "blocks", "layers"),
]
_BACKBONE_RULES = [
    ("convolution", "conv"),
    ("layer", "layers"),
]
_FINAL_RULES = [
    ("backbone.bit.encoder.bit", "backbone.bit"),
    ("embedder.conv", "embedder.convolution"),
    ("backbone.bit.encoder.stem.norm", "backbone.bit.embedder.norm"),
]
_IGNORED_MIDAS = ("pretrained.model.head.weight", "pretrained.model.head.bias")


def midas_key_to_dpt(name: str) -> str:
    """One MiDaS DPT-hybrid parameter name as transformers' DPTForDepthEstimation names it."""
    for needed, forbidden, old, new in _MIDAS_RULES:
        if needed not in name or any(word in name for word in forbidden):
            continue
        if needed == "refinenet":
            index = int(re.search(r"neck\.refinenet(\d)", name).group(1))  # type: ignore[union-attr]
            name = name.replace(f"refinenet{index}", f"fusion_stage.layers.{abs(index - 4)}")
        else:
            name = name.replace(old, new)
    for old, new in _BACKBONE_RULES:
        if old in name and "backbone" in name:
            name = name.replace(old, new)
    for old, new in _FINAL_RULES:
        if old in name:
            name = name.replace(old, new)
    return name


def convert_midas(state: Mapping[str, Any], hidden_size: int, layers: int) -> StateDict:
    """MiDaS weights (keys without the `depth_model.model.` prefix) as DPTForDepthEstimation's."""
    converted = {midas_key_to_dpt(key): value for key, value in state.items() if key not in _IGNORED_MIDAS}
    for index in range(layers):  # timm keeps query, key and value in one matrix
        stem = f"dpt.encoder.layer.{index}"
        weight = converted.pop(f"{stem}.attn.qkv.weight")
        bias = converted.pop(f"{stem}.attn.qkv.bias")
        for part, name in enumerate(("query", "key", "value")):
            rows = slice(part * hidden_size, (part + 1) * hidden_size)
            converted[f"{stem}.attention.attention.{name}.weight"] = weight[rows]
            converted[f"{stem}.attention.attention.{name}.bias"] = bias[rows]
    return converted


# --- building the components ---------------------------------------------------------------------
@dataclass(frozen=True)
class ModelConfigs:
    """The architecture a single file is read into: each part's diffusers/transformers config (SDXL's
    second text encoder and SD2-depth's depth estimator where the family has them)."""

    unet: Mapping[str, Any]
    vae: Mapping[str, Any]
    text_encoder: Mapping[str, Any]
    depth_estimator: Mapping[str, Any] | None = None
    text_encoder_2: Mapping[str, Any] | None = None


DepthModelConfigs = ModelConfigs  # its name while SD2-depth was the only family read


def _load_into(module: Any, weights: Mapping[str, Any], what: str, path: Path) -> Any:
    missing, unexpected = module.load_state_dict(dict(weights), strict=False)
    if missing or unexpected:
        sample = ", ".join([*missing[:3], *unexpected[:3]])
        raise ModelError(
            f"{path}: its {what} does not fit the model's architecture "
            f"({len(missing)} missing, {len(unexpected)} unexpected weights, e.g. {sample})"
        )
    return module


# --- the LDM UNet's EMA copy ---------------------------------------------------------------------
# LDM's `LatentDiffusion(use_ema=True)` (training checkpoints, fine-tunes made with Stability's code)
# keeps beside `model.diffusion_model.*` an exponential moving average of the UNet in `LitEma`
# (ldm/modules/ema.py): one buffer per trainable parameter, named `model_ema.` + the parameter's
# name inside the wrapper (`diffusion_model.…`) with every "." removed, since buffer names may have
# none; plus `model_ema.decay` and `model_ema.num_updates`. The EMA is the copy made for inference
# (the released 512-depth-ema has it merged already and carries no `model_ema.*`).
EMA_PREFIX = "model_ema."


def ema_name(unet_name: str) -> str:
    """LitEma's buffer for a UNet parameter: `model.diffusion_model.input_blocks.0.0.weight` ->
    `model_ema.diffusion_modelinput_blocks00weight` (diffusers' `extract_ema` uses the same rule)."""
    return EMA_PREFIX + unet_name.removeprefix("model.").replace(".", "")


def ema_copies(state: Mapping[str, Any]) -> dict[str, str]:
    """Each UNet tensor of the file that has an EMA copy there: its name -> the copy's name."""
    names = {key: ema_name(key) for key in state if key.startswith(UNET_PREFIX)}
    return {key: copy for key, copy in names.items() if copy in state}


def unet_tensors(state: Mapping[str, Any]) -> StateDict:
    """The UNet under its `model.diffusion_model.` names, each tensor's EMA copy where the file has one.
    A parameter without a copy was frozen in training (LitEma skips those), so both values are one."""
    copies = ema_copies(state)
    return {key: state[copies.get(key, key)] for key in state if key.startswith(UNET_PREFIX)}


def component_weights(
    state: Mapping[str, Any], component: str, configs: ModelConfigs, family: str = "sd2-depth"
) -> StateDict:
    """The weights a single-file state dict of `family` gives one component, under its
    diffusers/transformers names (what `convert_component` loads; tensors it does not use are left out)."""
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint
    from transformers import DPTConfig

    if component == "unet":
        # Only the UNet's tensors, EMA already chosen: given `model_ema.*` too, diffusers would warn
        # about its own `--extract_ema` flag, and put None where a frozen parameter has no copy.
        return dict(convert_ldm_unet_checkpoint(unet_tensors(state), dict(configs.unet)))
    if component == "vae":
        return dict(convert_ldm_vae_checkpoint(state, dict(configs.vae)))
    if component in TEXT_TOWERS[family]:
        text = configs.text_encoder if component == "text_encoder" else configs.text_encoder_2
        assert text is not None, f"no {component} config for {family}"
        return text_weights(state, family, component, text)
    if component == "depth_estimator" and configs.depth_estimator is not None:
        config = DPTConfig(**configs.depth_estimator)
        midas = with_prefix(state, DEPTH_PREFIX)
        return convert_midas(midas, int(config.hidden_size), int(config.num_hidden_layers or 0))
    raise ModelError(f"{component} has no weights in a single-file checkpoint")


def empty_component(component: str, configs: ModelConfigs) -> Any:
    """One component at the configured architecture, with freshly initialised weights."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import DPTConfig, DPTForDepthEstimation

    if component == "unet":
        return UNet2DConditionModel.from_config(dict(configs.unet))
    if component == "vae":
        return AutoencoderKL.from_config(dict(configs.vae))
    if component == "text_encoder":
        return empty_text_encoder(component, configs.text_encoder)
    if component == "text_encoder_2" and configs.text_encoder_2 is not None:
        return empty_text_encoder(component, configs.text_encoder_2)
    if component == "depth_estimator" and configs.depth_estimator is not None:
        return DPTForDepthEstimation(DPTConfig(**configs.depth_estimator))
    raise ModelError(f"{component} has no weights in a single-file checkpoint")


def convert_component(
    state: Mapping[str, Any], component: str, configs: ModelConfigs, path: Path, family: str = "sd2-depth"
) -> Any:
    """Build one weighted component from a single-file state dict of `family`."""
    weights = component_weights(state, component, configs, family)
    if component == "unet" and (copies := ema_copies(state)):
        log.info(
            "%s: the UNet's EMA weights are used (%d tensors under %s*), not its training weights",
            path,
            len(copies),
            EMA_PREFIX,
        )
    return _load_into(empty_component(component, configs), weights, component, path).eval()


WEIGHTED_PARTS = ("unet", "vae", "text_encoder", "depth_estimator")


def weighted_parts(state: Mapping[str, Any], family: str) -> tuple[str, ...]:
    """The weighted components a single file of `family` gives: UNet, VAE, its text encoder(s), and
    the MiDaS depth estimator when an SD2-depth file carries it."""
    parts = ("unet", "vae", *TEXT_TOWERS[family])
    return (*parts, "depth_estimator") if family == "sd2-depth" and has_midas(state) else parts


def load_single_file(path: Path, configs: ModelConfigs, family: str = "sd2-depth") -> dict[str, Any]:
    """The weighted components of a single-file checkpoint of `family` (read once, converted
    together). An SD2-depth file pruned of its MiDaS weights gives no depth estimator: its depth
    maps come from a depth estimator loaded on its own."""
    state = read_state_dict(path)
    if family == "sd2-depth":
        check_depth_unet(state, path)
    parts = weighted_parts(state, family)
    return {component: convert_component(state, component, configs, path, family) for component in parts}
