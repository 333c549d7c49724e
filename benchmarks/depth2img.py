"""Depth-to-image through the graph engine vs diffusers' StableDiffusionDepth2ImgPipeline, and plain
image-to-image vs StableDiffusionImg2ImgPipeline, on the very same components and settings,
alternating in one process.

    python benchmarks/depth2img.py                         # CPU: tiny-random, 256×256, 20 steps
    python benchmarks/depth2img.py --device cuda           # GPU: full size, 512x1, 768x1, 512x4, 50 steps
    python benchmarks/depth2img.py --device cuda --no-compile   # the engine without torch.compile
    python benchmarks/depth2img.py --compile --cases 64x1 --steps 10   # compiling on a CPU
    python benchmarks/depth2img.py --device cuda --low-memory   # the engine alone, low-memory mode
    python benchmarks/depth2img.py --tasks img2img         # image-to-image only (default: all tasks)
    python benchmarks/depth2img.py --tasks controlnet      # image-to-image under a depth ControlNet

Every case (`--cases 512x1,768x1,512x4`: image size x batch) runs strength 1.0, guidance 7.5, the
PNDM scheduler, one prompt. (a) diffusers' pipeline as its documentation loads it,
`from_pretrained(folder, torch_dtype=dtype).to(device)`: SDPA attention, its depth estimator in the
pipeline's dtype under autocast. (b) the depth-to-image graph through the engine with its default
acceleration (on CUDA: compiled UNet and VAE decoder, CUDA graphs, channels-last, fused QKV); a batch
repeats the encoded image with RepeatLatentBatch, as diffusers' `num_images_per_prompt` does. The
img2img task (`--tasks`) runs the same cases on an SD 2.x base model (`tiny-sd21`'s weights, or the
full-size SD 2.x architecture with random weights) through the Sampler node, against
StableDiffusionImg2ImgPipeline; the controlnet task runs them on SD 1.5 (`tiny-sd15` with
`tiny-controlnet-sd15`, or SD 1.5's full-size UNet with a ControlNet made from it) with the photo as
control image, through ControlNetApply and Sampler, against StableDiffusionControlNetImg2ImgPipeline.

`--full-size` (the default on CUDA) builds the real SD2-depth architecture (UNet 320/640/1280/1280,
OpenCLIP-H text tower, DPT-hybrid) with random weights: timing needs no trained weights. Both sides
load the one saved folder under `--workdir`; their models stay warm between runs.

Measured per case: one warm-up run of each side first (the engine's pays for compiling and
recording CUDA graphs; it is shown as "first s"), then `--repeats` runs of each side, alternating,
between device synchronisations; medians and the ratio engine/diffusers (target on CUDA <= 0.6, on a
CPU <= 1.05). The engine's result cache is cleared before each of its runs, so it does all the work.
Peak memory (CUDA) per side: the bytes of its own weights (UNet, VAE, text encoder, depth estimator)
+ the most a timed run allocated above what was allocated just before it + for the engine the memory pool
its CUDA graphs keep reserved. The engine's sampling loop (`nodes.sampling.sample`) is timed on its
own (CUDA events); its UNet calls are counted from the sampler's progress events, and its FLOPs per
guided step (one UNet forward at batch 2·batch) are counted with torch's FlopCounterMode on a copy of
the architecture on the meta device (nominal: 1.61 TFLOP at 512², 4.30 at 768², per image). The
loop's achieved TFLOP/s is compared with the device's measured dense matmul rate (8192² in the
dtype on CUDA, 2048² float32 on a CPU); target 35 %.

`--low-memory` runs the engine alone in its low-memory mode (only the component in use on the GPU,
tiled VAE, nothing compiled) at 512² and 1024² (or `--cases`), once each, and prints each run's peak
memory and whether it stayed under 4 GiB.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import torch
from depthgraph.engine.app.config import Settings
from depthgraph.engine.app.engine import Engine
from depthgraph.engine.core.events import Progress
from depthgraph.engine.models.manager import COMPONENTS, WEIGHTED
from depthgraph.engine.models.tiny import BUILDERS, build_tiny
from diffusers import (
    StableDiffusionControlNetImg2ImgPipeline,
    StableDiffusionDepth2ImgPipeline,
    StableDiffusionImg2ImgPipeline,
)
from PIL import Image

from benchmarks.gpu_figures import (
    GIB,
    LoopClock,
    Measured,
    gib,
    graph_pool_bytes,
    matmul_tflops,
    measure,
    process_peaks,
    reset_process_peaks,
    timing_sampling_loop,
    unet_flops,
    weight_bytes,
)

PROMPT = "photo of two men wrestling, detailed, sharp focus"
STRENGTH = 1.0
GUIDANCE = 7.5
SAMPLER_NODE = "8"
NOMINAL_TFLOP = {512: 1.61, 768: 4.30}  # per guided step (UNet at batch 2) for one image, full size
RATIO_TARGET = {"cuda": 0.6, "cpu": 1.05}
MATMUL_SHARE_TARGET = 0.35
LOW_MEMORY_LIMIT = 4 * GIB
WEIGHTED_COMPONENTS = tuple(name for name in COMPONENTS if name in WEIGHTED)
TASKS = ("depth2img", "img2img", "controlnet")
PIPELINES: dict[str, Any] = {
    "depth2img": StableDiffusionDepth2ImgPipeline,
    "img2img": StableDiffusionImg2ImgPipeline,
    "controlnet": StableDiffusionControlNetImg2ImgPipeline,
}


@dataclass(frozen=True)
class Case:
    """One benchmark case: a square image size and a batch."""

    size: int
    batch: int

    @property
    def label(self) -> str:
        return f"{self.size}x{self.batch}"


def parse_cases(text: str) -> list[Case]:
    """Cases from "512x1,768x1,512x4" (size x batch)."""
    cases = []
    for item in text.split(","):
        size, _, batch = item.strip().partition("x")
        if not size.isdigit() or not (batch or "1").isdigit() or int(size) % 8:
            raise argparse.ArgumentTypeError(f"case {item!r} is not SIZExBATCH with a size divisible by 8")
        cases.append(Case(int(size), int(batch or 1)))
    return cases


def full_size_components() -> dict[str, Any]:
    """SD2-depth's architecture (the configs single-file checkpoints are read with), random weights."""
    from depthgraph.engine.models.sd2_depth import SD2_DEPTH
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, DPTConfig, DPTForDepthEstimation

    return {
        "unet": UNet2DConditionModel.from_config(SD2_DEPTH.unet),
        "vae": AutoencoderKL.from_config(SD2_DEPTH.vae),
        "text_encoder": CLIPTextModel(CLIPTextConfig(**SD2_DEPTH.text_encoder)),
        "tokenizer": build_tiny("tokenizer"),  # byte-level: no vocabulary file needed to time
        "scheduler": build_tiny("scheduler"),
        "depth_estimator": DPTForDepthEstimation(DPTConfig(**SD2_DEPTH.depth_estimator)),
        "feature_extractor": build_tiny("feature_extractor"),
    }


def img2img_components(full_size: bool, task: str = "img2img") -> dict[str, Any]:
    """SD 2.x base (img2img) or SD 1.5 with a ControlNet (controlnet): the full-size architecture with
    random weights, or the tiny built-ins' parts."""
    from depthgraph.engine.models.family_configs import SD1_CONFIGS, SD2_CONFIGS
    from depthgraph.engine.models.tiny_controlnets import build_tiny_controlnet
    from depthgraph.engine.models.tiny_families import tiny_family_builders

    controlled = task == "controlnet"
    parts = {
        part: build()
        for part, build in tiny_family_builders("tiny-sd15" if controlled else "tiny-sd21").items()
    }
    if full_size:
        from diffusers import AutoencoderKL, UNet2DConditionModel
        from transformers import CLIPTextConfig, CLIPTextModel

        configs = SD1_CONFIGS if controlled else SD2_CONFIGS
        parts["unet"] = UNet2DConditionModel.from_config(configs.unet)
        parts["vae"] = AutoencoderKL.from_config(configs.vae)
        parts["text_encoder"] = CLIPTextModel(CLIPTextConfig(**configs.text_encoder))
    if controlled:
        from diffusers import ControlNetModel

        full = full_size and ControlNetModel.from_unet(parts["unet"])
        parts["controlnet"] = full or build_tiny_controlnet("tiny-controlnet-sd15")
    return {**parts, "safety_checker": None, "feature_extractor": None, "requires_safety_checker": False}


def saved_model(models_dir: Path, full_size: bool, task: str = "depth2img") -> str:
    """The name of the model folder both sides load, saved on first use."""
    name = "bench-full" if full_size else "bench-tiny"
    if task != "depth2img":
        name = f"bench-{task}-{'full' if full_size else 'tiny'}"
    folder = models_dir / name
    if not (folder / "model_index.json").is_file():
        if task != "depth2img":
            pipeline = PIPELINES[task](**img2img_components(full_size, task))
            pipeline.save_pretrained(folder)
            if task == "controlnet":  # where ControlNetLoader finds it
                pipeline.controlnet.save_pretrained(models_dir / "controlnet" / name)
        else:
            components = (
                full_size_components() if full_size else {part: build_tiny(part) for part in BUILDERS}
            )
            StableDiffusionDepth2ImgPipeline(**components).save_pretrained(folder)
    return name


def input_photo(input_dir: Path, size: int) -> tuple[str, Image.Image]:
    """A random size×size photo saved in the input folder: its file name and the image."""
    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8))
    name = f"bench-{size}.png"
    photo.save(input_dir / name)
    return name, photo


def graph(model: str, image: str, batch: int, steps: int, task: str = "depth2img") -> dict[str, Any]:
    """The depth-to-image graph (or, for img2img, the same without depth through Sampler); a batch
    repeats the encoded image before it is noised."""
    latent: list[Any] = ["6", 0]
    prompt: dict[str, Any] = {
        "1": {"class_type": "CheckpointLoader", "inputs": {"ckpt_name": model}},
        "2": {"class_type": "LoadImage", "inputs": {"image": image}},
        "3": {"class_type": "DepthEstimate", "inputs": {"depth_model": ["1", 3], "image": ["2", 0]}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"text": PROMPT, "clip": ["1", 1]}},
        "5": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["1", 1]}},
        "6": {"class_type": "VAEEncode", "inputs": {"pixels": ["2", 0], "vae": ["1", 2]}},
    }
    if batch > 1:
        prompt["11"] = {"class_type": "RepeatLatentBatch", "inputs": {"samples": latent, "amount": batch}}
        latent = ["11", 0]
    noise = {"model": ["1", 0], "latent": latent, "seed": 0, "strength": STRENGTH, "steps": steps}
    prompt["7"] = {"class_type": "NoiseLatent", "inputs": {**noise, "scheduler": "pndm"}}
    prompt[SAMPLER_NODE] = {
        "class_type": "DepthSampler",
        "inputs": {
            "model": ["1", 0],
            "positive": ["4", 0],
            "negative": ["5", 0],
            "depth": ["3", 0],
            "latent_image": ["7", 0],
            "cfg": GUIDANCE,
        },
    }
    if task != "depth2img":
        del prompt["3"], prompt[SAMPLER_NODE]["inputs"]["depth"]
        prompt[SAMPLER_NODE]["class_type"] = "Sampler"
    if task == "controlnet":  # the photo as control image, on both prompts
        prompt["12"] = {"class_type": "ControlNetLoader", "inputs": {"control_net_name": model}}
        prompt["13"] = {
            "class_type": "ControlNetApply",
            "inputs": {
                "positive": ["4", 0],
                "negative": ["5", 0],
                "control_net": ["12", 0],
                "image": ["2", 0],
            },
        }
        prompt[SAMPLER_NODE]["inputs"].update(positive=["13", 0], negative=["13", 1])
    prompt["9"] = {"class_type": "VAEDecode", "inputs": {"samples": [SAMPLER_NODE, 0], "vae": ["1", 2]}}
    prompt["10"] = {"class_type": "PreviewImage", "inputs": {"images": ["9", 0]}}
    return prompt


class Side(Protocol):
    """One side of the comparison: `prepare` before a run (not timed), then `run`."""

    def prepare(self) -> None: ...

    def run(self) -> None: ...


class EngineSide:
    """The graph through the engine; counts the sampler's steps (UNet calls) of each run."""

    def __init__(
        self, engine: Engine, model: str, image: str, case: Case, steps: int, task: str = "depth2img"
    ) -> None:
        self.engine = engine
        self.prompt = graph(model, image, case.batch, steps, task)
        self.unet_calls = 0

    def prepare(self) -> None:
        self.engine.cache.clear()  # so the run does all the work
        self.unet_calls = 0

    def run(self) -> None:
        result = self.engine.run(self.prompt, on_event=self._count)
        assert result.status == "success", result.error

    def _count(self, event: Any) -> None:
        if isinstance(event, Progress) and event.node_id == SAMPLER_NODE:
            self.unet_calls += 1


class DiffusersSide:
    """diffusers' pipeline, called as its documentation shows."""

    def __init__(self, pipeline: Any, photo: Image.Image, case: Case, steps: int) -> None:
        self.pipeline = pipeline
        self.photo = photo
        self.case = case
        self.steps = steps

    def prepare(self) -> None:
        pass

    def run(self) -> None:
        self.pipeline(
            PROMPT,
            image=self.photo,
            strength=STRENGTH,
            num_inference_steps=self.steps,
            guidance_scale=GUIDANCE,
            num_images_per_prompt=self.case.batch,
            **({"control_image": self.photo} if hasattr(self.pipeline, "controlnet") else {}),
            generator=torch.Generator().manual_seed(0),
            output_type="pil",
        )


@dataclass
class Figures:
    """What one side measured in one case."""

    first: Measured
    runs: list[Measured] = field(default_factory=list)
    loops: list[float] = field(default_factory=list)  # seconds of the engine's sampling loop per run
    held_bytes: int | None = None  # weights (and graph pool) it keeps on the device

    @property
    def median(self) -> float:
        return statistics.median(run.seconds for run in self.runs)

    @property
    def peak_bytes(self) -> int | None:
        peaks = [run.peak_bytes for run in self.runs if run.peak_bytes is not None]
        if self.held_bytes is None or not peaks:
            return None
        return self.held_bytes + max(peaks)


def flops_per_step(engine: Engine, model: str, case: Case) -> int:
    """FLOPs of one guided step (one UNet forward on 2·batch latents) at the case's size."""
    unet = engine.models.load(model, "unet")
    vae = engine.models.load(model, "vae")
    tokens = int(engine.models.load(model, "tokenizer").model_max_length)
    scale = 2 ** (len(vae.config.block_out_channels) - 1)
    latent = (case.size // scale, case.size // scale)
    return unet_flops(unet.config, 2 * case.batch, latent, tokens)


def run_case(
    case: Case,
    engine_side: EngineSide,
    diffusers_side: DiffusersSide,
    repeats: int,
    device: str,
    clock: LoopClock,
) -> dict[str, Figures]:
    """Warm both sides up, then alternate `repeats` timed runs of each."""
    sides: dict[str, Side] = {"engine": engine_side, "diffusers": diffusers_side}
    figures: dict[str, Figures] = {}
    for name in ("engine", "diffusers"):
        sides[name].prepare()
        figures[name] = Figures(first=measure(sides[name].run, device))
    clock.take()
    for _ in range(repeats):
        for name in ("diffusers", "engine"):
            sides[name].prepare()
            figures[name].runs.append(measure(sides[name].run, device))
        figures["engine"].loops.append(clock.take())
    return figures


def weighted_parts(engine: Engine, model: str) -> list[str]:
    """The weighted components the model has (a plain SD model has no depth estimator)."""
    return [part for part in WEIGHTED_COMPONENTS if part in engine.models.info(model).components()]


def engine_weights(engine: Engine, model: str) -> int:
    return weight_bytes(engine.models.load(model, part) for part in weighted_parts(engine, model))


def pipeline_weights(pipeline: Any, parts: list[str]) -> int:
    return weight_bytes(getattr(pipeline, part) for part in parts)


HEADER = (
    f"{'case':<8} {'side':<10} {'first s':>8} {'median s':>9}  {'runs (s)':<22} {'peak GiB':>8} "
    f"{'loop s':>8} {'loop TFLOP/s':>12} {'% of matmul':>11}"
)


def side_row(case: Case, name: str, figures: Figures, loop: tuple[str, str, str]) -> str:
    runs = ", ".join(f"{run.seconds:.3f}" for run in figures.runs)
    return (
        f"{case.label:<8} {name:<10} {figures.first.seconds:>8.3f} {figures.median:>9.3f}  {runs:<22} "
        f"{gib(figures.peak_bytes):>8} {loop[0]:>8} {loop[1]:>12} {loop[2]:>11}"
    )


def flops_text(flops: float) -> str:
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6)):
        if flops >= scale:
            return f"{flops / scale:.3f} {unit}"
    return f"{flops:.0f}"


def report_case(
    case: Case, figures: dict[str, Figures], flops: int, calls: int, matmul: float, args: argparse.Namespace
) -> None:
    """One case's rows of the table and its summary line."""
    engine = figures["engine"]
    loop_seconds = statistics.median(engine.loops)
    achieved = flops * calls / loop_seconds / 1e12
    loop = (f"{loop_seconds:.3f}", f"{achieved:.4g}", f"{100 * achieved / matmul:.1f}%")
    print(side_row(case, "diffusers", figures["diffusers"], ("-", "-", "-")))
    print(side_row(case, "engine", engine, loop))
    ratio = engine.median / figures["diffusers"].median
    target = RATIO_TARGET.get(args.device, RATIO_TARGET["cpu"])
    nominal = NOMINAL_TFLOP.get(case.size) if args.full_size else None
    nominal_text = f" (nominal {nominal * case.batch:.2f} T)" if nominal else ""
    print(
        f"{case.label:<8} ratio engine/diffusers {ratio:.3f} (target <= {target}); "
        f"{calls} UNet calls per run; FLOPs per guided step {flops_text(flops)}{nominal_text}"
    )


def describe_run(args: argparse.Namespace, dtype: torch.dtype, task: str = "depth2img") -> str:
    if task == "img2img":
        model = "full-size SD 2.x base (random weights)" if args.full_size else "tiny-sd21"
    elif task == "controlnet":
        model = (
            "full-size SD 1.5 + ControlNet (random weights)"
            if args.full_size
            else "tiny-sd15 + tiny-controlnet-sd15"
        )
    else:
        model = "full-size SD2-depth (random weights)" if args.full_size else "tiny-random"
    device = f"cuda {torch.cuda.get_device_name()}" if args.device == "cuda" else args.device
    dtype_name = str(dtype).removeprefix("torch.")
    return f"{model}, {device}, {dtype_name}, {args.steps} steps, strength {STRENGTH}, cfg {GUIDANCE}"


def make_engine(args: argparse.Namespace, **acceleration: Any) -> Engine:
    settings = Settings.under(args.workdir, device=args.device)
    if args.device == "cuda":
        settings = replace(settings, dtype=args.dtype)
    if acceleration:
        settings = replace(settings, acceleration=replace(settings.acceleration, **acceleration))
    return Engine(settings)


def compare(args: argparse.Namespace) -> None:
    """The engine against diffusers, task by task, case by case."""
    choice = {} if args.compile is None else {"compile": "on" if args.compile else "off"}
    engine = make_engine(args, **choice)
    for index, task in enumerate(args.tasks):
        if index:
            print()
        compare_task(args, engine, task)


def compare_task(args: argparse.Namespace, engine: Engine, task: str) -> None:
    """One task (depth2img, img2img or controlnet) against its diffusers pipeline, case by case."""
    model = saved_model(engine.settings.models_dir, args.full_size, task)
    dtype = engine.models.dtype
    folder = engine.settings.models_dir / model
    kind = PIPELINES[task]
    pipeline = kind.from_pretrained(folder, torch_dtype=dtype).to(args.device)
    pipeline.set_progress_bar_config(disable=True)
    parts = weighted_parts(engine, model)
    for part in parts:
        engine.models.load(model, part)  # warm before the first run, so no run counts loading
    matmul = matmul_tflops(args.device, dtype)
    print(f"{task}: {describe_run(args, dtype, task)}, {args.repeats} timed run(s) of each side per case")
    print(f"engine: {engine.models.plan.describe()}")
    print(f"diffusers: {kind.__name__}.from_pretrained(torch_dtype=...) (SDPA attention)")
    size = "8192²" if args.device == "cuda" else "2048²"
    matmul_dtype = dtype if args.device == "cuda" else torch.float32
    print(f"dense {str(matmul_dtype).removeprefix('torch.')} matmul ({size}): {matmul:.4g} TFLOP/s")
    print("first s: the warm-up run of each side (the engine's compiles and records CUDA graphs there)")
    if args.device == "cuda":
        print(
            "peak GiB: own weights + the most a timed run allocated above what was allocated before it; "
            "the engine adds its CUDA graphs' memory pool"
        )
    print(
        "loop: the engine's sampling loop (median); TFLOP/s = FLOPs per guided step x UNet calls / loop s; "
        f"target {MATMUL_SHARE_TARGET:.0%} of the matmul rate"
    )
    print(HEADER)
    with timing_sampling_loop(args.device) as clock:
        for case in args.cases:
            image, photo = input_photo(engine.settings.input_dir, case.size)
            engine_side = EngineSide(engine, model, image, case, args.steps, task)
            diffusers_side = DiffusersSide(pipeline, photo, case, args.steps)
            figures = run_case(case, engine_side, diffusers_side, args.repeats, args.device, clock)
            if args.device == "cuda":
                pool = graph_pool_bytes(args.device) or 0
                figures["engine"].held_bytes = engine_weights(engine, model) + pool
                figures["diffusers"].held_bytes = pipeline_weights(pipeline, parts)
            flops = flops_per_step(engine, model, case)
            report_case(case, figures, flops, engine_side.unet_calls, matmul, args)


def low_memory(args: argparse.Namespace) -> None:
    """The engine alone in low-memory mode: each case once, with the process's peak memory."""
    engine = make_engine(args, low_memory=True)
    model = saved_model(engine.settings.models_dir, args.full_size)
    print(describe_run(args, engine.models.dtype))
    print(f"engine alone: {engine.models.plan.describe()}")
    print("peak: the process's torch.cuda.max_memory_allocated / max_memory_reserved during the run")
    print(
        f"{'case':<8} {'run s':>8} {'peak allocated GiB':>19} {'peak reserved GiB':>18} {'under 4 GiB':>12}"
    )
    for case in args.cases:
        image, _ = input_photo(engine.settings.input_dir, case.size)
        side = EngineSide(engine, model, image, case, args.steps)
        side.prepare()
        reset_process_peaks(args.device)
        seconds = measure(side.run, args.device).seconds
        peaks = process_peaks(args.device)
        allocated, reserved = (None, None) if peaks is None else peaks
        under = "-" if reserved is None else ("yes" if reserved < LOW_MEMORY_LIMIT else "no")
        print(f"{case.label:<8} {seconds:>8.3f} {gib(allocated):>19} {gib(reserved):>18} {under:>12}")
    print("(the first case's run includes reading the weights from disk)")


def parse_tasks(text: str) -> tuple[str, ...]:
    tasks = tuple(item.strip() for item in text.split(",") if item.strip())
    unknown = [task for task in tasks if task not in TASKS]
    if unknown or not tasks:
        raise argparse.ArgumentTypeError(f"tasks are {', '.join(TASKS)}; got {text!r}")
    return tasks


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--full-size",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the real architecture, random weights (default: on for cuda, tiny-random otherwise)",
    )
    parser.add_argument(
        "--cases",
        type=parse_cases,
        help="SIZExBATCH,... (default: 512x1,768x1,512x4 "
        "on cuda, 256x1 on cpu; with --low-memory 512x1,1024x1)",
    )
    parser.add_argument("--steps", type=int, help="denoising steps (default: 50 on cuda, 20 on cpu)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each side per case")
    parser.add_argument("--dtype", choices=("float16", "bfloat16"), default="float16", help="cuda only")
    parser.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the engine with compiling on or off (default: on for cuda, off for cpu)",
    )
    parser.add_argument("--low-memory", action="store_true", help="the engine alone, in low-memory mode")
    parser.add_argument(
        "--tasks",
        type=parse_tasks,
        default=TASKS,
        help="depth2img,img2img,controlnet (default: all; --low-memory runs depth2img)",
    )
    parser.add_argument("--workdir", type=Path, default=Path("benchmarks/.work"), help="model, input, output")
    args = parser.parse_args()
    cuda = args.device == "cuda"
    if args.full_size is None:
        args.full_size = cuda
    if args.cases is None:
        default = "512x1,1024x1" if args.low_memory else ("512x1,768x1,512x4" if cuda else "256x1")
        args.cases = parse_cases(default)
    if args.steps is None:
        args.steps = 50 if cuda else 20
    return args


def quiet_libraries() -> None:
    """Only errors from diffusers and transformers (no loading bars or notices between table rows)."""
    import diffusers
    import transformers

    diffusers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def main() -> None:
    args = parse_arguments()
    (args.workdir / "input").mkdir(parents=True, exist_ok=True)
    quiet_libraries()
    if args.low_memory:
        low_memory(args)
    else:
        compare(args)


if __name__ == "__main__":
    main()
