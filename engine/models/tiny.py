"""The embedded `tiny-random` model: every SD2-depth component, same classes as the real model, built
in code from small configs with fixed seeds. No files, no downloads — and its images are noise.

It exists so every graph runs anywhere and the tests exercise the real code paths (5-channel UNet,
VAE with the real 8× down-scaling, CLIP text model and tokenizer, PNDM scheduler, DPT-hybrid depth
estimator with its 384×384 image processor). Each component has its own seed, so building one alone
gives the same weights as building all of them.
"""

from __future__ import annotations

from typing import Any

from .clip_tokenizer import CONTEXT_LENGTH, bytes_to_unicode
from .sd2_depth import SCHEDULER, depth_image_processor

TINY_MODEL = "tiny-random"
TINY_DESCRIPTION = "tiny-random: built-in test model with random weights (its images are noise)"


def tiny_tokenizer(pad_token: str = "!") -> Any:
    """A byte-level CLIPTokenizer: every byte is a token (with and without the end-of-word mark),
    no merges. Pads with "!" (id 0), as the SD2 tokenizer does (SD 1.x's pads with its end token)."""
    from transformers import CLIPTokenizer

    characters = list(bytes_to_unicode().values())
    tokens = characters + [character + "</w>" for character in characters]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {token: index for index, token in enumerate(tokens)}
    return CLIPTokenizer(vocab=vocab, merges=[], pad_token=pad_token, model_max_length=CONTEXT_LENGTH)


def seeded(seed: int, build: Any) -> Any:
    """`build()` with torch's random generator seeded, leaving the caller's stream untouched."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def tiny_unet() -> Any:
    from diffusers import UNet2DConditionModel

    return seeded(
        1,
        lambda: UNet2DConditionModel(
            sample_size=32,
            in_channels=5,  # 4 latent channels + 1 depth channel, as in SD2-depth
            out_channels=4,
            layers_per_block=2,
            block_out_channels=(32, 64),
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            cross_attention_dim=32,
            attention_head_dim=(2, 4),
            use_linear_projection=True,
        ),
    )


def tiny_vae(seed: int = 2, scaling_factor: float = 0.18215, **options: Any) -> Any:
    from diffusers import AutoencoderKL

    return seeded(
        seed,
        lambda: AutoencoderKL(
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            block_out_channels=(32, 32, 32, 32),  # four blocks: latents are 1/8 of the image, as for real
            layers_per_block=1,
            latent_channels=4,
            norm_num_groups=16,
            sample_size=64,
            scaling_factor=scaling_factor,
            **options,
        ),
    )


def tiny_text_encoder() -> Any:
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer_size = 514
    config = CLIPTextConfig(
        vocab_size=tokenizer_size,
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=5,
        num_attention_heads=4,
        max_position_embeddings=CONTEXT_LENGTH,
        hidden_act="gelu",
        projection_dim=32,
        bos_token_id=tokenizer_size - 2,
        eos_token_id=tokenizer_size - 1,
        pad_token_id=0,
    )
    return seeded(3, lambda: CLIPTextModel(config).eval())


def tiny_depth_estimator() -> Any:
    from transformers import DPTConfig, DPTForDepthEstimation

    backbone = {
        "global_padding": "same",
        "layer_type": "bottleneck",
        "depths": [1, 1, 1],
        "out_features": ["stage1", "stage2", "stage3"],
        "embedding_dynamic_padding": True,
        "hidden_sizes": [8, 16, 32, 64],
        "num_groups": 2,
    }
    config = DPTConfig(
        image_size=384,
        patch_size=16,
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=37,
        is_hybrid=True,
        backbone_out_indices=(0, 1, 2, 3),
        backbone_config=backbone,
        backbone_featmap_shape=[1, 32, 24, 24],
        neck_hidden_sizes=[8, 16, 32, 32],
        fusion_hidden_size=16,
    )
    return seeded(4, lambda: DPTForDepthEstimation(config).eval())


def tiny_scheduler() -> Any:
    """SD2-depth's own schedule (`engine.models.sd2_depth.SCHEDULER`): the tiny model samples as the
    real one does."""
    from diffusers import PNDMScheduler

    return PNDMScheduler.from_config(SCHEDULER)


BUILDERS = {
    "unet": tiny_unet,
    "vae": tiny_vae,
    "text_encoder": tiny_text_encoder,
    "tokenizer": tiny_tokenizer,
    "scheduler": tiny_scheduler,
    "depth_estimator": tiny_depth_estimator,
    "feature_extractor": depth_image_processor,
}


def build_tiny(component: str) -> Any:
    """One component of the tiny model, built fresh (same weights every time)."""
    return BUILDERS[component]()
