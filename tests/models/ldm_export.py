"""Writing diffusers/transformers weights back under the original single-file names (LDM UNet and VAE,
CLIP and OpenCLIP text towers, MiDaS DPT-hybrid), so the tests can make single-file checkpoints of
every family (`512-depth-ema`, `v1-5-pruned`, `v2-1_512`, `sd_xl_base_1.0` style) from the tiny
models. This is the inverse of what the loader reads; the names follow Stability's, OpenAI's and
MiDaS' own modules. That the files have the real layout is checked by diffusers' own single-file
loader reading them (tests/models/test_families.py), not by this module."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import torch

RESNET_TO_LDM = [
    ("norm1", "in_layers.0"),
    ("conv1", "in_layers.2"),
    ("time_emb_proj", "emb_layers.1"),
    ("norm2", "out_layers.0"),
    ("conv2", "out_layers.3"),
    ("conv_shortcut", "skip_connection"),
]


def _renamed(rest: str, table: list[tuple[str, str]]) -> str:
    for new, old in table:
        if rest.startswith(new + "."):
            return old + rest[len(new) :]
    return rest


def unet_to_ldm(state: Mapping[str, torch.Tensor], config: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    layers = config["layers_per_block"]
    attentive_up = ["CrossAttn" in kind for kind in config["up_block_types"]]
    fixed = {
        "time_embedding.linear_1": "time_embed.0",
        "time_embedding.linear_2": "time_embed.2",
        "conv_in": "input_blocks.0.0",
        "conv_norm_out": "out.0",
        "conv_out": "out.2",
    }
    result: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        name = None
        for new, old in fixed.items():
            if key.startswith(new + "."):
                name = old + key[len(new) :]
        if match := re.match(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)", key):
            block, kind, index, rest = int(match[1]), match[2], int(match[3]), match[4]
            slot = 1 + block * (layers + 1) + index
            if kind == "resnets":
                name = f"input_blocks.{slot}.0.{_renamed(rest, RESNET_TO_LDM)}"
            else:
                name = f"input_blocks.{slot}.1.{rest}"
        elif match := re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)", key):
            name = f"input_blocks.{(int(match[1]) + 1) * (layers + 1)}.0.op.{match[2]}"
        elif match := re.match(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)", key):
            block, kind, index, rest = int(match[1]), match[2], int(match[3]), match[4]
            slot = block * (layers + 1) + index
            if kind == "resnets":
                name = f"output_blocks.{slot}.0.{_renamed(rest, RESNET_TO_LDM)}"
            else:
                name = f"output_blocks.{slot}.1.{rest}"
        elif match := re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.(.*)", key):
            block = int(match[1])
            position = 2 if attentive_up[block] else 1
            name = f"output_blocks.{block * (layers + 1) + layers}.{position}.{match[2]}"
        elif match := re.match(r"mid_block\.(resnets|attentions)\.(\d+)\.(.*)", key):
            kind, index, rest = match[1], int(match[2]), match[3]
            if kind == "resnets":
                name = f"middle_block.{2 * index}.{_renamed(rest, RESNET_TO_LDM)}"
            else:
                name = f"middle_block.1.{rest}"
        if match := re.match(r"add_embedding\.linear_(\d)\.(.*)", key):  # SDXL's size-and-text embedding
            name = f"label_emb.0.{2 * (int(match[1]) - 1)}.{match[2]}"
        assert name is not None, f"no LDM name for UNet weight {key}"
        result[f"model.diffusion_model.{name}"] = value
    return result


def vae_to_ldm(state: Mapping[str, torch.Tensor], config: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    blocks = len(config["block_out_channels"])
    attention = [
        ("group_norm", "norm"),
        ("to_q", "q"),
        ("to_k", "k"),
        ("to_v", "v"),
        ("to_out.0", "proj_out"),
    ]
    result: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        name = key.replace("conv_shortcut", "nin_shortcut").replace("conv_norm_out", "norm_out")
        name = re.sub(r"encoder\.down_blocks\.(\d+)\.resnets\.", r"encoder.down.\1.block.", name)
        name = re.sub(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.", r"encoder.down.\1.downsample.", name)
        name = re.sub(
            r"decoder\.up_blocks\.(\d+)\.resnets\.",
            lambda match: f"decoder.up.{blocks - 1 - int(match[1])}.block.",
            name,
        )
        name = re.sub(
            r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.",
            lambda match: f"decoder.up.{blocks - 1 - int(match[1])}.upsample.",
            name,
        )
        name = re.sub(r"mid_block\.resnets\.(\d+)\.", lambda match: f"mid.block_{int(match[1]) + 1}.", name)
        if ".mid_block.attentions.0." in name:
            prefix, rest = name.split(".mid_block.attentions.0.")
            rest = _renamed(rest, attention)
            name = f"{prefix}.mid.attn_1.{rest}"
            if value.ndim == 2:  # LDM's attention uses 1×1 convolutions
                value = value[:, :, None, None]
        result[f"first_stage_model.{name}"] = value
    return result


def text_to_clip(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """CLIPTextModel weights as SD 1.x (`cond_stage_model.transformer.`) and SDXL's first encoder
    (`conditioner.embedders.0.transformer.`) keep them: transformers' own names under a prefix."""
    return {
        prefix + (key if key.startswith("text_model.") else f"text_model.{key}"): value
        for key, value in state.items()
    }


def text_to_open_clip(
    state: Mapping[str, torch.Tensor],
    extra_layers: int = 1,
    prefix: str = "cond_stage_model.model.",
    projection: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """CLIPTextModel weights as OpenCLIP's, plus `extra_layers` final blocks and a text projection, as
    SD2's file has (it encodes with the penultimate layer, so those are never loaded). SDXL's second
    encoder (`prefix` conditioner.embedders.1.model.) keeps every block and its real `projection`
    (transformers' `text_projection.weight`; OpenCLIP stores its transpose)."""
    state = {key: value for key, value in state.items() if key != "text_projection.weight"}
    state = {
        key if key.startswith("text_model.") else f"text_model.{key}": value for key, value in state.items()
    }
    result: dict[str, torch.Tensor] = {
        f"{prefix}token_embedding.weight": state["text_model.embeddings.token_embedding.weight"],
        f"{prefix}positional_embedding": state["text_model.embeddings.position_embedding.weight"],
        f"{prefix}ln_final.weight": state["text_model.final_layer_norm.weight"],
        f"{prefix}ln_final.bias": state["text_model.final_layer_norm.bias"],
    }
    layers = sorted(
        {int(match[1]) for key in state if (match := re.match(r"text_model\.encoder\.layers\.(\d+)\.", key))}
    )
    renames = [
        ("layer_norm1", "ln_1"),
        ("layer_norm2", "ln_2"),
        ("mlp.fc1", "mlp.c_fc"),
        ("mlp.fc2", "mlp.c_proj"),
    ]
    renames.append(("self_attn.out_proj", "attn.out_proj"))
    for index in layers + [layers[-1] + 1 + extra for extra in range(extra_layers)]:
        source = index if index in layers else layers[-1]
        stem = f"text_model.encoder.layers.{source}."
        block = f"{prefix}transformer.resblocks.{index}."
        for kind in ("weight", "bias"):
            result[f"{block}attn.in_proj_{kind}"] = torch.cat(
                [state[f"{stem}self_attn.{part}_proj.{kind}"] for part in ("q", "k", "v")]
            )
        for key, value in state.items():
            rest = key[len(stem) :]
            if not key.startswith(stem) or (rest.startswith("self_attn.") and "out_proj" not in rest):
                continue  # query, key and value went into in_proj above
            result[block + _renamed(rest, renames)] = value
    width = state["text_model.final_layer_norm.weight"].shape[0]
    result[f"{prefix}text_projection"] = torch.randn(width, width) if projection is None else projection.T
    result[f"{prefix}logit_scale"] = torch.tensor(4.6052)
    return result


def dpt_to_midas(state: Mapping[str, torch.Tensor], hidden_size: int) -> dict[str, torch.Tensor]:
    patterns = [
        (
            r"dpt\.embeddings\.backbone\.bit\.embedder\.convolution\.",
            "pretrained.model.patch_embed.backbone.stem.conv.",
        ),
        (
            r"dpt\.embeddings\.backbone\.bit\.embedder\.norm\.",
            "pretrained.model.patch_embed.backbone.stem.norm.",
        ),
        (
            r"dpt\.embeddings\.backbone\.bit\.encoder\.stages\.(\d+)\.layers\.(\d+)\.",
            r"pretrained.model.patch_embed.backbone.stages.\1.blocks.\2.",
        ),
        (r"dpt\.embeddings\.cls_token", "pretrained.model.cls_token"),
        (r"dpt\.embeddings\.position_embeddings", "pretrained.model.pos_embed"),
        (r"dpt\.embeddings\.projection\.", "pretrained.model.patch_embed.proj."),
        (r"dpt\.encoder\.layer\.(\d+)\.layernorm_before\.", r"pretrained.model.blocks.\1.norm1."),
        (r"dpt\.encoder\.layer\.(\d+)\.layernorm_after\.", r"pretrained.model.blocks.\1.norm2."),
        (r"dpt\.encoder\.layer\.(\d+)\.attention\.output\.dense\.", r"pretrained.model.blocks.\1.attn.proj."),
        (r"dpt\.encoder\.layer\.(\d+)\.intermediate\.dense\.", r"pretrained.model.blocks.\1.mlp.fc1."),
        (r"dpt\.encoder\.layer\.(\d+)\.output\.dense\.", r"pretrained.model.blocks.\1.mlp.fc2."),
        (r"dpt\.layernorm\.", "pretrained.model.norm."),
        (r"head\.head\.", "scratch.output_conv."),
        (r"neck\.convs\.(\d+)\.", lambda m: f"scratch.layer{int(m[1]) + 1}_rn."),
        (
            r"neck\.fusion_stage\.layers\.(\d+)\.projection\.",
            lambda m: f"scratch.refinenet{4 - int(m[1])}.out_conv.",
        ),
        (
            r"neck\.fusion_stage\.layers\.(\d+)\.residual_layer(\d)\.convolution(\d)\.",
            lambda m: f"scratch.refinenet{4 - int(m[1])}.resConfUnit{m[2]}.conv{m[3]}.",
        ),
        (
            r"neck\.reassemble_stage\.layers\.(\d+)\.projection\.",
            lambda m: f"pretrained.act_postprocess{int(m[1]) + 1}.3.",
        ),
        (
            r"neck\.reassemble_stage\.layers\.(\d+)\.resize\.",
            lambda m: f"pretrained.act_postprocess{int(m[1]) + 1}.4.",
        ),
        (
            r"neck\.reassemble_stage\.readout_projects\.(\d+)\.0\.",
            lambda m: f"pretrained.act_postprocess{int(m[1]) + 1}.0.project.0.",
        ),
    ]
    result: dict[str, torch.Tensor] = {}
    qkv: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        if match := re.match(
            r"dpt\.encoder\.layer\.(\d+)\.attention\.attention\.(query|key|value)\.(weight|bias)", key
        ):
            qkv.setdefault(f"pretrained.model.blocks.{match[1]}.attn.qkv.{match[3]}", {})[match[2]] = value
            continue
        name = key
        for pattern, replacement in patterns:
            name, count = re.subn("^" + pattern, replacement, name)
            if count:
                break
        assert name != key, f"no MiDaS name for DPT weight {key}"
        result[f"depth_model.model.{name}"] = value
    for name, parts in qkv.items():
        result[f"depth_model.model.{name}"] = torch.cat([parts["query"], parts["key"], parts["value"]])
    assert all(value.shape[0] == 3 * hidden_size for name, value in result.items() if ".qkv." in name)
    return result


def controlnet_to_ldm(
    state: Mapping[str, torch.Tensor], config: Mapping[str, Any], prefix: str = "control_model."
) -> dict[str, torch.Tensor]:
    """A diffusers ControlNet under the original ControlNet code's names (`cldm.ControlNet`): the UNet
    encoder's as the LDM UNet has them, the control-image embedding as `input_hint_block` (convolutions
    at every other index, SiLUs between), the zero convolutions as `zero_convs.N.0` and
    `middle_block_out.0`; under `prefix` (the `.pth` files' `control_model.`, or none as the fp16
    safetensors have them)."""
    blocks = len({key.split(".")[2] for key in state if key.startswith("controlnet_cond_embedding.blocks.")})
    own: dict[str, torch.Tensor] = {}
    rest: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if match := re.match(r"controlnet_cond_embedding\.blocks\.(\d+)\.(.*)", key):
            own[f"input_hint_block.{2 * (int(match[1]) + 1)}.{match[2]}"] = value
        elif key.startswith("controlnet_cond_embedding.conv_in."):
            own["input_hint_block.0." + key.rsplit(".", 1)[1]] = value
        elif key.startswith("controlnet_cond_embedding.conv_out."):
            own[f"input_hint_block.{2 * (blocks + 1)}." + key.rsplit(".", 1)[1]] = value
        elif match := re.match(r"controlnet_down_blocks\.(\d+)\.(.*)", key):
            own[f"zero_convs.{match[1]}.0.{match[2]}"] = value
        elif key.startswith("controlnet_mid_block."):
            own["middle_block_out.0." + key.rsplit(".", 1)[1]] = value
        else:
            rest[key] = value
    encoder = unet_to_ldm(rest, {**config, "up_block_types": []})
    own.update({key.removeprefix("model.diffusion_model."): value for key, value in encoder.items()})
    return {prefix + key: value.contiguous().clone() for key, value in own.items()}


def original_controlnet_yaml(config: dict[str, Any]) -> str:
    """The original ControlNet yaml (as `control_v11f1p_sd15_depth.yaml` and `cldm_v21.yaml` are laid
    out) for a diffusers ControlNet config: ControlLDM with its control_stage_config."""
    channels = config["block_out_channels"]
    heads = config["attention_head_dim"]
    linear = config["use_linear_projection"]
    attention = [
        2**level for level, kind in enumerate(config["down_block_types"]) if kind.startswith("CrossAttn")
    ]
    params = {
        "image_size": 32,
        "in_channels": config["in_channels"],
        "hint_channels": config["conditioning_channels"],
        "model_channels": channels[0],
        "attention_resolutions": attention,
        "num_res_blocks": config["layers_per_block"],
        "channel_mult": [size // channels[0] for size in channels],
        "use_spatial_transformer": True,
        "transformer_depth": 1,
        "context_dim": config["cross_attention_dim"],
        "use_checkpoint": True,
        "legacy": False,
    }
    params["num_heads"] = heads if isinstance(heads, int) else heads[0]  # the same in every block here
    if linear:
        params["use_linear_in_transformer"] = True
    stage = {"target": "cldm.cldm.ControlNet", "params": params}
    unet = {"target": "cldm.cldm.ControlledUnetModel", "params": {**params, "out_channels": 4}}
    document = {
        "model": {
            "target": "cldm.cldm.ControlLDM",
            "params": {
                "control_key": "hint",
                "control_stage_config": stage,
                "unet_config": unet,
                "first_stage_config": {"params": {"ddconfig": {"ch_mult": [1, 2, 4, 4]}}},
            },
        }
    }
    return json.dumps(document)  # JSON is YAML
