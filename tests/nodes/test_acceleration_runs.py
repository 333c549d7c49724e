"""The speed and memory features inside real runs of the depth-to-image graph: a warm engine that
neither reloads nor recompiles for a new seed or prompt, a VAE that recovers from NaN in half
precision, and tiled decoding of large images."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from depthgraph.engine.app.config import Settings
from depthgraph.engine.app.engine import Engine
from depthgraph.engine.core.context import NodeContext
from depthgraph.engine.core.files import FileStore
from depthgraph.engine.models.acceleration import Acceleration, Plan
from depthgraph.engine.models.manager import ModelHandle, ModelManager
from depthgraph.nodes.vae import decode_latents, encode_image
from PIL import Image

from tests.nodes.test_depth2img_graph import depth2img


class CountingBackend:
    """A torch.compile backend that runs graphs as traced and counts how many it was given."""

    def __init__(self) -> None:
        self.graphs = 0

    def __call__(self, graph: Any, inputs: Any) -> Any:
        self.graphs += 1
        return graph.forward


def compiled_engine(folder: Path, backend: CountingBackend | None) -> Engine:
    (folder / "input").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 255, (64, 96, 3), dtype=np.uint8)).save(folder / "input" / "photo.png")
    Image.fromarray(rng.integers(0, 255, (128, 128, 3), dtype=np.uint8)).save(folder / "input" / "big.png")
    acceleration = Acceleration(compile="off")
    if backend is not None:
        acceleration = Acceleration(compile="on", compile_backend=backend, fuse_qkv="on", channels_last="on")
    return Engine(replace(Settings.under(folder, device="cpu"), acceleration=acceleration))


def saved_pixels(engine: Engine, result: Any) -> np.ndarray:
    image = result.outputs["11"]["images"][0]
    with Image.open(engine.files.output_dir / image["filename"]) as picture:
        return np.asarray(picture)


@pytest.mark.slow
def test_a_warm_engine_neither_reloads_nor_recompiles_for_a_new_seed_or_prompt(tmp_path: Path) -> None:
    backend = CountingBackend()
    engine = compiled_engine(tmp_path, backend)
    first = engine.run(depth2img(steps=2))
    assert first.status == "success", first.error
    compiled, reads = backend.graphs, engine.models.reads
    assert compiled == 2  # the UNet and the VAE decoder, each one whole graph

    prompt = depth2img(steps=2)
    prompt["8"]["inputs"]["seed"] = 1234
    prompt["6"]["inputs"]["text"] = "a marble statue, museum lighting"
    second = engine.run(prompt)
    assert second.status == "success", second.error
    assert backend.graphs == compiled and engine.models.reads == reads
    # The depth map and the encoded image come from the cache, where they stayed on the device.
    assert {"4", "7"} <= set(second.cached) and not {"4", "7"} & set(second.executed)

    prompt["2"]["inputs"]["image"] = "big.png"  # a new size: compiled once more, for that shape
    assert engine.run(prompt).status == "success"
    assert backend.graphs == compiled + 2


@pytest.mark.slow
def test_compiling_and_fusing_change_no_pixel(tmp_path: Path) -> None:
    plain = compiled_engine(tmp_path / "plain", None)
    fast = compiled_engine(tmp_path / "fast", CountingBackend())
    prompt = depth2img(steps=2)
    expected = saved_pixels(plain, plain.run(prompt))
    got = saved_pixels(fast, fast.run(prompt))
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1


def test_a_vae_that_makes_nan_in_half_precision_is_run_again_in_float32(
    files: FileStore, warnings: list[str]
) -> None:
    models = ModelManager(dtype_preference="bfloat16")
    handle = ModelHandle(models, "tiny-random")
    vae = handle.get("vae")

    def overflow(module: Any, inputs: Any, output: torch.Tensor) -> torch.Tensor | None:
        return output * float("nan") if output.dtype != torch.float32 else None

    vae.decoder.conv_out.register_forward_hook(overflow)
    context = NodeContext("p", "10", "VAEDecode", files, models=models, warned=warnings.append)
    latents = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))

    image = decode_latents(handle, latents, context)
    assert torch.isfinite(image).all() and image.shape == (1, 64, 64, 3)
    assert len(warnings) == 1 and "NaN in bfloat16" in warnings[0] and "float32" in warnings[0]
    assert vae.dtype == torch.float32 and models.vae_upcast("tiny-random")

    decode_latents(handle, latents, context)  # from now on in float32: no second warning
    assert len(warnings) == 1
    # The UNet keeps its half precision: only the VAE was changed.
    assert handle.get("unet").dtype == torch.bfloat16


def test_a_finite_half_precision_vae_is_used_as_it_is(files: FileStore, warnings: list[str]) -> None:
    models = ModelManager(dtype_preference="bfloat16")
    handle = ModelHandle(models, "tiny-random")
    context = NodeContext("p", "10", "VAEDecode", files, models=models, warned=warnings.append)
    decode_latents(handle, torch.zeros(1, 4, 8, 8), context)
    assert warnings == [] and handle.get("vae").dtype == torch.bfloat16


def test_large_images_are_decoded_and_encoded_tile_by_tile() -> None:
    models = ModelManager()
    models.plan = Plan(vae_tiling=True, tile_pixels=64)
    handle = ModelHandle(models, "tiny-random")
    vae = handle.get("vae")
    shapes: list[tuple[int, ...]] = []
    vae.decoder.register_forward_pre_hook(lambda module, inputs: shapes.append(tuple(inputs[0].shape)))
    latents = torch.randn(1, 4, 24, 16, generator=torch.Generator().manual_seed(0))

    image = decode_latents(handle, latents)
    assert image.shape == (1, 192, 128, 3) and torch.isfinite(image).all()
    assert len(shapes) > 1 and all(shape[-1] <= 8 and shape[-2] <= 8 for shape in shapes)  # 64 px tiles

    shapes.clear()
    decode_latents(handle, latents[..., :8, :8])  # one tile's worth: decoded whole
    assert shapes == [(1, 4, 8, 8)]

    encoded = encode_image(handle, torch.rand(1, 192, 128, 3))
    assert encoded.samples.shape == (1, 4, 24, 16)


def cuda_engine(folder: Path, acceleration: Acceleration) -> Engine:
    engine = compiled_engine(folder, None)
    return Engine(replace(engine.settings, device="cuda", acceleration=acceleration))


@pytest.mark.gpu
def test_on_cuda_the_graphed_loop_makes_the_image_the_eager_loop_makes(tmp_path: Path) -> None:
    eager = Acceleration(compile="off", cuda_graphs="off", channels_last="off", fuse_qkv="off")
    plain = cuda_engine(tmp_path / "plain", eager)
    fast = cuda_engine(tmp_path / "fast", Acceleration(compile="off"))
    prompt = depth2img(steps=3)
    expected = saved_pixels(plain, plain.run(prompt))
    got = saved_pixels(fast, fast.run(prompt))
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 2  # float16 rounding only
    recordings = fast.models.runner("tiny-random").recordings
    prompt["8"]["inputs"]["seed"] = 77
    assert fast.run(prompt).status == "success"
    assert fast.models.runner("tiny-random").recordings == recordings  # a new seed replays


@pytest.mark.gpu
def test_on_cuda_low_memory_leaves_only_the_last_component_on_the_gpu(tmp_path: Path) -> None:
    engine = cuda_engine(tmp_path, Acceleration(low_memory=True))
    assert engine.run(depth2img(steps=2)).status == "success"
    assert engine.models.residency.on_device() == [("tiny-random", "vae")]
    vae = engine.models.load("tiny-random", "vae")  # already there: nothing moves
    assert next(vae.parameters()).is_cuda
    unet = engine.models.load("tiny-random", "unet")  # comes in; the VAE goes to host memory
    assert next(unet.parameters()).is_cuda and not next(vae.parameters()).is_cuda


@pytest.mark.gpu
@pytest.mark.parametrize("scheduler", ["pndm", "ddim", "dpmpp_2m", "unipc"])  # the ones that draw no noise
def test_on_cuda_the_sampling_loop_never_waits_for_the_gpu(scheduler: str) -> None:
    """torch reports every operation that makes the host wait for the GPU; a loop of 15 steps must
    cause exactly as many as a loop of 5 (those before the loop), so no step causes any."""
    import warnings as python_warnings

    from depthgraph.nodes.latent import noise_latent
    from depthgraph.nodes.sampling import sample
    from depthgraph.nodes.text import encode_text

    models = ModelManager(device="cuda", acceleration=Acceleration(compile="off"))
    model = ModelHandle(models, "tiny-random")
    encoded = encode_image(model, torch.rand(1, 64, 64, 3))
    text = encode_text(model, "a lighthouse")
    depth = torch.rand(1, 1, 32, 32, device="cuda")

    def waits(steps: int) -> int:
        (latent,) = noise_latent(model, encoded, 0, 1.0, steps, scheduler)
        sample(model, text, text, depth, latent, 7.5)  # records the CUDA graph first
        torch.cuda.synchronize()
        with python_warnings.catch_warnings(record=True) as caught:
            python_warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                sample(model, text, text, depth, latent, 7.5)
            finally:
                torch.cuda.set_sync_debug_mode("default")
        return sum("synchroniz" in str(warning.message) for warning in caught)

    before_the_loop = waits(5)
    assert before_the_loop >= 1  # copying the timesteps to the host is seen: the check sees waits
    assert waits(15) == before_the_loop
