"""The built-in tiny ControlNets: `tiny-controlnet-sd15`, `tiny-controlnet-sd21` and
`tiny-controlnet-sdxl`, one for each built-in tiny model of a 4-channel family (`tiny_families`).

Each is diffusers' `ControlNetModel`, the encoder half of its family's tiny UNet (the same blocks,
widths and text width, so its residuals fit that UNet), with the real ControlNets' head rule (8 heads
for SD 1.x, 64-wide heads, at least one, for SD 2.x and SDXL) and a 4-stage control-image embedding as
theirs. A new ControlNet's output convolutions start at zero (it adds nothing until trained); these
are drawn at random instead, so a control image visibly steers the tiny models' (noise) pictures.
"""

from __future__ import annotations

from typing import Any

from .families import SD1, SD2, SDXL, Family
from .tiny import seeded
from .tiny_families import SDXL_SECOND_WIDTH, TEXT_WIDTH

TINY_DESCRIPTION = "built-in test ControlNet with random weights"
TINY_CONTROLNETS: dict[str, Family] = {
    "tiny-controlnet-sd15": SD1,
    "tiny-controlnet-sd21": SD2,
    "tiny-controlnet-sdxl": SDXL,
}
SEEDS = {"tiny-controlnet-sd15": 50, "tiny-controlnet-sd21": 60, "tiny-controlnet-sdxl": 70}


def tiny_controlnet_config(family: Family) -> dict[str, Any]:
    """The config of the tiny ControlNet for `family` (its tiny UNet's encoder half)."""
    config: dict[str, Any] = {
        "in_channels": 4,
        "conditioning_channels": 3,
        "block_out_channels": [32, 64],
        "layers_per_block": 2,
        "conditioning_embedding_out_channels": [8, 8, 16, 16],
    }
    if family is SDXL:
        config.update(
            down_block_types=["DownBlock2D", "CrossAttnDownBlock2D"],
            cross_attention_dim=TEXT_WIDTH + SDXL_SECOND_WIDTH,
            use_linear_projection=True,
            transformer_layers_per_block=[1, 2],
            attention_head_dim=[1, 1],
            addition_embed_type="text_time",
            addition_time_embed_dim=8,
            projection_class_embeddings_input_dim=6 * 8 + SDXL_SECOND_WIDTH,
        )
    else:
        config.update(
            down_block_types=["CrossAttnDownBlock2D", "DownBlock2D"],
            cross_attention_dim=TEXT_WIDTH,
            use_linear_projection=family is SD2,
            attention_head_dim=8 if family is SD1 else [1, 1],
        )
    return config


def build_tiny_controlnet(name: str) -> Any:
    """The built-in tiny ControlNet `name`, built fresh (the same weights every time)."""
    from diffusers import ControlNetModel

    def build() -> Any:
        model: Any = ControlNetModel(**tiny_controlnet_config(TINY_CONTROLNETS[name]))
        for convolution in (*model.controlnet_down_blocks, model.controlnet_mid_block):
            convolution.reset_parameters()  # drawn, not zero: see the module docstring
        return model.eval()

    return seeded(SEEDS[name], build)
