"""Text encoding: a prompt (or a negative prompt) to the conditioning the model's UNet reads.

Each family encodes as diffusers' pipelines do: SD 1.x and 2.x take their one text encoder's last
hidden state (SD 2.x's text encoder already stops at OpenCLIP's penultimate layer); SDXL concatenates
the penultimate hidden states of its two encoders (CLIP ViT-L, then OpenCLIP ViT-bigG) and keeps the
second's pooled, projected embedding for its size-and-text embedding.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from depthgraph.engine.core.files import FileStore
from depthgraph.engine.core.registry import Int, Output, Socket, String, node
from depthgraph.engine.core.sockets import CLIP, CONDITIONING
from depthgraph.engine.models.clip_tokenizer import OpenClipTokenizer
from depthgraph.engine.models.common import ModelError
from depthgraph.engine.models.families import ModelInfo, UnsupportedModelError
from depthgraph.engine.models.manager import ModelHandle
from depthgraph.nodes.conditioning_value import Conditioning, ConditioningInfo, SizeConditioning
from depthgraph.nodes.heavy import torch

log = logging.getLogger("depthgraph.nodes.text")


def token_ids(tokenizer: Any, text: str) -> tuple[torch.Tensor, str | None]:
    """The prompt's ids, [1, 77], and the text cut off past 77 tokens (else None). Single files use our
    OpenCLIP tokenizer; diffusers folders and the tiny model a transformers one, called as diffusers does."""
    if isinstance(tokenizer, OpenClipTokenizer):
        ids, dropped = tokenizer.ids(text, tokenizer.model_max_length)
        return torch.tensor([ids]), dropped
    length = tokenizer.model_max_length
    padded = tokenizer(
        text, padding="max_length", max_length=length, truncation=True, return_tensors="pt"
    ).input_ids
    full = tokenizer(text, padding="longest", return_tensors="pt").input_ids
    if full.shape[-1] <= padded.shape[-1]:
        return padded, None
    return padded, tokenizer.batch_decode(full[:, length - 1 : -1])[0]


def _ids(clip: ModelHandle, tokenizer: str, text: str) -> torch.Tensor:
    ids, dropped = token_ids(clip.get(tokenizer), text)
    if dropped is not None:
        log.warning("the prompt is longer than %d tokens; this part was cut: %r", ids.shape[-1], dropped)
    return ids


def encode_text(clip: ModelHandle, text: str) -> torch.Tensor:
    """Token ids padded to the tokenizer's length (77), through the (first) text encoder: [1, 77, width].
    Longer prompts are cut at 77 tokens with a warning, as diffusers does."""
    encoder = clip.get("text_encoder")
    ids = _ids(clip, "tokenizer", text)
    with torch.inference_mode():
        embeddings = encoder(ids.to(encoder.device))[0]
    return embeddings.to(dtype=encoder.dtype)


def encode_sdxl(clip: ModelHandle, text_l: str, text_g: str) -> tuple[torch.Tensor, torch.Tensor]:
    """SDXL's conditioning, as diffusers' `encode_prompt`: `text_l` through CLIP ViT-L and `text_g`
    through OpenCLIP ViT-bigG, the penultimate hidden states of both side by side [1, 77, 2048], and
    the second's pooled, projected embedding [1, 1280]."""
    hidden = []
    pooled = None
    for encoder_name, tokenizer, text in (
        ("text_encoder", "tokenizer", text_l),
        ("text_encoder_2", "tokenizer_2", text_g),
    ):
        encoder = clip.get(encoder_name)
        ids = _ids(clip, tokenizer, text)
        with torch.inference_mode():
            output = encoder(ids.to(encoder.device), output_hidden_states=True)
        hidden.append(output.hidden_states[-2])
        pooled = getattr(output, "text_embeds", pooled)
    assert pooled is not None, "SDXL's second text encoder gives a projected (pooled) embedding"
    encoder_2 = clip.get("text_encoder_2")
    return torch.cat(hidden, dim=-1).to(encoder_2.dtype), pooled.to(encoder_2.dtype)


def is_sdxl(clip: ModelHandle) -> bool:
    """Whether `clip` is SDXL's two text encoders (a model whose family cannot be told counts as one)."""
    try:
        return len(clip.info().family.text_encoders) == 2
    except UnsupportedModelError:
        raise
    except ModelError:
        return False


def encode_prompt(clip: ModelHandle, text: str, text_2: str | None = None) -> Conditioning:
    """What CLIPTextEncode gives: the model family's conditioning for `text` (SDXL's second encoder
    reads `text_2` where given, as diffusers' `prompt_2`)."""
    if is_sdxl(clip):
        embeddings, pooled = encode_sdxl(clip, text, text if text_2 is None else text_2)
        return Conditioning(embeddings, pooled)
    return Conditioning(encode_text(clip, text))


def describe_conditioning(known: Mapping[str, Any], files: FileStore) -> ConditioningInfo | None:
    """At validation: the conditioning is the family of the CLIP it is encoded with."""
    clip = known.get("clip")
    return ConditioningInfo(clip.family) if isinstance(clip, ModelInfo) else None


@node(
    "CLIPTextEncode",
    display_name="Encode Prompt",
    category="conditioning",
    description="Encodes a prompt (or a negative prompt) for the sampler; past 77 tokens it is cut.",
    outputs=[Output(CONDITIONING, describe=describe_conditioning)],
)
def clip_text_encode(
    text: str = String("", multiline=True), clip: ModelHandle = Socket(CLIP)
) -> tuple[Conditioning]:
    return (encode_prompt(clip, text),)


def _sdxl_only(known: Mapping[str, Any], files: FileStore) -> dict[str, str]:
    clip = known.get("clip")
    if isinstance(clip, ModelInfo) and len(clip.family.text_encoders) != 2:
        return {"clip": f"this CLIP is {clip.family.title}'s; SDXL's size conditioning needs an SDXL model"}
    return {}


SIDE = {"min": 0, "max": 16384, "step": 8}


@node(
    "CLIPTextEncodeSDXL",
    display_name="Encode Prompt (SDXL)",
    category="conditioning",
    description="Encodes SDXL prompts for its two text encoders, with the size and crop it conditions on.",
    outputs=[Output(CONDITIONING, describe=describe_conditioning)],
    inputs_check=_sdxl_only,
)
def clip_text_encode_sdxl(
    clip: ModelHandle = Socket(CLIP),
    width: int = Int(1024, **SIDE, tooltip="original width the model is told the image had"),
    height: int = Int(1024, **SIDE, tooltip="original height"),
    crop_w: int = Int(0, **SIDE, tooltip="left edge of the crop it is told was taken"),
    crop_h: int = Int(0, **SIDE, tooltip="top edge of that crop"),
    target_width: int = Int(1024, **SIDE, tooltip="width of the image to make"),
    target_height: int = Int(1024, **SIDE, tooltip="height of the image to make"),
    text_g: str = String("", multiline=True, tooltip="for OpenCLIP ViT-bigG (diffusers' prompt_2)"),
    text_l: str = String("", multiline=True, tooltip="for CLIP ViT-L (diffusers' prompt)"),
) -> tuple[Conditioning]:
    """ComfyUI's node: the sizes become SDXL's time ids (original (h, w), crop (top, left), target (h, w))."""
    embeddings, pooled = encode_sdxl(clip, text_l, text_g)
    sizes = SizeConditioning((height, width), (crop_h, crop_w), (target_height, target_width))
    return (Conditioning(embeddings, pooled, sizes),)
