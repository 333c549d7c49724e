"""ControlNet weights as users keep them, read into diffusers' `ControlNetModel`: which layout a file
has, what its architecture is, and its tensors under diffusers' names.

Three layouts are in use:

- **diffusers** (`controlnet_cond_embedding.conv_in.weight`, ...): a diffusers folder's
  `diffusion_pytorch_model.safetensors`, often renamed and kept alone (most SDXL ControlNets:
  `diffusers/controlnet-depth-sdxl-1.0`, `diffusers_xl_depth_full.safetensors`).
- **original, prefixed** (`control_model.input_hint_block.0.weight`, ...): the files of the original
  ControlNet code (`control_v11f1p_sd15_depth.pth`; the v1.0 `control_sd15_depth.pth` also carries a
  whole SD model beside it, which is ignored).
- **original, bare** (`input_hint_block.0.weight`, `zero_convs.0.0.weight`, ...): the same without
  the prefix (`control_v11f1p_sd15_depth_fp16.safetensors`).

The original layouts are renamed by diffusers' own converter (`convert_controlnet_checkpoint`). The
architecture comes, in this order, from a config beside the file under the same name: `NAME.json`
(the `config.json` of a diffusers ControlNet) or `NAME.yaml` (the original yaml, as the ControlNet 1.1
repository ships beside each `.pth`; its `control_stage_config`); or else from the tensors' shapes,
with the real models' rules for what shapes cannot tell: SD 1.x ControlNets have 8 attention heads,
SD 2.x and SDXL ones 64-wide heads, and SDXL's size embedding is 256 wide per number.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from .common import ModelError
from .families import SD1, SD2, SDXL, Family

Layout = Literal["diffusers", "original", "original-bare"]
ORIGINAL_PREFIX = "control_model."
# One name each layout always has (diffusers' single-file loader tells ControlNets by the first two).
LAYOUT_KEYS: dict[Layout, str] = {
    "diffusers": "controlnet_cond_embedding.conv_in.weight",
    "original": ORIGINAL_PREFIX + "input_hint_block.0.weight",
    "original-bare": "input_hint_block.0.weight",
}
SD1_HEADS = 8  # SD 1.x's UNet and its ControlNets: 8 heads in every block
HEAD_WIDTH = 64  # SD 2.x and SDXL: heads 64 wide
SDXL_TIME_WIDTH = 256  # SDXL: each of the six size numbers embedded 256 wide
OTHER_KINDS = {  # names that tell other kinds of control model, for the refusal's message
    "lora_controlnet": "a Control-LoRA (Stability's control-lora files); load a full ControlNet",
    "lllite_conditioning1.conv1.weight": "a ControlNet-LLLite (kohya's); load a full ControlNet",
    "adapter.body.0.resnets.0.block1.weight": "a T2I-Adapter; load a ControlNet",
    "body.0.block1.weight": "a T2I-Adapter; load a ControlNet",
}
StateDict = dict[str, Any]


def layout_of(keys: Any, path: Path) -> Layout:
    """Which layout a file's tensor names are in; a ModelError naming what it is when it is no
    ControlNet."""
    names = set(keys)
    for layout, key in LAYOUT_KEYS.items():
        if key in names:
            return layout
    for key, kind in OTHER_KINDS.items():
        if key in names or any(name.startswith(key) for name in names):
            raise ModelError(f"{path} is {kind}")
    if any(name.startswith("model.diffusion_model.") for name in names):
        raise ModelError(
            f"{path} is a Stable Diffusion checkpoint, not a ControlNet: put it in models/ and load it with "
            "Load Checkpoint; models/controlnet/ holds ControlNets"
        )
    raise ModelError(
        f"{path} holds no ControlNet: none of {', '.join(LAYOUT_KEYS.values())} is in it. A ControlNet file "
        "is a diffusers ControlNet's weights or an original ControlNet (.pth / .safetensors) file"
    )


# --- what validation needs: the family, from the names and shapes alone -----------------------------


def _family(context_width: int | None, linear: bool, sdxl: bool) -> Family:
    """The family a ControlNet pairs with: SDXL's has the size embedding; SD 1.x attends to 768-wide
    text, SD 2.x to 1024-wide; for other widths (the tiny ones) a linear projection is SD 2.x, as in
    `families.folder_info`."""
    if sdxl or context_width == 2048:
        return SDXL
    if context_width == 768 or (context_width != 1024 and not linear):
        return SD1
    return SD2


def family_of_shapes(shapes: Mapping[str, tuple[int, ...]], path: Path) -> tuple[Family, int]:
    """The family a ControlNet file is for, and how many channels its control image has."""
    layout = layout_of(shapes, path)
    if layout == "diffusers":
        attention = r"down_blocks\.\d+\.attentions\.0\."
        hint = shapes[LAYOUT_KEYS["diffusers"]]
        sdxl = "add_embedding.linear_1.weight" in shapes
    else:
        prefix = ORIGINAL_PREFIX if layout == "original" else ""
        shapes = {key.removeprefix(prefix): shape for key, shape in shapes.items() if key.startswith(prefix)}
        attention = r"input_blocks\.\d+\.1\."
        hint = shapes["input_hint_block.0.weight"]
        sdxl = "label_emb.0.0.weight" in shapes
    width = next(
        (
            shape[-1]
            for key, shape in shapes.items()
            if re.match(attention, key) and key.endswith("transformer_blocks.0.attn2.to_k.weight")
        ),
        None,
    )
    linear = any(
        re.match(attention + r"proj_in\.weight$", key) and len(shape) == 2 for key, shape in shapes.items()
    )
    return _family(width, linear, sdxl), int(hint[1])


def family_of_config(config: Mapping[str, Any]) -> Family:
    return _family(
        config.get("cross_attention_dim"),
        bool(config.get("use_linear_projection")),
        config.get("addition_embed_type") == "text_time",
    )


# --- reading a file ---------------------------------------------------------------------------------


def to_diffusers(state: StateDict, layout: Layout) -> StateDict:
    """The tensors under diffusers' names (the original layouts through diffusers' converter)."""
    if layout == "diffusers":
        return state
    from diffusers.loaders.single_file_utils import convert_controlnet_checkpoint

    if layout == "original-bare":
        state = {ORIGINAL_PREFIX + key: value for key, value in state.items()}
    original = {key.removeprefix(ORIGINAL_PREFIX) for key in state if key.startswith(ORIGINAL_PREFIX)}
    blocks = {int(match[1]) for key in original if (match := re.match(r"input_blocks\.(\d+)\.", key))}
    downsamplers = {
        int(match[1]) for key in original if (match := re.match(r"input_blocks\.(\d+)\.0\.op\.", key))
    }
    levels = len(downsamplers) + 1
    layers = (len(blocks) - 1 - len(downsamplers)) // levels
    converted = convert_controlnet_checkpoint(state, {"layers_per_block": layers})
    return {key: value for key, value in converted.items() if value is not None}


def _count(state: Mapping[str, Any], pattern: str) -> int:
    return len({match[1] for key in state if (match := re.match(pattern, key))})


def config_from_weights(state: Mapping[str, Any]) -> dict[str, Any]:
    """A `ControlNetModel` config from tensors under diffusers' names (see the module docstring for
    what shapes cannot tell)."""
    levels = _count(state, r"down_blocks\.(\d+)\.")
    channels = [int(state[f"down_blocks.{level}.resnets.0.conv1.weight"].shape[0]) for level in range(levels)]
    attentive = [
        any(key.startswith(f"down_blocks.{level}.attentions.") for key in state) for level in range(levels)
    ]
    depths = [
        _count(state, rf"down_blocks\.{level}\.attentions\.0\.transformer_blocks\.(\d+)\.") or 1
        for level in range(levels)
    ]
    to_k = next(value for key, value in state.items() if key.endswith("attn2.to_k.weight"))
    proj_in = next(value for key, value in state.items() if key.endswith("proj_in.weight"))
    embedding = [int(state["controlnet_cond_embedding.conv_in.weight"].shape[0])]
    blocks = _count(state, r"controlnet_cond_embedding\.blocks\.(\d+)\.")
    embedding += [
        int(state[f"controlnet_cond_embedding.blocks.{2 * n + 1}.weight"].shape[0])
        for n in range(blocks // 2)
    ]
    width = int(to_k.shape[1])
    linear = proj_in.ndim == 2
    sdxl = "add_embedding.linear_1.weight" in state
    family = _family(width, linear, sdxl)
    config: dict[str, Any] = {
        "in_channels": int(state["conv_in.weight"].shape[1]),
        "conditioning_channels": int(state["controlnet_cond_embedding.conv_in.weight"].shape[1]),
        "down_block_types": ["CrossAttnDownBlock2D" if used else "DownBlock2D" for used in attentive],
        "block_out_channels": channels,
        "layers_per_block": _count(state, r"down_blocks\.0\.resnets\.(\d+)\."),
        "cross_attention_dim": width,
        "transformer_layers_per_block": depths,
        "attention_head_dim": SD1_HEADS
        if family is SD1
        else [max(1, size // HEAD_WIDTH) for size in channels],
        "use_linear_projection": linear,
        "conditioning_embedding_out_channels": embedding,
    }
    if "mid_block.attentions.0.proj_in.weight" not in state:
        config["mid_block_type"] = "UNetMidBlock2D"
    if sdxl:
        embedded = int(state["add_embedding.linear_1.weight"].shape[1])  # 6 size numbers + pooled text
        if embedded <= 6 * SDXL_TIME_WIDTH:
            raise ModelError(
                f"this SDXL ControlNet embeds {embedded} numbers, too few for SDXL's six "
                f"{SDXL_TIME_WIDTH}-wide size embeddings and a pooled text embedding, so its architecture "
                "cannot be told from its tensors: save its config.json beside it as NAME.json"
            )
        config.update(
            addition_embed_type="text_time",
            addition_time_embed_dim=SDXL_TIME_WIDTH,
            projection_class_embeddings_input_dim=embedded,
        )
    return config


def config_beside(path: Path) -> dict[str, Any] | None:
    """The ControlNet config kept beside a file under its name (`NAME.json` or `NAME.yaml`), if any."""
    json_path = path.with_suffix(".json")
    if json_path.is_file():
        try:
            config = json.loads(json_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ModelError(f"{json_path} cannot be read as a ControlNet config: {error}") from None
        if not isinstance(config, dict) or "block_out_channels" not in config:
            raise ModelError(
                f"{json_path} is not a diffusers ControlNet config (it has no block_out_channels)"
            )
        return config
    for suffix in (".yaml", ".yml"):
        if path.with_suffix(suffix).is_file():
            return _config_from_yaml(path.with_suffix(suffix))
    return None


def _config_from_yaml(path: Path) -> dict[str, Any]:
    """The original yaml's `control_stage_config` as a diffusers config, through diffusers' reader of
    the UNet's LDM config (its own ControlNet reader, `create_controlnet_diffusers_config_from_ldm`,
    fails in diffusers 0.42: it leaves out an argument the UNet reader requires)."""
    from diffusers.loaders.single_file_utils import create_unet_diffusers_config_from_ldm

    from .ldm_config import read_yaml

    document = read_yaml(path)
    try:
        params = document["model"]["params"]
        control = params["control_stage_config"]
        hint_channels = int(control["params"]["hint_channels"])
        vae = params.get("first_stage_config") or {"params": {"ddconfig": {"ch_mult": [1, 2, 4, 4]}}}
        # A ControlNet is the encoder half: it has no out_channels, which the UNet reader asks for.
        stage = {**control, "params": {"out_channels": control["params"]["in_channels"], **control["params"]}}
        wrapped = {"model": {"params": {"unet_config": stage, "first_stage_config": vae}}}
        unet = create_unet_diffusers_config_from_ldm(wrapped, {})
    except (KeyError, TypeError, ValueError) as error:
        raise ModelError(
            f"{path} is not a ControlNet yaml (model.params.control_stage_config, as the ControlNet "
            f"repositories ship them): {type(error).__name__}: {error}"
        ) from None
    fields = (
        "in_channels",
        "down_block_types",
        "block_out_channels",
        "layers_per_block",
        "cross_attention_dim",
        "attention_head_dim",
        "use_linear_projection",
        "class_embed_type",
        "addition_embed_type",
        "addition_time_embed_dim",
        "projection_class_embeddings_input_dim",
        "transformer_layers_per_block",
    )
    config = {name: unet[name] for name in fields if name in unet}
    config["conditioning_channels"] = hint_channels
    return config
