"""Tiny depth estimators written in the layouts of the real files (for the single-file tests).

Each writer starts from the published transformers names (what `save_pretrained` writes and the
Hugging Face repositories hold) and gives the original authors' names, the left-hand sides of
transformers' conversion scripts: `convert_dpt_hybrid_to_pytorch.py` / `convert_dpt_to_pytorch.py`
for MiDaS v3.0, `convert_depth_anything_to_hf.py` for Depth Anything (its V2 checkpoints have the
same names as V1's).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import torch

from tests.models.ldm_export import dpt_to_midas


def dpt_to_midas_file(state: Mapping[str, torch.Tensor], hidden_size: int) -> dict[str, torch.Tensor]:
    """DPT-hybrid as `dpt_hybrid-midas-501f0c75.pt` names it (SD2-depth's names without its
    `depth_model.model.` prefix), or DPT-large as `dpt_large-midas-2f21e586.pt` does: the same names,
    its patch embedding a plain `patch_embed.proj`."""
    renamed = {
        key.replace("dpt.embeddings.patch_embeddings.projection.", "dpt.embeddings.projection."): value
        for key, value in state.items()
    }
    midas = dpt_to_midas(renamed, hidden_size)
    return {
        key.removeprefix("depth_model.model."): value.contiguous().clone() for key, value in midas.items()
    }


Replacement = str | Callable[[re.Match[str]], str]
_DEPTH_ANYTHING: list[tuple[str, Replacement]] = [
    (r"^backbone\.embeddings\.cls_token$", "pretrained.cls_token"),
    (r"^backbone\.embeddings\.mask_token$", "pretrained.mask_token"),
    (r"^backbone\.embeddings\.position_embeddings$", "pretrained.pos_embed"),
    (r"^backbone\.embeddings\.patch_embeddings\.projection\.", "pretrained.patch_embed.proj."),
    (r"^backbone\.encoder\.layer\.(\d+)\.layer_scale(\d)\.lambda1$", r"pretrained.blocks.\1.ls\2.gamma"),
    (r"^backbone\.encoder\.layer\.(\d+)\.attention\.output\.dense\.", r"pretrained.blocks.\1.attn.proj."),
    (r"^backbone\.encoder\.layer\.(\d+)\.", r"pretrained.blocks.\1."),  # norm1, norm2, mlp.fc1, mlp.fc2
    (r"^backbone\.layernorm\.", "pretrained.norm."),
    (r"^neck\.reassemble_stage\.layers\.(\d)\.projection\.", r"depth_head.projects.\1."),
    (r"^neck\.reassemble_stage\.layers\.(\d)\.resize\.", r"depth_head.resize_layers.\1."),
    (r"^neck\.convs\.(\d)\.", lambda m: f"depth_head.scratch.layer{int(m[1]) + 1}_rn."),
    (
        r"^neck\.fusion_stage\.layers\.(\d)\.projection\.",
        lambda m: f"depth_head.scratch.refinenet{4 - int(m[1])}.out_conv.",
    ),
    (
        r"^neck\.fusion_stage\.layers\.(\d)\.residual_layer(\d)\.convolution(\d)\.",
        lambda m: f"depth_head.scratch.refinenet{4 - int(m[1])}.resConfUnit{m[2]}.conv{m[3]}.",
    ),
    (r"^head\.conv1\.", "depth_head.scratch.output_conv1."),
    (r"^head\.conv2\.", "depth_head.scratch.output_conv2.0."),
    (r"^head\.conv3\.", "depth_head.scratch.output_conv2.2."),
]


def depth_anything_to_original(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Depth Anything as `depth_anything_v2_vits.pth` names it: DINOv2 under `pretrained.` with one
    qkv matrix per block (timm's), the DPT head under `depth_head.`."""
    result: dict[str, torch.Tensor] = {}
    blocks = sorted(
        {int(m[1]) for key in state if (m := re.match(r"backbone\.encoder\.layer\.(\d+)\.", key))}
    )
    for index in blocks:
        stem = f"backbone.encoder.layer.{index}.attention.attention"
        result[f"pretrained.blocks.{index}.attn.qkv.weight"] = torch.cat(
            [state[f"{stem}.{part}.weight"] for part in ("query", "key", "value")]
        )
        result[f"pretrained.blocks.{index}.attn.qkv.bias"] = torch.cat(
            [state[f"{stem}.{part}.bias"] for part in ("query", "key", "value")]
        )
    for key, value in state.items():
        if ".attention.attention." in key:
            continue
        for pattern, replacement in _DEPTH_ANYTHING:
            renamed = re.sub(pattern, replacement, key)
            if renamed != key:
                key = renamed
                break
        result[key] = value
    return {key: value.contiguous().clone() for key, value in result.items()}
