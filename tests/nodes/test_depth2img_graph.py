"""The depth-to-image graph on the built-in tiny model: what re-runs when a user changes one thing,
what loads lazily, and what bad input gets."""

from __future__ import annotations

import copy
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from depthgraph.engine.app.config import Settings
from depthgraph.engine.app.engine import Engine
from depthgraph.engine.core.validation import Code
from depthgraph.engine.models.common import ModelError
from depthgraph.engine.models.manager import ModelHandle, ModelManager
from depthgraph.nodes.sampling import prepare_depth
from depthgraph.nodes.text import encode_text
from depthgraph.nodes.vae import encode_image
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    (tmp_path / "input").mkdir()
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 255, (64, 96, 3), dtype=np.uint8)).save(tmp_path / "input" / "photo.png")
    yield Engine(Settings.under(tmp_path, device="cpu"))


def depth2img(steps: int = 3) -> dict[str, Any]:
    """The shipped graph, on the test photo and with few steps."""
    document = json.loads((ROOT / "graphs" / "depth2img.json").read_text())
    prompt = copy.deepcopy(document["nodes"])
    prompt["2"]["inputs"]["image"] = "photo.png"
    prompt["8"]["inputs"]["steps"] = steps
    return prompt


def test_the_graph_saves_an_image_and_its_depth_map(engine: Engine) -> None:
    result = engine.run(depth2img())
    assert result.status == "success", result.error
    saved = [
        engine.files.output_dir / image["filename"]
        for ui in result.outputs.values()
        for image in ui["images"]
    ]
    assert len(saved) == 2
    with Image.open(saved[0]) as picture:
        assert picture.size == (64, 64)  # cropped to multiples of 64
        assert "prompt" in picture.text and "workflow" not in picture.text


def test_changing_only_the_prompt_does_not_rerun_loading_depth_or_encoding(engine: Engine) -> None:
    prompt = depth2img()
    engine.run(prompt)
    prompt["5"]["inputs"]["text"] = "a watercolour of two knights"
    result = engine.run(prompt)
    # Prompt encoding, sampling, decoding and saving re-run; loading, depth, VAE encoding, noise do not.
    assert sorted(result.executed, key=int) == ["5", "9", "10", "11"]


def test_changing_only_the_seed_does_not_rerun_text_encoding(engine: Engine) -> None:
    prompt = depth2img()
    engine.run(prompt)
    prompt["8"]["inputs"]["seed"] = 1234
    result = engine.run(prompt)
    assert sorted(result.executed, key=int) == ["8", "9", "10", "11"]


def test_an_identical_second_run_executes_nothing(engine: Engine) -> None:
    engine.run(depth2img())
    again = engine.run(depth2img())
    assert again.executed == []
    assert set(again.outputs) == {"11", "13"}


def test_a_graph_that_only_estimates_depth_never_loads_the_unet(engine: Engine) -> None:
    prompt = {key: value for key, value in depth2img().items() if key in {"1", "2", "3", "4", "12", "13"}}
    assert engine.run(prompt).status == "success"
    loaded = {component for _, component in engine.models.loaded()}
    assert loaded == {"depth_estimator", "feature_extractor"}


@pytest.mark.parametrize(
    ("node_id", "name", "value", "code"),
    [
        ("8", "steps", 0, Code.VALUE_SMALLER_THAN_MIN),
        ("8", "strength", 1.5, Code.VALUE_BIGGER_THAN_MAX),
        ("8", "strength", -0.1, Code.VALUE_SMALLER_THAN_MIN),
        ("9", "cfg", -1.0, Code.VALUE_SMALLER_THAN_MIN),
        ("8", "scheduler", "k_lms", Code.VALUE_NOT_IN_LIST),
        ("1", "ckpt_name", "no-such-model", Code.VALUE_NOT_IN_LIST),
    ],
)
def test_out_of_range_settings_are_refused_before_running(
    engine: Engine, node_id: str, name: str, value: Any, code: Code
) -> None:
    prompt = depth2img()
    prompt[node_id]["inputs"][name] = value
    issues = engine.validate(prompt).issues
    assert [(issue.code, issue.node_id, issue.input_name) for issue in issues] == [(code, node_id, name)]


def test_a_missing_model_names_where_it_looked_and_what_to_do(tmp_path: Path) -> None:
    manager = ModelManager(tmp_path / "models")
    with pytest.raises(ModelError) as caught:
        manager.find("stable-diffusion-2-depth")
    message = str(caught.value)
    assert str((tmp_path / "models").resolve()) in message
    assert "depthgraph models fetch" in message and "tiny-random" in message


def test_a_model_that_is_not_a_depth_model_is_refused_before_running(engine: Engine) -> None:
    prompt = depth2img()
    prompt["1"]["inputs"]["ckpt_name"] = "tiny-sd21"
    issues = {(issue.node_id, issue.input_name): issue for issue in engine.validate(prompt).issues}
    assert issues[("9", "model")].code == Code.INCOMPATIBLE_INPUT
    assert "this model takes no depth" in issues[("9", "model")].message
    assert "bundles no depth estimator" in issues[("4", "depth_model")].message


def test_corrupt_weights_give_an_error_naming_the_folder(tmp_path: Path) -> None:
    from depthgraph.engine.models.tiny import build_tiny

    folder = tmp_path / "models" / "broken"
    build_tiny("vae").save_pretrained(folder / "vae")
    (folder / "model_index.json").write_text("{}")
    weights = folder / "vae" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # truncated download
    with pytest.raises(ModelError) as caught:
        ModelManager(tmp_path / "models").load("broken", "vae")
    assert str(folder / "vae") in str(caught.value) and "corrupt" in str(caught.value)


def test_a_long_prompt_is_cut_at_77_tokens_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    clip = ModelHandle(ModelManager(), "tiny-random")
    with caplog.at_level(logging.WARNING):
        embeddings = encode_text(clip, "word " * 120)
    assert embeddings.shape[:2] == (1, 77)
    assert "longer than 77 tokens" in caplog.text


def test_a_constant_depth_map_conditions_without_nan() -> None:
    flat = prepare_depth(torch.full((1, 1, 24, 24), 3.0), (8, 8), 1)
    assert torch.equal(flat, torch.zeros(1, 1, 8, 8))
    ramp = prepare_depth(torch.linspace(0, 1, 24).expand(1, 1, 24, 24), (8, 8), 2)
    assert ramp.shape == (2, 1, 8, 8) and ramp.min() == -1.0 and ramp.max() == 1.0


def test_an_image_whose_sides_are_not_multiples_of_8_is_refused_with_the_fix() -> None:
    vae = ModelHandle(ModelManager(), "tiny-random")
    with pytest.raises(
        ValueError, match=r"is 60×64; the model needs sides that are multiples of 8 .* ImageSizeForModel"
    ):
        encode_image(vae, torch.zeros(1, 64, 60, 3))


def test_the_example_graphs_run_on_the_tiny_model_from_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from depthgraph.engine.app.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DEPTHGRAPH_HOME", str(tmp_path))
    (tmp_path / "input").mkdir()
    (tmp_path / "input" / "example.jpg").write_bytes((ROOT / "input" / "example.jpg").read_bytes())
    graph = ROOT / "graphs" / "depth2img.json"
    code = main(["run", str(graph), "--set", "8.steps=2", "--set", "3.multiple=64", "--output-dir", "out"])
    assert code == 0
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == [
        "depth2img_00001.png",
        "depth2img_depth_00001.png",
    ]


def test_an_unknown_model_name_says_where_it_looked_before_running(engine: Engine) -> None:
    prompt = depth2img()
    prompt["1"]["inputs"]["ckpt_name"] = "stable-diffusion-2-depth"
    (issue,) = engine.validate(prompt).issues
    assert str(engine.settings.models_dir.resolve()) in issue.message
    assert "depthgraph models fetch" in issue.message


def test_with_a_zero_noise_mask_the_sampler_returns_the_original_latents() -> None:
    from depthgraph.nodes.latent import noise_latent
    from depthgraph.nodes.sampling import sample

    model = ModelHandle(ModelManager(), "tiny-random")
    (latent,) = noise_latent(model, encode_image(model, torch.rand(1, 32, 32, 3)), 5, 0.8, 4, "ddim")
    latent = latent.with_noise_mask(torch.zeros(1, 1, 4, 4))
    text = encode_text(model, "a cat")
    result = sample(model, text, text, torch.rand(1, 1, 24, 24), latent, 5.0)
    assert torch.allclose(result, latent.require_noising().init)


def test_stability_preprocessing_keeps_the_aspect_ratio() -> None:
    from depthgraph.nodes.depth import estimate_depth

    model = ModelHandle(ModelManager(), "tiny-random")
    wide = torch.rand(1, 64, 128, 3)
    (squashed,) = estimate_depth(model, wide, "diffusers")
    (kept,) = estimate_depth(model, wide, "stability")
    assert squashed.shape == (1, 1, 384, 384)
    assert kept.shape[0:2] == (1, 1) and kept.shape[3] == 2 * kept.shape[2]
    assert kept.shape[2] % 32 == 0 and max(kept.shape[2:]) == 384  # MiDaS' "minimal" resize
    assert torch.isfinite(kept).all()


def test_models_stay_resident_between_runs(engine: Engine) -> None:
    engine.run(depth2img())
    unet = engine.models.load("tiny-random", "unet")
    prompt = depth2img()
    prompt["8"]["inputs"]["seed"] = 77
    engine.run(prompt)
    assert engine.models.load("tiny-random", "unet") is unet


def test_saved_images_carry_the_usual_generation_parameters(engine: Engine) -> None:
    result = engine.run(depth2img())
    image = result.outputs["11"]["images"][0]
    with Image.open(engine.files.output_dir / image["filename"]) as picture:
        lines = picture.text["parameters"].splitlines()
    assert lines[0].startswith("photo of a knight")
    assert lines[1] == "Negative prompt: bad, deformed, ugly, bad anatomy, blurry"
    assert lines[2] == (
        "Steps: 3, Sampler: pndm, CFG scale: 7.5, Seed: 42, Size: 64x64, Model: tiny-random, "
        "Denoising strength: 1.0"
    )
    depth_image = result.outputs["13"]["images"][0]
    with Image.open(engine.files.output_dir / depth_image["filename"]) as picture:
        assert "parameters" not in picture.text  # the depth map was not sampled


def test_weights_default_to_half_precision_on_gpus_and_float32_on_the_cpu() -> None:
    from depthgraph.engine.models.manager import resolve_dtype

    assert resolve_dtype("cuda") == torch.float16
    assert resolve_dtype("mps") == torch.float16
    assert resolve_dtype("cpu") == torch.float32
    assert resolve_dtype("cuda", "bfloat16") == torch.bfloat16
    with pytest.raises(ModelError, match="unknown dtype"):
        resolve_dtype("cuda", "float8")


def test_a_half_precision_model_gets_its_inputs_in_its_dtype(tmp_path: Path) -> None:
    """What MPS and CUDA users run: bfloat16 weights (float16 matmuls are slow on CPU), float32 depth."""
    (tmp_path / "input").mkdir()
    Image.fromarray(np.full((64, 64, 3), 90, dtype=np.uint8)).save(tmp_path / "input" / "photo.png")
    engine = Engine(Settings.under(tmp_path, device="cpu", dtype="bfloat16"))
    result = engine.run(depth2img(steps=2))
    assert result.status == "success", result.error
    assert engine.models.load("tiny-random", "unet").dtype == torch.bfloat16
    assert engine.models.load("tiny-random", "depth_estimator").dtype == torch.float32


def test_step_previews_are_small_jpegs_when_a_front_end_asks(engine: Engine) -> None:
    from depthgraph.engine.core.events import Progress

    events: list[Any] = []
    engine.run(depth2img(steps=2), on_event=events.append)
    assert all(event.preview is None for event in events if isinstance(event, Progress))

    engine.executor.previews = True
    prompt = depth2img(steps=2)
    prompt["8"]["inputs"]["seed"] = 9
    events.clear()
    engine.run(prompt, on_event=events.append)
    previews = [event.preview for event in events if isinstance(event, Progress) and event.node_id == "9"]
    # The first and the last step always show one; steps in between at most every 0.25 s.
    assert len(previews) >= 3 and previews[0] is not None and previews[-1] is not None
    first = previews[0]
    assert first is not None and first.format == "JPEG"
    with Image.open(io.BytesIO(first.data)) as picture:
        assert picture.size == (8, 8)  # the 64×64 image's latent


def test_previews_between_the_first_and_last_step_come_at_most_every_quarter_second(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from depthgraph.nodes import sampling

    now = [100.0]
    monkeypatch.setattr(sampling.time, "monotonic", lambda: now[0])
    clock = sampling._PreviewClock(total=6)
    shown = []
    for step in range(1, 7):
        shown.append(clock.due(step))
        now[0] += 0.1
    # steps at 0.0, 0.1, ..., 0.5 s: the first, the one 0.3 s after it, and the last
    assert shown == [True, False, False, True, False, True]


def test_a_depth_batch_that_does_not_match_the_latents_is_refused() -> None:
    from depthgraph.nodes.latent import noise_latent
    from depthgraph.nodes.sampling import sample

    model = ModelHandle(ModelManager(), "tiny-random")
    (latent,) = noise_latent(model, encode_image(model, torch.rand(3, 32, 32, 3)), 0, 1.0, 2, "ddim")
    text = encode_text(model, "")
    with pytest.raises(ValueError, match="the depth map has a batch of 2 but the latents have 3; give one"):
        sample(model, text, text, torch.rand(2, 1, 24, 24), latent, 1.0)


def test_as_many_steps_as_trained_timesteps_is_refused_with_the_largest_that_works() -> None:
    """PNDM's steps offset takes 1,000 steps to timestep 1,000, one past the last trained one."""
    from depthgraph.nodes.latent import noise_latent

    model = ModelHandle(ModelManager(), "tiny-random")
    encoded = encode_image(model, torch.rand(1, 32, 32, 3))
    with pytest.raises(ValueError, match=r"1000 steps take the PNDMScheduler past .* use at most 999 steps"):
        noise_latent(model, encoded, 0, 1.0, 1000, "pndm")
    assert noise_latent(model, encoded, 0, 1.0, 999, "pndm")[0].samples.shape == (1, 4, 4, 4)


def test_a_repeated_batch_makes_different_images_of_one_photo_from_one_seed(engine: Engine) -> None:
    prompt = depth2img(steps=2)
    prompt["20"] = {"class_type": "RepeatLatentBatch", "inputs": {"samples": ["7", 0], "amount": 3}}
    prompt["8"]["inputs"]["latent"] = ["20", 0]
    result = engine.run(prompt)
    assert result.status == "success", result.error
    saved = [image["filename"] for image in result.outputs["11"]["images"]]
    assert len(saved) == 3
    pixels = [np.asarray(Image.open(engine.files.output_dir / name)).astype(int) for name in saved]
    assert all(np.abs(pixels[0] - other).mean() > 1 for other in pixels[1:])  # each its own noise

    engine.cache.clear()  # the same seed makes the same batch again
    again = [image["filename"] for image in engine.run(prompt).outputs["11"]["images"]]
    assert again != saved
    for name, expected in zip(again, pixels, strict=True):
        assert np.array_equal(np.asarray(Image.open(engine.files.output_dir / name)), expected)


def test_latents_already_noised_cannot_be_repeated() -> None:
    from depthgraph.nodes.latent import noise_latent, repeat_latent_batch

    model = ModelHandle(ModelManager(), "tiny-random")
    (noised,) = noise_latent(model, encode_image(model, torch.rand(1, 32, 32, 3)), 0, 1.0, 2, "ddim")
    with pytest.raises(ValueError, match="repeat them before the Noise Latent node"):
        repeat_latent_batch(noised, 2)
