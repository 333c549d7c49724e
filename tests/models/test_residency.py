"""The VRAM budget: which weights stay on the compute device, in what order the others leave, how
cached results share the budget, and that nothing is read from disk twice.

On this CPU-only machine the "device" is the CPU too, so moves cost nothing; what is tested is the
bookkeeping a GPU relies on: what is counted as on the device, what leaves first, what comes back.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch
from depthgraph.engine.app.config import Settings
from depthgraph.engine.app.engine import Engine
from depthgraph.engine.core.cache import ResultCache
from depthgraph.engine.models.acceleration import Acceleration
from depthgraph.engine.models.manager import ModelManager
from depthgraph.engine.models.residency import Residency, module_bytes
from depthgraph.engine.models.tiny import build_tiny

TINY = "tiny-random"
ALL = ("text_encoder", "depth_estimator", "vae", "unet")


def sizes() -> dict[str, int]:
    return {component: module_bytes(build_tiny(component)) for component in ALL}


def manager(**acceleration: object) -> ModelManager:
    return ModelManager(Path("models"), "cpu", acceleration=Acceleration(**acceleration))  # type: ignore[arg-type]


def test_without_a_budget_every_component_stays_on_the_device() -> None:
    models = manager()
    for component in ALL:
        models.load(TINY, component)
    assert {component for _, component in models.residency.on_device()} == set(ALL)
    assert models.residency.offloads == 0


def test_under_a_budget_the_depth_estimator_and_text_encoder_leave_first_and_the_unet_last() -> None:
    size = sizes()
    models = manager(vram_budget=size["unet"] + size["vae"])
    for component in ALL:  # the order a depth-to-image run uses them
        models.load(TINY, component)
    assert [component for _, component in models.residency.on_device()] == ["vae", "unet"]
    assert models.residency.resident_bytes() <= size["unet"] + size["vae"]
    assert models.residency.offloads == 2


def test_a_component_brought_back_comes_from_memory_not_from_disk() -> None:
    size = sizes()
    models = manager(vram_budget=size["unet"] + size["vae"])
    for component in ALL:
        models.load(TINY, component)
    reads = models.reads
    estimator = models.load(TINY, "depth_estimator")  # a new image: depth runs again
    assert models.reads == reads and models.residency.restores == 1
    assert (TINY, "depth_estimator") in models.residency.on_device()
    with torch.inference_mode():  # and it still works where it is now
        assert estimator(torch.rand(1, 3, 384, 384)).predicted_depth.shape[0] == 1


def test_low_memory_keeps_only_the_component_in_use_on_the_device() -> None:
    models = manager(low_memory=True)
    for component in ALL:
        models.load(TINY, component)
        assert models.residency.on_device() == [(TINY, component)]
    assert models.reads == 4
    # Weights move, results stay: the small cached depth maps and latents are not squeezed out.
    assert models.residency.cache_allowance() is None


def test_cached_results_on_the_device_share_the_budget_and_leave_after_the_weights() -> None:
    size = sizes()
    budget = size["text_encoder"] + size["depth_estimator"] + 4000
    residency = Residency("cpu", budget)
    cache = ResultCache({"cpu": 10**9})
    residency.cache = cache
    cache.allowance = lambda device: residency.cache_allowance()
    residency.bring((TINY, "text_encoder"), build_tiny("text_encoder"))
    residency.bring((TINY, "depth_estimator"), build_tiny("depth_estimator"))
    assert cache.budget("cpu") == 4000  # what the weights leave
    assert cache.put("depth", (torch.zeros(500),))  # 2000 bytes each
    assert cache.put("latent", (torch.zeros(500),))
    assert not cache.put("huge", (torch.zeros(2000),))  # more than the weights leave: not kept
    assert cache.put("image", (torch.zeros(250),))  # 1000 more: the oldest result leaves
    assert "depth" not in cache and "latent" in cache and "image" in cache

    # The VAE needs more than the budget: both weights leave first, then the results.
    residency.bring((TINY, "vae"), build_tiny("vae"))
    assert residency.on_device() == [(TINY, "vae")]
    assert residency.offloads == 2 and len(cache) == 0


def test_the_engine_counts_its_cache_against_the_models_budget(tmp_path: Path) -> None:
    size = sizes()
    acceleration = Acceleration(vram_budget=size["unet"] + 10_000)
    engine = Engine(replace(Settings.under(tmp_path, device="cpu"), acceleration=acceleration))
    engine.models.load(TINY, "unet")
    assert engine.cache.budget("cpu") == 10_000
    assert engine.models.residency.cache is engine.cache


def test_unloading_forgets_what_was_on_the_device() -> None:
    models = manager()
    models.load(TINY, "vae")
    models.unload(TINY)
    assert models.residency.on_device() == [] and models.loaded() == []
