"""Built-in tiny models of each family: `tiny-sd15`, `tiny-sd21`, `tiny-sd21-v` and `tiny-sdxl`, beside
SD2-depth's `tiny-random` (`engine.models.tiny`). Their images are noise.

Each is built in code from the same classes as the real model, with tiny widths and the real model's
structure where the single-file layout or the sampler can tell it apart: SD 1.x's UNet projects into
its transformers with 1×1 convolutions and its CLIP uses quick-GELU, SD 2.x's projects linearly and
its OpenCLIP tower has 23 layers (the file's 24th is the one SD 2 skips), SDXL has the `text_time`
size embedding, a CLIP and a wider OpenCLIP tower (32 layers, projected; diffusers' single-file loader
tells the two apart by width) whose penultimate layers are concatenated, and a VAE that scales
latents by 0.13025. Schedulers are the real models' own configs
(`family_configs`). Every component has its own seed: building one alone gives the weights it has
when all are built.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .families import SD1, SD2, SDXL, ModelInfo
from .family_configs import SD1_SCHEDULER, SD2_V_SCHEDULER, SDXL_SCHEDULER
from .sd2_depth import SCHEDULER as SD2_SCHEDULER
from .tiny import seeded, tiny_tokenizer, tiny_vae

TOKENIZER_SIZE = 514  # the byte-level tiny tokenizer: 512 byte pieces, start and end
TEXT_WIDTH = 32
# SDXL's second tower is wider than its first, as bigG (1280) is than ViT-L (768): diffusers' single-file
# loader tells the two apart by their width.
SDXL_SECOND_WIDTH = 48
TINY_INFOS = {
    "tiny-sd15": ModelInfo(SD1, "epsilon", False, "built in"),
    "tiny-sd21": ModelInfo(SD2, "epsilon", False, "built in"),
    "tiny-sd21-v": ModelInfo(SD2, "v_prediction", False, "built in"),
    "tiny-sdxl": ModelInfo(SDXL, "epsilon", False, "built in"),
}
SEEDS = {"tiny-sd15": 10, "tiny-sd21": 20, "tiny-sd21-v": 30, "tiny-sdxl": 40}
END_OF_TEXT = "<|endoftext|>"


def _text_config(layers: int, activation: str, width: int = TEXT_WIDTH) -> Any:
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=TOKENIZER_SIZE,
        hidden_size=width,
        intermediate_size=37,
        num_hidden_layers=layers,
        num_attention_heads=4,
        max_position_embeddings=77,
        hidden_act=activation,
        projection_dim=width,
        bos_token_id=TOKENIZER_SIZE - 2,
        eos_token_id=TOKENIZER_SIZE - 1,
        pad_token_id=0,
    )


def _text_encoder(seed: int, layers: int, activation: str, projected: bool = False) -> Any:
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    kind = CLIPTextModelWithProjection if projected else CLIPTextModel
    config = _text_config(layers, activation, SDXL_SECOND_WIDTH if projected else TEXT_WIDTH)
    return seeded(seed, lambda: kind(config).eval())


def _unet(seed: int, family: str) -> Any:
    from diffusers import UNet2DConditionModel

    options: dict[str, Any] = {
        "sample_size": 32,
        "in_channels": 4,
        "out_channels": 4,
        "layers_per_block": 2,
        "block_out_channels": (32, 64),
        "attention_head_dim": (2, 4),
    }
    if family == "sd1":  # attention in the first (highest-resolution) block, as SD 1.x has it
        options.update(
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
            cross_attention_dim=TEXT_WIDTH,
            use_linear_projection=False,
        )
    elif family == "sd2":
        options.update(
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
            cross_attention_dim=TEXT_WIDTH,
            use_linear_projection=True,
        )
    else:  # SDXL: no attention in the first block, deeper transformers below, size embedding
        options.update(
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            cross_attention_dim=TEXT_WIDTH + SDXL_SECOND_WIDTH,
            use_linear_projection=True,
            transformer_layers_per_block=(1, 2),
            addition_embed_type="text_time",
            addition_time_embed_dim=8,
            projection_class_embeddings_input_dim=6 * 8 + SDXL_SECOND_WIDTH,  # 6 size numbers, pooled text
        )
    return seeded(seed, lambda: UNet2DConditionModel(**options))


def _scheduler(config: dict[str, Any]) -> Any:
    import diffusers

    return getattr(diffusers, config["_class_name"]).from_config(config)


def tiny_family_builders(name: str) -> dict[str, Callable[[], Any]]:
    """How to build each component of the built-in tiny model `name`."""
    seed = SEEDS[name]
    family = TINY_INFOS[name].family.key
    if family == "sd1":
        return {
            "unet": lambda: _unet(seed, "sd1"),
            "vae": lambda: tiny_vae(seed + 1),
            "text_encoder": lambda: _text_encoder(seed + 2, 5, "quick_gelu"),
            "tokenizer": lambda: tiny_tokenizer(END_OF_TEXT),
            "scheduler": lambda: _scheduler(SD1_SCHEDULER),
        }
    if family == "sd2":
        schedule = SD2_V_SCHEDULER if name.endswith("-v") else SD2_SCHEDULER
        return {
            "unet": lambda: _unet(seed, "sd2"),
            "vae": lambda: tiny_vae(seed + 1),
            "text_encoder": lambda: _text_encoder(seed + 2, 23, "gelu"),
            "tokenizer": tiny_tokenizer,
            "scheduler": lambda: _scheduler(schedule),
        }
    return {
        "unet": lambda: _unet(seed, "sdxl"),
        "vae": lambda: tiny_vae(seed + 1, scaling_factor=0.13025, force_upcast=True),
        "text_encoder": lambda: _text_encoder(seed + 2, 5, "quick_gelu"),
        "text_encoder_2": lambda: _text_encoder(seed + 3, 32, "gelu", projected=True),
        "tokenizer": lambda: tiny_tokenizer(END_OF_TEXT),
        "tokenizer_2": tiny_tokenizer,
        "scheduler": lambda: _scheduler(SDXL_SCHEDULER),
    }


def build_tiny_family(name: str, component: str) -> Any:
    """One component of the built-in tiny model `name`, built fresh (same weights every time)."""
    return tiny_family_builders(name)[component]()
