"""The architecture of stabilityai/stable-diffusion-2-depth (its diffusers configs), for reading
single-file checkpoints, which carry weights but no configs, and the CLIP tokenizer they need."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from .clip_tokenizer import CONTEXT_LENGTH, OpenClipTokenizer
from .common import ModelError
from .single_file import DepthModelConfigs

UNET: dict[str, Any] = {
    "act_fn": "silu",
    "attention_head_dim": [5, 10, 20, 20],
    "block_out_channels": [320, 640, 1280, 1280],
    "cross_attention_dim": 1024,
    "down_block_types": [
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "DownBlock2D",
    ],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 5,
    "out_channels": 4,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "sample_size": 64,
    "use_linear_projection": True,
}
VAE: dict[str, Any] = {
    "act_fn": "silu",
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "sample_size": 768,
    "scaling_factor": 0.18215,
}
TEXT_ENCODER: dict[str, Any] = {  # OpenCLIP ViT-H/14's text tower, up to its penultimate layer
    "vocab_size": 49408,
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_hidden_layers": 23,
    "num_attention_heads": 16,
    "max_position_embeddings": CONTEXT_LENGTH,
    "hidden_act": "gelu",
    "layer_norm_eps": 1e-05,
    "projection_dim": 512,
    "bos_token_id": 0,
    "eos_token_id": 2,
    "pad_token_id": 1,
}
DEPTH_ESTIMATOR: dict[str, Any] = {  # Intel's dpt-hybrid-midas, as MiDaS v3 ships it
    "is_hybrid": True,
    "image_size": 384,
    "patch_size": 16,
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "qkv_bias": True,
    "layer_norm_eps": 1e-12,
    "backbone_out_indices": [2, 5, 8, 11],
    "backbone_featmap_shape": [1, 1024, 24, 24],
    "neck_hidden_sizes": [256, 512, 768, 768],
    "neck_ignore_stages": [0, 1],
    "reassemble_factors": [4, 2, 1, 0.5],
    "fusion_hidden_size": 256,
    "readout_type": "project",
    "head_in_index": -1,
    "use_batch_norm_in_fusion_residual": False,
    "backbone_config": {
        "model_type": "bit",
        "layer_type": "bottleneck",
        "global_padding": "same",
        "embedding_dynamic_padding": True,
        "depths": [3, 4, 9],
        "hidden_sizes": [256, 512, 1024, 2048],
        "out_features": ["stage1", "stage2", "stage3"],
    },
}
SD2_DEPTH = DepthModelConfigs(unet=UNET, vae=VAE, text_encoder=TEXT_ENCODER, depth_estimator=DEPTH_ESTIMATOR)
# The schedule the model was trained with (v2-midas-inference.yaml: linear_start 0.00085, linear_end
# 0.012, 1000 steps, eps), as stabilityai/stable-diffusion-2-depth's scheduler_config.json gives it.
# Stability's samplers never clip the predicted image, nor use alpha 1 after the last step: without
# `clip_sample: false` diffusers' DDIM would clip to [-1, 1] and leave the original's path.
SCHEDULER: dict[str, Any] = {
    "_class_name": "PNDMScheduler",
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "trained_betas": None,
    "clip_sample": False,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "prediction_type": "epsilon",
}

BPE_FILE = "bpe_simple_vocab_16e6.txt.gz"


def tokenizer_from_bpe(path: Path) -> OpenClipTokenizer:
    """OpenAI/OpenCLIP's CLIP tokenizer from its BPE merges file, tokenizing exactly as OpenCLIP does."""
    return OpenClipTokenizer.from_bpe_file(path)


def find_tokenizer(folder: Path, pads_with_end: bool = False) -> OpenClipTokenizer:
    """The CLIP tokenizer for a single-file checkpoint in `folder`: the vocabulary of a diffusers
    `tokenizer/` folder there, else the BPE file inside an installed open_clip package (found without
    importing it: open_clip imports torchvision). Either way prompts tokenize as OpenCLIP does, as they
    did for the checkpoint's authors. Every family's CLIP shares that vocabulary; they differ in the
    padding: OpenCLIP's 0, or, for OpenAI's CLIP ViT-L (SD 1.x, SDXL's first encoder), the end id."""
    tokenizer = _find_vocabulary(folder)
    return tokenizer.padded_with_end() if pads_with_end else tokenizer


def _find_vocabulary(folder: Path) -> OpenClipTokenizer:
    if (folder / "tokenizer").is_dir():
        try:
            return OpenClipTokenizer.from_folder(folder / "tokenizer")
        except ValueError as error:
            raise ModelError(str(error)) from error
    spec = importlib.util.find_spec("open_clip")
    for location in (spec.submodule_search_locations or []) if spec else []:
        vocabulary = Path(location) / BPE_FILE
        if vocabulary.is_file():
            return tokenizer_from_bpe(vocabulary)
    raise ModelError(
        f"single-file checkpoints carry no tokenizer. Put the CLIP tokenizer in {folder / 'tokenizer'} "
        "(the tokenizer/ folder of stabilityai/stable-diffusion-2-depth), or install the package that "
        f"ships its vocabulary ({BPE_FILE}): pip install --no-deps open_clip_torch"
    )


def depth_image_processor(**settings: Any) -> Any:
    """The DPT image processor of SD2-depth: 384×384, bicubic, mean/std 0.5."""
    try:  # transformers >= 5 without torchvision: the Pillow backend, named explicitly
        from transformers import DPTImageProcessorPil as Processor
    except ImportError:
        from transformers import DPTImageProcessor as Processor  # type: ignore[assignment]
    from PIL import Image

    options: dict[str, Any] = {
        "do_resize": True,
        "size": {"height": 384, "width": 384},
        "keep_aspect_ratio": False,
        "ensure_multiple_of": 1,
        "resample": Image.Resampling.BICUBIC,
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
    }
    options.update(settings)
    return Processor(**options)
