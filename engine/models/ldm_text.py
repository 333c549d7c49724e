"""The text encoders of single-file checkpoints, under transformers' names, by diffusers' converters.

Each family keeps its text towers under its own prefix, in one of two layouts:

| family    | component        | prefix                              | layout                               |
|-----------|------------------|-------------------------------------|--------------------------------------|
| SD 1.x    | text_encoder     | `cond_stage_model.transformer.`     | transformers' CLIPTextModel already  |
| SD 2.x    | text_encoder     | `cond_stage_model.model.`           | OpenCLIP (`transformer.resblocks.N`) |
| SDXL      | text_encoder     | `conditioner.embedders.0.transformer.` | transformers' CLIPTextModel       |
| SDXL      | text_encoder_2   | `conditioner.embedders.1.model.`    | OpenCLIP, with its text projection   |

The transformers layout only loses its prefix (diffusers' `convert_ldm_clip_checkpoint`); OpenCLIP's is
renamed, its fused query/key/value split and its projection transposed (`convert_open_clip_checkpoint`).
SD 2.x conditions on the penultimate block, so its model has one block fewer than the file; SDXL's
second tower keeps every block (its pooled, projected output needs the last one).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

StateDict = dict[str, Any]
SD1_TEXT_PREFIX = "cond_stage_model.transformer."
OPEN_CLIP_PREFIX = "cond_stage_model.model."
SDXL_CLIP_PREFIX = "conditioner.embedders.0.transformer."
SDXL_OPEN_CLIP_PREFIX = "conditioner.embedders.1.model."
# Where each family's text encoders are, and in which layout.
TEXT_TOWERS: dict[str, dict[str, tuple[str, str]]] = {
    "sd1": {"text_encoder": ("clip", SD1_TEXT_PREFIX)},
    "sd2": {"text_encoder": ("open_clip", OPEN_CLIP_PREFIX)},
    "sd2-depth": {"text_encoder": ("open_clip", OPEN_CLIP_PREFIX)},
    "sdxl": {
        "text_encoder": ("clip", SDXL_CLIP_PREFIX),
        "text_encoder_2": ("open_clip_projected", SDXL_OPEN_CLIP_PREFIX),
    },
}
# Buffers older transformers saved with the weights and today's CLIPTextModel recomputes.
UNSAVED_BUFFERS = ("embeddings.position_ids",)


def with_prefix(state: Mapping[str, Any], prefix: str) -> StateDict:
    return {key[len(prefix) :]: value for key, value in state.items() if key.startswith(prefix)}


def text_model_prefix() -> str:
    """Where transformers' CLIPTextModel keeps its layers: under `text_model.` before version 5
    (CLIPTextModelWithProjection keeps them there in every version)."""
    import transformers

    return "text_model." if int(transformers.__version__.split(".")[0]) < 5 else ""


def text_weights(
    state: Mapping[str, Any], family: str, component: str, config: Mapping[str, Any]
) -> StateDict:
    """The weights of text encoder `component` of a `family` single file, as transformers names them."""
    layout, prefix = TEXT_TOWERS[family][component]
    if layout == "clip":
        return _clip_weights(state, prefix)
    if layout == "open_clip":
        return _open_clip_weights(state, prefix, config)
    return _open_clip_projected_weights(state, prefix, config)


def _clip_weights(state: Mapping[str, Any], prefix: str) -> StateDict:
    from diffusers.loaders.single_file_utils import convert_ldm_clip_checkpoint

    # diffusers takes every key under either CLIP prefix; only this tower's are given to it.
    converted = convert_ldm_clip_checkpoint(
        {key: value for key, value in state.items() if key.startswith(prefix)}
    )
    wrapped = text_model_prefix()
    weights: StateDict = {}
    for key, value in converted.items():
        name = key.removeprefix("text_model.")
        if name not in UNSAVED_BUFFERS:
            weights[wrapped + name] = value
    return weights


def _open_clip_weights(state: Mapping[str, Any], prefix: str, config: Mapping[str, Any]) -> StateDict:
    from diffusers.loaders.single_file_utils import convert_open_clip_checkpoint
    from transformers import CLIPTextConfig

    # Given the tower without its prefix, diffusers' helper converts every block: with the prefix it
    # would drop block 23 by name, which a `layer: last` model (24 blocks) needs. Of the model it
    # reads only `config.hidden_size`, and only for a file without a text projection.
    tower = SimpleNamespace(config=CLIPTextConfig(**config))
    converted = convert_open_clip_checkpoint(tower, with_prefix(state, prefix), prefix="")
    layers = int(config["num_hidden_layers"])
    wrapped = text_model_prefix()
    weights: StateDict = {}
    for key, value in converted.items():
        block = re.match(r"text_model\.encoder\.layers\.(\d+)\.", key)
        if key == "text_projection.weight" or (block and int(block[1]) >= layers):
            continue  # CLIPTextModel has no projection; SD2 encodes with the penultimate block
        weights[wrapped + key.removeprefix("text_model.")] = value
    return weights


def _open_clip_projected_weights(
    state: Mapping[str, Any], prefix: str, config: Mapping[str, Any]
) -> StateDict:
    from diffusers.loaders.single_file_utils import convert_open_clip_checkpoint
    from transformers import CLIPTextConfig

    tower = SimpleNamespace(config=CLIPTextConfig(**config))
    converted = dict(convert_open_clip_checkpoint(tower, state, prefix=prefix))
    return converted  # CLIPTextModelWithProjection's names: text_model.* and text_projection.weight


def empty_text_encoder(component: str, config: Mapping[str, Any]) -> Any:
    """A text encoder of the configured size with fresh weights: SDXL's second is projected."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    if component == "text_encoder_2":
        return CLIPTextModelWithProjection(CLIPTextConfig(**config))
    return CLIPTextModel(CLIPTextConfig(**config))
