"""What the parity tests against diffusers' pipelines share: the test photo, and a node that keeps the
decoded image before any quantisation (so pixels compare as the pipelines return them)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from depthgraph.engine.core.registry import Input, NodeOutput, node
from depthgraph.engine.core.sockets import IMAGE
from PIL import Image

KEPT: dict[str, torch.Tensor] = {}


@node(
    "KeepImage",
    category="test",
    description="Keeps the decoded image, before any quantisation.",
    inputs=[Input.socket("image", IMAGE)],
    output_node=True,
)
def keep_image(image: torch.Tensor) -> NodeOutput:
    KEPT["image"] = image
    return NodeOutput((), {"kept": [list(image.shape)]})


def write_photo(input_dir: Path, name: str = "photo.png") -> Image.Image:
    """A 64×64 photo with structure (two gradients) and detail (noise), saved in `input_dir`."""
    input_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    gradient = np.linspace(0, 255, 64, dtype=np.float32)
    pixels = np.stack(
        [
            np.add.outer(gradient, gradient) / 2,
            np.add.outer(gradient, -gradient) / 2 + 128,
            rng.uniform(0, 255, (64, 64)),
        ],
        -1,
    )
    photo = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    photo.save(input_dir / name)
    return photo
