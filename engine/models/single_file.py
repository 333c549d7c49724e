"""Single-file SD2-depth checkpoints (`512-depth-ema.ckpt` / `.safetensors`, as A1111 users have them).

The file holds four models under LDM names: the UNet (`model.diffusion_model.`), the VAE
(`first_stage_model.`), the OpenCLIP text tower (`cond_stage_model.model.`) and the MiDaS DPT-hybrid
depth estimator (`depth_model.model.`). UNet, VAE and text tower are converted with diffusers' own
single-file helpers, given the depth model's configs (diffusers' `from_single_file` would take the
file for SD 2.1 and cannot build the depth estimator). The MiDaS names are converted to transformers'
`DPTForDepthEstimation` by the renaming rules of transformers' DPT-hybrid conversion script.

Files are read with safetensors, or `torch.load(weights_only=True)`: nothing is ever unpickled.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.models.manager import DEPTH_UNET_CHANNELS, ModelError

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
TEXT_PREFIX = "cond_stage_model.model."
DEPTH_PREFIX = "depth_model.model."
StateDict = dict[str, Any]


def read_state_dict(path: Path) -> StateDict:
    """All tensors of a checkpoint, with a clear error for a truncated, corrupt or unsafe file."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return dict(load_file(str(path)))
        import torch

        loaded = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except FileNotFoundError:
        raise ModelError(f"checkpoint {path} does not exist") from None
    except Exception as error:
        raise ModelError(
            f"cannot read checkpoint {path}: {type(error).__name__}: {error}. Expected a complete "
            "512-depth-ema .ckpt or .safetensors file; it may be truncated or corrupt (download it again)."
        ) from None
    if isinstance(loaded, Mapping) and isinstance(loaded.get("state_dict"), Mapping):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, Mapping):
        raise ModelError(f"checkpoint {path} holds a {type(loaded).__name__}, not a dictionary of tensors")
    return dict(loaded)


def check_depth_checkpoint(state: Mapping[str, Any], path: Path) -> None:
    """Refuse a checkpoint that is not SD2-depth, saying what it is instead."""
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
    if not any(key.startswith(DEPTH_PREFIX) for key in state):
        raise ModelError(f"{path} has a depth UNet but no MiDaS depth weights ({DEPTH_PREFIX}...)")


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
class DepthModelConfigs:
    """The architecture a single file is read into (the real SD2-depth one by default)."""

    unet: Mapping[str, Any]
    vae: Mapping[str, Any]
    text_encoder: Mapping[str, Any]
    depth_estimator: Mapping[str, Any]


def _with_prefix(state: Mapping[str, Any], prefix: str) -> StateDict:
    return {key[len(prefix) :]: value for key, value in state.items() if key.startswith(prefix)}


def _load_into(module: Any, weights: Mapping[str, Any], what: str, path: Path) -> Any:
    missing, unexpected = module.load_state_dict(dict(weights), strict=False)
    if missing or unexpected:
        sample = ", ".join([*missing[:3], *unexpected[:3]])
        raise ModelError(
            f"{path}: its {what} does not fit the depth model's architecture "
            f"({len(missing)} missing, {len(unexpected)} unexpected weights, e.g. {sample})"
        )
    return module


def convert_component(
    state: Mapping[str, Any], component: str, configs: DepthModelConfigs, path: Path
) -> Any:
    """Build one weighted component from a single-file state dict."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.loaders.single_file_utils import (
        convert_ldm_unet_checkpoint,
        convert_ldm_vae_checkpoint,
        convert_open_clip_checkpoint,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, DPTConfig, DPTForDepthEstimation

    if component == "unet":
        module = UNet2DConditionModel.from_config(dict(configs.unet))
        weights = convert_ldm_unet_checkpoint(state, dict(configs.unet))
    elif component == "vae":
        module = AutoencoderKL.from_config(dict(configs.vae))
        weights = convert_ldm_vae_checkpoint(state, dict(configs.vae))
    elif component == "text_encoder":
        module = CLIPTextModel(CLIPTextConfig(**configs.text_encoder))
        weights = convert_open_clip_checkpoint(module, state, prefix=TEXT_PREFIX)
        known = set(module.state_dict())
        if not any(key.startswith("text_model.") for key in known):  # transformers >= 5 drops the prefix
            weights = {key.removeprefix("text_model."): value for key, value in weights.items()}
        # SD2 encodes with the penultimate layer: the file's last block (and its projection) stay unused.
        weights = {key: value for key, value in weights.items() if key in known}
    elif component == "depth_estimator":
        config = DPTConfig(**configs.depth_estimator)
        module = DPTForDepthEstimation(config)
        midas = _with_prefix(state, DEPTH_PREFIX)
        weights = convert_midas(midas, int(config.hidden_size), int(config.num_hidden_layers or 0))
    else:
        raise ModelError(f"{component} has no weights in a single-file checkpoint")
    return _load_into(module, weights, component, path).eval()


WEIGHTED_PARTS = ("unet", "vae", "text_encoder", "depth_estimator")


def load_single_file(path: Path, configs: DepthModelConfigs) -> dict[str, Any]:
    """The four weighted components of a single-file depth checkpoint (read once, converted together)."""
    state = read_state_dict(path)
    check_depth_checkpoint(state, path)
    return {component: convert_component(state, component, configs, path) for component in WEIGHTED_PARTS}
