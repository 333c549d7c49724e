"""Depth estimators kept as one weights file (`models/depth/NAME.safetensors`, `.pth` or `.pt`).

A file carries weights but no config, so only the layouts whose architecture its tensors tell are
read — the layout is recognised by its tensor names:

- MiDaS v3.0 DPT-hybrid (`dpt_hybrid-midas-501f0c75.pt`): `pretrained.model.patch_embed.backbone.…`,
  `scratch.…`; read as dpt-hybrid.
- MiDaS v3.0 DPT-large (`dpt_large-midas-2f21e586.pt`): `pretrained.model.patch_embed.proj.…`,
  `scratch.…`; read as dpt.
- Depth Anything V2 (`depth_anything_v2_vit{s,b,l}.pth`, and the .safetensors copies ComfyUI users
  keep): `pretrained.blocks.…`, `depth_head.…`; read as depth-anything.
- A Hugging Face repository's `model.safetensors` (DPT-hybrid, DPT-large, Depth Anything):
  `dpt.…` / `backbone.…`, `neck.…`, `head.…`; read as its family.

The original names become the published transformers names by the renaming rules of transformers'
conversion scripts (`convert_dpt_hybrid_to_pytorch.py`, `convert_dpt_to_pytorch.py`,
`convert_depth_anything_to_hf.py`); transformers' own `from_pretrained` then takes them as it takes a
downloaded repository (including its version-5 renames). The architecture is the published
checkpoint's (or a built-in tiny one's) with the same width and depth; any tensor missing, left over
or of another shape refuses the file. ZoeDepth and Depth Pro files are refused: their configs (bins,
attractors, field of view) are not told by the weights; their Hugging Face folders load instead.
Files are read by `engine.models.checkpoint_read`: nothing in them is ever run.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

from .checkpoint_read import read_state_dict, tensor_shapes
from .common import ModelError
from .depth_families import DEPTH_ANYTHING, DEPTH_PRO, DPT_HYBRID, DPT_LARGE, ZOEDEPTH, Family

SUFFIXES = (".safetensors", ".pth", ".pt")
StateDict = dict[str, Any]
LAYOUTS = (
    "MiDaS v3.0 DPT-hybrid or DPT-large (pretrained.model.*, scratch.*)",
    "Depth Anything V2 (pretrained.blocks.*, depth_head.*)",
    "a Hugging Face model.safetensors of DPT-hybrid, DPT-large or Depth Anything",
)


def recognise(path: Path, names: Collection[str]) -> tuple[Family, str]:
    """(family, "original" | "transformers") of a file's tensor names, or a ModelError that names
    the file, what it seems to be and what is expected."""
    keys = set(names)

    def has(prefix: str) -> bool:
        return any(key.startswith(prefix) for key in keys)

    if has("model.diffusion_model.") or has("depth_model.model."):
        raise ModelError(
            f"{path} is a Stable Diffusion checkpoint, not a depth estimator: put it in the models "
            "folder itself and load it with CheckpointLoader (its DEPTH_MODEL output is the DPT-hybrid "
            "it carries)"
        )
    if has("pretrained.model.patch_embed.backbone.") and has("scratch."):
        return DPT_HYBRID, "original"
    if has("pretrained.model.patch_embed.proj.") and has("scratch."):
        return DPT_LARGE, "original"
    if has("pretrained.blocks.") and has("depth_head."):
        return DEPTH_ANYTHING, "original"
    if has("metric_head.") or has("relative_head.") or has("depth_pro.") or has("encoder.patch_encoder."):
        family = ZOEDEPTH if has("metric_head.") or has("relative_head.") else DEPTH_PRO
        raise ModelError(
            f"{path} holds {family.title} weights, which need their config.json: a single file "
            f"cannot say it. Put the Hugging Face folder ({', '.join(family.published)}: config.json, "
            "model.safetensors, preprocessor_config.json) in models/depth/ instead"
        )
    if has("dpt.embeddings.backbone.") and has("neck."):
        return DPT_HYBRID, "transformers"
    if has("dpt.embeddings.patch_embeddings.") and has("neck."):
        return DPT_LARGE, "transformers"
    if has("backbone.embeddings.patch_embeddings.") and has("neck.") and has("head.conv3."):
        return DEPTH_ANYTHING, "transformers"
    sample = ", ".join(sorted(keys)[:3]) or "no tensors"
    raise ModelError(
        f"{path} is not a depth estimator layout depthgraph knows (its tensors: {sample}, ...). "
        f"Expected one of: {'; '.join(LAYOUTS)}. For other estimators put their Hugging Face "
        "folder (config.json, weights, preprocessor_config.json) in models/depth/"
    )


def family_of_file(path: Path) -> Family:
    """The family of a single file, from its tensor names alone (a safetensors header is all that
    is read)."""
    return recognise(path, tensor_shapes(path))[0]


# --- original names -> published transformers names ----------------------------------------------
def _split_qkv(state: StateDict, old: str, new: str, hidden: int) -> None:
    """timm keeps query, key and value in one matrix; transformers in three."""
    weight, bias = state.pop(f"{old}.qkv.weight"), state.pop(f"{old}.qkv.bias")
    for part, name in enumerate(("query", "key", "value")):
        rows = slice(part * hidden, (part + 1) * hidden)
        state[f"{new}.attention.{name}.weight"] = weight[rows]
        state[f"{new}.attention.{name}.bias"] = bias[rows]


def midas_to_transformers(state: Mapping[str, Any], family: Family) -> StateDict:
    """MiDaS v3.0 names as transformers' DPTForDepthEstimation publishes them (the hybrid's rules
    are engine.models.single_file's; DPT-large's differ only in its patch embedding's name)."""
    from .single_file import convert_midas

    hidden = int(state["pretrained.model.cls_token"].shape[-1])
    layers = len(
        {match[1] for key in state if (match := re.match(r"pretrained\.model\.blocks\.(\d+)\.", key))}
    )
    converted = convert_midas(state, hidden, layers)
    if family is DPT_LARGE:
        converted = {
            key.replace("dpt.embeddings.projection.", "dpt.embeddings.patch_embeddings.projection."): value
            for key, value in converted.items()
        }
    return converted


Replacement = str | Callable[[re.Match[str]], str]
_DEPTH_ANYTHING_RULES: list[tuple[str, Replacement]] = [  # convert_depth_anything_to_hf.py, in order
    (r"^pretrained\.cls_token$", "backbone.embeddings.cls_token"),
    (r"^pretrained\.mask_token$", "backbone.embeddings.mask_token"),
    (r"^pretrained\.pos_embed$", "backbone.embeddings.position_embeddings"),
    (r"^pretrained\.patch_embed\.proj\.", "backbone.embeddings.patch_embeddings.projection."),
    (r"^pretrained\.blocks\.(\d+)\.ls1\.gamma$", r"backbone.encoder.layer.\1.layer_scale1.lambda1"),
    (r"^pretrained\.blocks\.(\d+)\.ls2\.gamma$", r"backbone.encoder.layer.\1.layer_scale2.lambda1"),
    (r"^pretrained\.blocks\.(\d+)\.(norm1|norm2|mlp\.fc1|mlp\.fc2)\.", r"backbone.encoder.layer.\1.\2."),
    (r"^pretrained\.blocks\.(\d+)\.attn\.proj\.", r"backbone.encoder.layer.\1.attention.output.dense."),
    (r"^pretrained\.norm\.", "backbone.layernorm."),
    (r"^depth_head\.projects\.(\d)\.", r"neck.reassemble_stage.layers.\1.projection."),
    (r"^depth_head\.resize_layers\.(\d)\.", r"neck.reassemble_stage.layers.\1.resize."),
    (r"^depth_head\.scratch\.layer(\d)_rn\.", lambda m: f"neck.convs.{int(m[1]) - 1}."),
    (r"^depth_head\.scratch\.refinenet(\d)\.", lambda m: f"neck.fusion_stage.layers.{4 - int(m[1])}."),
    (r"^depth_head\.scratch\.output_conv1\.", "head.conv1."),
    (r"^depth_head\.scratch\.output_conv2\.0\.", "head.conv2."),
    (r"^depth_head\.scratch\.output_conv2\.2\.", "head.conv3."),
    (r"\.out_conv\.", ".projection."),
    (r"\.resConfUnit(\d)\.conv(\d)\.", r".residual_layer\1.convolution\2."),
]


def depth_anything_to_transformers(state: Mapping[str, Any]) -> StateDict:
    """Depth Anything V2's own names as transformers' DepthAnythingForDepthEstimation publishes them."""
    converted = dict(state)
    hidden = int(converted["pretrained.cls_token"].shape[-1])
    for index in sorted(
        {int(m[1]) for key in state if (m := re.match(r"pretrained\.blocks\.(\d+)\.attn\.qkv", key))}
    ):
        _split_qkv(
            converted, f"pretrained.blocks.{index}.attn", f"backbone.encoder.layer.{index}.attention", hidden
        )
    renamed: StateDict = {}
    for key, value in converted.items():
        for pattern, replacement in _DEPTH_ANYTHING_RULES:
            key = re.sub(pattern, replacement, key)
        renamed[key] = value
    return renamed


# --- the architecture --------------------------------------------------------------------------
def _width_and_depth(state: Mapping[str, Any], family: Family) -> tuple[int, int]:
    prefix = "backbone" if family is DEPTH_ANYTHING else "dpt"
    hidden = int(state[f"{prefix}.embeddings.cls_token"].shape[-1])
    pattern = re.compile(rf"{prefix}\.encoder\.layer\.(\d+)\.")
    layers = len({match[1] for key in state if (match := pattern.match(key))})
    return hidden, layers


def published_configs(family: Family) -> dict[tuple[int, int], dict[str, Any]]:
    """(width, layers) -> config, for the published checkpoints of `family` and its tiny one."""
    from .sd2_depth import DEPTH_ESTIMATOR
    from .tiny_depth import TINY_ESTIMATORS

    tiny = next(build for fam, build, _ in TINY_ESTIMATORS.values() if fam is family)().config.to_dict()
    configs = {(32, 4): tiny}
    if family is DPT_HYBRID:
        configs[(768, 12)] = dict(DEPTH_ESTIMATOR)  # Intel/dpt-hybrid-midas
    elif family is DPT_LARGE:  # Intel/dpt-large, as convert_dpt_to_pytorch.py sets it
        configs[(1024, 24)] = {
            "hidden_size": 1024,
            "intermediate_size": 4096,
            "num_hidden_layers": 24,
            "num_attention_heads": 16,
            "backbone_out_indices": [5, 11, 17, 23],
            "neck_hidden_sizes": [256, 512, 1024, 1024],
            "image_size": 384,
            "patch_size": 16,
            "qkv_bias": True,
        }
    else:  # Depth-Anything-V2-{Small,Base,Large}-hf: DINOv2 ViT-S/B/L; the head reads V2's layers
        for hidden, layers, heads, neck, fusion, taps in (
            (384, 12, 6, [48, 96, 192, 384], 64, [3, 6, 9, 12]),
            (768, 12, 12, [96, 192, 384, 768], 128, [3, 6, 9, 12]),
            (1024, 24, 16, [256, 512, 1024, 1024], 256, [5, 12, 18, 24]),
        ):
            configs[(hidden, layers)] = _depth_anything_v2(hidden, layers, heads, neck, fusion, taps)
    return configs


def _depth_anything_v2(
    hidden: int, layers: int, heads: int, neck: list[int], fusion: int, taps: list[int]
) -> dict[str, Any]:
    backbone = {
        "model_type": "dinov2",
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "image_size": 518,
        "patch_size": 14,
        "out_indices": taps,
        "reshape_hidden_states": False,
        "apply_layernorm": True,
    }
    return {
        "backbone_config": backbone,
        "reassemble_hidden_size": hidden,
        "patch_size": 14,
        "neck_hidden_sizes": neck,
        "fusion_hidden_size": fusion,
        "head_hidden_size": 32,
        "depth_estimation_type": "relative",
    }


def load_depth_file(path: Path) -> tuple[Family, Any]:
    """A single file's family and its model, float32, in eval mode."""
    import torch

    state = read_state_dict(path)
    family, layout = recognise(path, state)
    if layout == "original":
        state = (
            depth_anything_to_transformers(state)
            if family is DEPTH_ANYTHING
            else midas_to_transformers(state, family)
        )
    try:
        signature = _width_and_depth(state, family)
    except KeyError as error:
        raise ModelError(f"{path} looks like {family.title} weights but has no {error.args[0]}") from None
    configs = published_configs(family)
    if signature not in configs:
        known = ", ".join(f"{width} wide × {depth} layers" for width, depth in configs)
        raise ModelError(
            f"{path}: {family.title} weights {signature[0]} wide with {signature[1]} layers match no "
            f"published checkpoint ({known}); use its Hugging Face folder, whose config.json says "
            "its architecture"
        )
    model_class = family.model_type()
    config = model_class.config_class(**configs[signature])
    try:
        model, info = model_class.from_pretrained(
            None, config=config, state_dict=state, dtype=torch.float32, output_loading_info=True
        )
    except Exception as error:  # shapes that do not fit
        raise ModelError(
            f"{path} does not fit {family.title}'s architecture: {type(error).__name__}: {error}"
        ) from None
    missing = [key for key in info.get("missing_keys", []) if not key.endswith("mask_token")]  # unused
    wrong = [
        *missing,
        *info.get("unexpected_keys", []),
        *[str(item[0]) for item in info.get("mismatched_keys", [])],
    ]
    if wrong:
        raise ModelError(
            f"{path} does not fit {family.title}'s architecture ({len(missing)} missing, "
            f"{len(wrong) - len(missing)} unexpected or misshapen tensors, e.g. "
            f"{', '.join(map(str, wrong[:3]))})"
        )
    return family, model.eval()
