"""Depth-to-image through the graph engine vs diffusers' StableDiffusionDepth2ImgPipeline, on the very
same components, alternating in one process; prints both medians and the ratio graph/diffusers.

    python benchmarks/depth2img.py                      # CPU, tiny-random, 256×256, 20 steps
    python benchmarks/depth2img.py --size 512 --steps 50 --full-size --device cuda   # on a GPU

`--full-size` builds the real SD2-depth architecture (UNet 320/640/1280/1280, OpenCLIP-H text tower,
DPT-hybrid) with random weights: timing needs no trained weights. Models are warm (loaded once);
the graph's result cache is cleared before each of its runs, so both sides do all the work.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import torch
from diffusers import StableDiffusionDepth2ImgPipeline
from PIL import Image

from engine.config import Settings
from engine.models.manager import COMPONENTS
from engine.models.tiny import build_tiny
from engine.runtime import Engine

PROMPT = "photo of two men wrestling, detailed, sharp focus"


def full_size_components() -> dict[str, Any]:
    """SD2-depth's architecture (the configs single-file checkpoints are read with), random weights."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, DPTConfig, DPTForDepthEstimation

    from engine.models.sd2_depth import SD2_DEPTH

    return {
        "unet": UNet2DConditionModel.from_config(SD2_DEPTH.unet),
        "vae": AutoencoderKL.from_config(SD2_DEPTH.vae),
        "text_encoder": CLIPTextModel(CLIPTextConfig(**SD2_DEPTH.text_encoder)),
        "tokenizer": build_tiny("tokenizer"),  # byte-level: no vocabulary file needed to time
        "scheduler": build_tiny("scheduler"),
        "depth_estimator": DPTForDepthEstimation(DPTConfig(**SD2_DEPTH.depth_estimator)),
        "feature_extractor": build_tiny("feature_extractor"),
    }


def graph(size: int, steps: int) -> dict[str, Any]:
    return {
        "1": {"class_type": "CheckpointLoader", "inputs": {"ckpt_name": "bench"}},
        "2": {"class_type": "LoadImage", "inputs": {"image": "bench.png"}},
        "3": {"class_type": "DepthEstimate", "inputs": {"depth_model": ["1", 3], "image": ["2", 0]}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"text": PROMPT, "clip": ["1", 1]}},
        "5": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["1", 1]}},
        "6": {"class_type": "VAEEncode", "inputs": {"pixels": ["2", 0], "vae": ["1", 2]}},
        "7": {
            "class_type": "NoiseLatent",
            "inputs": {
                "model": ["1", 0],
                "latent": ["6", 0],
                "seed": 0,
                "strength": 1.0,
                "steps": steps,
                "scheduler": "pndm",
            },
        },
        "8": {
            "class_type": "DepthSampler",
            "inputs": {
                "model": ["1", 0],
                "positive": ["4", 0],
                "negative": ["5", 0],
                "depth": ["3", 0],
                "latent_image": ["7", 0],
                "cfg": 7.5,
            },
        },
        "9": {"class_type": "VAEDecode", "inputs": {"samples": ["8", 0], "vae": ["1", 2]}},
        "10": {"class_type": "PreviewImage", "inputs": {"images": ["9", 0]}},
    }


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--full-size", action="store_true", help="the real architecture, random weights")
    parser.add_argument("--workdir", type=Path, default=Path("benchmarks/.work"), help="model, input, output")
    args = parser.parse_args()

    work = args.workdir
    (work / "input").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 255, (args.size, args.size, 3), dtype=np.uint8))
    photo.save(work / "input" / "bench.png")

    settings = Settings.under(work, device=args.device)
    folder = settings.models_dir / "bench"
    if not (folder / "model_index.json").is_file():  # both sides load this one folder
        components = (
            full_size_components() if args.full_size else {name: build_tiny(name) for name in COMPONENTS}
        )
        StableDiffusionDepth2ImgPipeline(**components).save_pretrained(folder)
    engine = Engine(settings)
    dtype = engine.models.dtype
    pipeline = StableDiffusionDepth2ImgPipeline.from_pretrained(folder, torch_dtype=dtype).to(args.device)
    pipeline.depth_estimator.to(torch.float32)
    pipeline.set_progress_bar_config(disable=True)
    prompt = graph(args.size, args.steps)

    def run_graph() -> None:
        engine.cache.clear()
        result = engine.run(prompt)
        assert result.status == "success", result.error

    def run_diffusers() -> None:
        pipeline(
            PROMPT,
            image=photo,
            strength=1.0,
            num_inference_steps=args.steps,
            guidance_scale=7.5,
            generator=torch.Generator().manual_seed(0),
            output_type="pil",
        )

    run_graph()  # warm-up: first calls pay for lazy imports and allocator growth
    run_diffusers()
    times: dict[str, list[float]] = {"graph": [], "diffusers": []}
    for _ in range(args.repeats):
        for name, function in (("diffusers", run_diffusers), ("graph", run_graph)):
            synchronize(args.device)
            started = time.perf_counter()
            function()
            synchronize(args.device)
            times[name].append(time.perf_counter() - started)
    model = "full-size SD2-depth (random weights)" if args.full_size else "tiny-random"
    print(f"{model}, {args.device}, {args.size}x{args.size}, {args.steps} steps, strength 1.0, cfg 7.5")
    for name, samples in times.items():
        each = ", ".join(f"{sample:.3f}" for sample in samples)
        print(f"  {name:<10} median {statistics.median(samples):.3f} s  ({each})")
    ratio = statistics.median(times["graph"]) / statistics.median(times["diffusers"])
    print(f"  ratio graph/diffusers: {ratio:.3f}")


if __name__ == "__main__":
    main()
