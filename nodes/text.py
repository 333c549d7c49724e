"""Text encoding: a prompt (or a negative prompt) to CLIP embeddings."""

from __future__ import annotations

import logging

import torch

from engine.models.manager import ModelHandle
from engine.registry import Input, Output, node
from engine.sockets import CLIP, CONDITIONING

log = logging.getLogger("depthgraph.nodes.text")


def encode_text(clip: ModelHandle, text: str) -> torch.Tensor:
    """Token ids padded to the tokenizer's length (77), through the text encoder: [1, 77, width].
    Longer prompts are cut at 77 tokens with a warning, as diffusers does."""
    tokenizer = clip.get("tokenizer")
    encoder = clip.get("text_encoder")
    length = tokenizer.model_max_length
    ids = tokenizer(
        text, padding="max_length", max_length=length, truncation=True, return_tensors="pt"
    ).input_ids
    full = tokenizer(text, padding="longest", return_tensors="pt").input_ids
    if full.shape[-1] > ids.shape[-1]:
        dropped = tokenizer.batch_decode(full[:, length - 1 : -1])[0]
        log.warning("the prompt is longer than %d tokens; this part was cut: %r", length, dropped)
    with torch.inference_mode():
        embeddings = encoder(ids.to(encoder.device))[0]
    return embeddings.to(dtype=encoder.dtype)


@node(
    "CLIPTextEncode",
    display_name="Encode Prompt",
    category="conditioning",
    description="Encodes a prompt (or a negative prompt) for the sampler; past 77 tokens it is cut.",
    inputs=[Input.string("text", "", multiline=True), Input.socket("clip", CLIP)],
    outputs=[Output(CONDITIONING)],
)
def clip_text_encode(text: str, clip: ModelHandle) -> tuple[torch.Tensor]:
    return (encode_text(clip, text),)
