"""The architecture of stabilityai/stable-diffusion-2-depth (its diffusers configs), for reading
single-file checkpoints, which carry weights but no configs, and the CLIP tokenizer they need."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path
from typing import Any

from engine.models.manager import ModelError
from engine.models.single_file import DepthModelConfigs
from engine.models.tiny import CONTEXT_LENGTH, _bytes_to_unicode

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

BPE_FILE = "bpe_simple_vocab_16e6.txt.gz"


def tokenizer_from_bpe(path: Path) -> Any:
    """OpenAI/OpenCLIP's CLIP tokenizer from its BPE merges file, padded with "!" as SD2's is."""
    from transformers import CLIPTokenizer

    with gzip.open(path, "rt", encoding="utf-8") as handle:
        lines = handle.read().split("\n")
    merges = [line for line in lines[1 : 49152 - 256 - 2 + 1] if line]
    characters = list(_bytes_to_unicode().values())
    tokens = characters + [character + "</w>" for character in characters]
    tokens += ["".join(merge.split()) for merge in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {token: index for index, token in enumerate(tokens)}
    return CLIPTokenizer(vocab=vocab, merges=merges, pad_token="!", model_max_length=CONTEXT_LENGTH)


def find_tokenizer(folder: Path) -> Any:
    """The CLIP tokenizer for a single-file checkpoint in `folder`: a diffusers `tokenizer/` folder
    there, else the BPE vocabulary inside an installed open_clip package."""
    from transformers import CLIPTokenizer

    if (folder / "tokenizer").is_dir():
        return CLIPTokenizer.from_pretrained(folder / "tokenizer")
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


def convert_checkpoint(path: Path, target: Path, configs: DepthModelConfigs | None = None) -> Path:
    """Write a single-file depth checkpoint as a diffusers-layout folder (safetensors weights)."""
    from diffusers import StableDiffusionDepth2ImgPipeline

    from engine.models.single_file import load_single_file
    from engine.models.tiny import build_tiny

    if target.exists() and any(target.iterdir()):
        raise ModelError(f"{target} is not empty; give a new folder to write the converted model into")
    components = load_single_file(path, configs or SD2_DEPTH)
    components["tokenizer"] = find_tokenizer(path.parent)
    components["scheduler"] = build_tiny("scheduler")  # SD2-depth's PNDM schedule
    components["feature_extractor"] = build_tiny("feature_extractor")  # its 384×384 DPT processor
    pipeline: Any = StableDiffusionDepth2ImgPipeline(**components)
    pipeline.save_pretrained(target)
    return target
