"""Text encoding: a prompt (or a negative prompt) to CLIP embeddings."""

from __future__ import annotations

import logging
from typing import Any

import torch
from depthgraph.engine.core.registry import Output, Socket, String, node
from depthgraph.engine.core.sockets import CLIP, CONDITIONING
from depthgraph.engine.models.clip_tokenizer import OpenClipTokenizer
from depthgraph.engine.models.manager import ModelHandle

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


def encode_text(clip: ModelHandle, text: str) -> torch.Tensor:
    """Token ids padded to the tokenizer's length (77), through the text encoder: [1, 77, width].
    Longer prompts are cut at 77 tokens with a warning, as diffusers does."""
    encoder = clip.get("text_encoder")
    ids, dropped = token_ids(clip.get("tokenizer"), text)
    if dropped is not None:
        log.warning("the prompt is longer than %d tokens; this part was cut: %r", ids.shape[-1], dropped)
    with torch.inference_mode():
        embeddings = encoder(ids.to(encoder.device))[0]
    return embeddings.to(dtype=encoder.dtype)


@node(
    "CLIPTextEncode",
    display_name="Encode Prompt",
    category="conditioning",
    description="Encodes a prompt (or a negative prompt) for the sampler; past 77 tokens it is cut.",
    outputs=[Output(CONDITIONING)],
)
def clip_text_encode(
    text: str = String("", multiline=True), clip: ModelHandle = Socket(CLIP)
) -> tuple[torch.Tensor]:
    return (encode_text(clip, text),)
