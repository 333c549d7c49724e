"""The depth estimators behind DepthModelLoader, on their tiny built-in weights: they predict what
transformers' own depth-estimation pipeline does, their DEPTH is larger where things are nearer, and
a single file loads to the same model as its Hugging Face folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812 (the usual torch spelling)
from depthgraph.engine.models.common import ModelError
from depthgraph.engine.models.depth_estimators import (
    DepthEstimatorHandle,
    EstimatorSource,
    estimate_depth,
    find_depth_estimator,
    find_depth_estimators,
)
from depthgraph.engine.models.depth_families import DEPTH_ANYTHING, DEPTH_PRO, ZOEDEPTH
from depthgraph.engine.models.depth_processing import predict, to_inverse_depth
from depthgraph.engine.models.manager import ModelHandle, ModelManager
from depthgraph.engine.models.tiny_depth import TINY_ESTIMATORS, build_tiny_estimator, build_tiny_processor
from PIL import Image
from safetensors.torch import load_file, save_file

from tests.models.depth_export import depth_anything_to_original, dpt_to_midas_file

NAMES = list(TINY_ESTIMATORS)
RELATIVE = ["tiny-dpt-hybrid", "tiny-dpt-large", "tiny-depth-anything-v2"]
METRIC = ["tiny-zoedepth", "tiny-depth-pro"]


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    rng = np.random.default_rng(5)
    return Image.fromarray(rng.integers(0, 255, (60, 90, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def tiny() -> dict[str, tuple[Any, Any]]:
    return {name: (build_tiny_estimator(name), build_tiny_processor(name)) for name in NAMES}


def handle(models_dir: Path, name: str, manager: ModelManager | None = None) -> DepthEstimatorHandle:
    manager = manager or ModelManager(models_dir)
    return DepthEstimatorHandle(manager, find_depth_estimator(name, models_dir))


# --- what transformers' pipeline predicts ----------------------------------------------------------
def torchvision_resize_stand_in() -> SimpleNamespace:
    """torchvision.transforms.v2.functional.resize on a float tensor (the one torchvision call in
    transformers' ZoeDepth post-processing; torchvision has no build for a CPU-only torch): its
    `resize_image` leaves a tensor of the asked size alone, else interpolates with
    align_corners=False."""

    def resize(image: torch.Tensor, size: list[int], interpolation: Any, antialias: bool) -> torch.Tensor:
        if list(image.shape[-2:]) == list(size):
            return image
        return F.interpolate(image[None], size=size, mode=interpolation, antialias=antialias)[0]

    return SimpleNamespace(resize=resize, InterpolationMode=SimpleNamespace(BICUBIC="bicubic"))


@pytest.mark.parametrize("name", [*RELATIVE, "tiny-zoedepth"])
def test_each_estimator_predicts_what_the_transformers_depth_estimation_pipeline_does(
    name: str, photo: Image.Image, tiny: dict[str, tuple[Any, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from transformers import pipeline

    model, processor = tiny[name]
    family = TINY_ESTIMATORS[name][0]
    reference_processor = processor
    if family is ZOEDEPTH:  # transformers' own processor, not ours (whose padding removal is torch)
        import transformers.models.zoedepth.image_processing_pil_zoedepth as zoedepth_module
        from transformers import ZoeDepthImageProcessorPil

        monkeypatch.setattr(zoedepth_module, "tvF", torchvision_resize_stand_in(), raising=False)
        reference_processor = ZoeDepthImageProcessorPil(**family.processor)
    estimator = pipeline("depth-estimation", model=model, image_processor=reference_processor)
    expected = estimator(photo)["predicted_depth"]
    ours = predict(family, model, processor, [photo], target_sizes=[(photo.height, photo.width)])
    assert ours.shape == (1, photo.height, photo.width)
    torch.testing.assert_close(ours[0], expected, rtol=1e-5, atol=1e-6)


def test_depth_pro_predicts_metres_as_transformers_documents(
    photo: Image.Image, tiny: dict[str, tuple[Any, Any]]
) -> None:
    """transformers' DepthProImageProcessor needs torchvision; its steps written out: rescale (× 1/255) and
    normalise (mean = std = 0.5), bilinear to the square size, the model; then the canonical inverse
    depth times width / focal length (from the field of view), resized, and inverted to metres."""
    model, processor = tiny["tiny-depth-pro"]
    size = TINY_ESTIMATORS["tiny-depth-pro"][2]["size"]["height"]
    pixels = torch.from_numpy(np.asarray(photo, dtype=np.float32) * (1 / 255)).permute(2, 0, 1)[None]
    pixels = F.interpolate((pixels - 0.5) / 0.5, size=(size, size), mode="bilinear", align_corners=False)
    with torch.no_grad():
        output = model(pixel_values=pixels)
    width = photo.width
    focal = 0.5 * width / torch.tan(0.5 * torch.deg2rad(output.field_of_view[0]))
    canonical = output.predicted_depth[0] * width / focal
    resized = F.interpolate(canonical[None, None], size=(photo.height, photo.width), mode="bilinear")[0, 0]
    expected = 1.0 / resized.clamp(1e-4, 1e4)
    ours = predict(DEPTH_PRO, model, processor, [photo], target_sizes=[(photo.height, photo.width)])
    torch.testing.assert_close(ours[0], expected, rtol=1e-5, atol=1e-6)


# --- DEPTH: larger = nearer ------------------------------------------------------------------------
def _synthetic(pixels: torch.Tensor, near: float, far: float) -> torch.Tensor:
    """A map at the model's resolution, `near` in a centred square and `far` around it."""
    height, width = pixels.shape[-2:]
    depth = torch.full((pixels.shape[0], height, width), far)
    depth[:, height // 4 : 3 * height // 4, width // 4 : 3 * width // 4] = near
    return depth


@pytest.mark.parametrize("name", NAMES)
def test_a_nearer_region_ends_up_larger_in_every_estimators_depth(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each model made to see a centred square nearer than its surroundings, in its own unit: MiDaS
    and Depth Anything a larger inverse depth, ZoeDepth fewer metres, Depth Pro a larger canonical
    inverse depth (at a 90° field of view)."""
    depth_model = handle(tmp_path, name)
    model = depth_model.get("depth_estimator")
    family = TINY_ESTIMATORS[name][0]

    def forward(pixel_values: torch.Tensor, **_: Any) -> Any:
        if family is ZOEDEPTH:
            return SimpleNamespace(predicted_depth=_synthetic(pixel_values, near=1.5, far=6.0))
        fov = torch.full((pixel_values.shape[0],), 90.0)
        return SimpleNamespace(predicted_depth=_synthetic(pixel_values, near=2.0, far=0.5), field_of_view=fov)

    monkeypatch.setattr(model, "forward", forward)
    picture = Image.new("RGB", (96, 96), "gray")
    depth = estimate_depth(depth_model, [picture])
    assert depth.dtype == torch.float32 and depth.ndim == 4 and depth.shape[:2] == (1, 1)
    height, width = depth.shape[-2:]
    centre = depth[0, 0, height // 2, width // 2]
    corner = depth[0, 0, 2, 2]
    assert centre > corner
    if family is ZOEDEPTH:  # metres inverted: 1/1.5 m and 1/6 m
        assert centre == pytest.approx(1 / 1.5, rel=1e-4) and corner == pytest.approx(1 / 6.0, rel=1e-4)
    if family is DEPTH_PRO:  # 1/m = canonical inverse depth × width / focal length = × 2 tan(45°)
        assert centre == pytest.approx(4.0, rel=1e-4) and corner == pytest.approx(1.0, rel=1e-4)


@pytest.mark.parametrize("name", METRIC)
def test_the_metric_estimators_depth_is_the_inverse_of_their_metres(
    name: str, photo: Image.Image, tmp_path: Path
) -> None:
    depth_model = handle(tmp_path, name)
    family = depth_model.family
    metres = predict(
        family, depth_model.get("depth_estimator"), depth_model.get("feature_extractor"), [photo]
    )
    assert family.metric and (metres > 0).all()
    depth = estimate_depth(depth_model, [photo])
    torch.testing.assert_close(depth[:, 0], 1.0 / metres.clamp(min=1e-4))


def test_relative_predictions_pass_through_unchanged_and_metres_are_floored() -> None:
    relative = torch.tensor([[[0.0, 2.0, 5.0]]])
    assert torch.equal(to_inverse_depth(relative, metric=False), relative[:, None])
    metres = torch.tensor([[[0.0, 0.5, 4.0]]])
    assert to_inverse_depth(metres, metric=True)[0, 0, 0].tolist() == pytest.approx([1e4, 2.0, 0.25])


@pytest.mark.parametrize("preprocessing", [False, True])
def test_tiny_dpt_hybrid_is_the_estimator_tiny_random_carries(
    photo: Image.Image, tmp_path: Path, preprocessing: bool
) -> None:
    manager = ModelManager(tmp_path)
    checkpoint = estimate_depth(ModelHandle(manager, "tiny-random"), [photo], preprocessing)
    alone = estimate_depth(handle(tmp_path, "tiny-dpt-hybrid", manager), [photo], preprocessing)
    assert torch.equal(checkpoint, alone)
    assert checkpoint.shape == ((1, 1, 256, 384) if preprocessing else (1, 1, 384, 384))


def test_dpt_large_keeps_the_aspect_ratio_when_asked(photo: Image.Image, tmp_path: Path) -> None:
    depth = estimate_depth(handle(tmp_path, "tiny-dpt-large"), [photo], keep_aspect_ratio=True)
    assert depth.shape == (1, 1, 256, 384)  # 60×90 scaled towards 384, sides multiples of 32


# --- where estimators are found, and the manager keeping them ---------------------------------------
def save_folder(name: str, folder: Path) -> Path:
    """The tiny estimator as its Hugging Face repository lays it out."""
    build_tiny_estimator(name).save_pretrained(folder)
    settings = TINY_ESTIMATORS[name][2]
    (folder / "preprocessor_config.json").write_text(json.dumps(settings))
    return folder


def test_estimators_are_found_built_in_then_folders_one_or_two_deep_then_files(tmp_path: Path) -> None:
    depth = tmp_path / "depth"
    save_folder("tiny-dpt-large", depth / "dpt-large")
    save_folder("tiny-depth-anything-v2", depth / "depth-anything" / "Depth-Anything-V2-Small-hf")
    shutil.copy(depth / "dpt-large" / "model.safetensors", depth / "dpt-large.safetensors")
    (depth / "notes.txt").write_text("not a model")
    sources = find_depth_estimators(tmp_path)
    assert [source.name for source in sources] == [
        *NAMES,
        "depth-anything/Depth-Anything-V2-Small-hf",
        "dpt-large",
        "dpt-large.safetensors",
    ]
    assert [source.kind for source in sources[len(NAMES) :]] == ["folder", "folder", "single_file"]
    assert "Depth Anything V2; Hugging Face folder" in sources[len(NAMES)].describe()
    assert "DPT-large (MiDaS v3.0); single file" in sources[-1].describe()
    assert "noise" in sources[0].describe()


def test_a_loaded_estimator_is_kept_by_the_manager_and_freed_with_the_rest(
    photo: Image.Image, tmp_path: Path
) -> None:
    manager = ModelManager(tmp_path)
    depth_model = handle(tmp_path, "tiny-depth-anything-v2", manager)
    estimate_depth(depth_model, [photo])
    reads = manager.reads
    estimate_depth(depth_model, [photo])
    assert manager.reads == reads == 2  # the model and its processor, read once
    assert ("depth/tiny-depth-anything-v2", "depth_estimator") in manager.residency.on_device()
    manager.unload()
    assert manager.loaded() == []
    estimate_depth(depth_model, [photo])
    assert manager.reads == 4


# --- single files and folders ------------------------------------------------------------------------
def published_tensors(name: str, tmp_path: Path) -> dict[str, torch.Tensor]:
    folder = save_folder(name, tmp_path / "published" / name)
    return load_file(str(folder / "model.safetensors"))


def test_the_published_names_are_those_transformers_conversion_scripts_write(tmp_path: Path) -> None:
    """What save_pretrained writes (and so the Hugging Face repositories hold) is named as the
    conversion scripts name it, not as transformers 5 names the modules in memory."""
    names = set(published_tensors("tiny-depth-anything-v2", tmp_path))
    for expected in (  # convert_depth_anything_to_hf.py
        "backbone.embeddings.position_embeddings",
        "backbone.encoder.layer.0.attention.attention.query.weight",
        "backbone.encoder.layer.0.layer_scale1.lambda1",
        "neck.fusion_stage.layers.0.residual_layer1.convolution1.weight",
        "neck.reassemble_stage.layers.0.resize.weight",
        "head.conv3.weight",
    ):
        assert expected in names
    in_memory = set(build_tiny_estimator("tiny-depth-anything-v2").state_dict())
    assert "backbone.encoder.layer.0.attention.q_proj.weight" in in_memory - names
    hybrid = set(published_tensors("tiny-dpt-hybrid", tmp_path))  # convert_dpt_hybrid_to_pytorch.py
    assert "dpt.embeddings.backbone.bit.encoder.stages.0.layers.0.conv1.weight" in hybrid
    assert "neck.reassemble_stage.readout_projects.2.0.weight" in hybrid  # stages 0, 1: BiT


def original_file(name: str, tmp_path: Path) -> dict[str, torch.Tensor]:
    published = published_tensors(name, tmp_path)
    if name == "tiny-depth-anything-v2":
        return depth_anything_to_original(published)
    return dpt_to_midas_file(published, build_tiny_estimator(name).config.hidden_size)


@pytest.mark.parametrize("name", RELATIVE)
@pytest.mark.parametrize("layout", ["original", "published"])
def test_a_single_file_loads_to_the_same_estimator_as_its_folder(
    name: str, layout: str, photo: Image.Image, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    folder = save_folder(name, models / "depth" / "as-folder")
    state = original_file(name, tmp_path) if layout == "original" else published_tensors(name, tmp_path)
    if layout == "original":
        assert not any(key.startswith(("dpt.", "backbone.", "neck.")) for key in state)
    save_file(state, str(models / "depth" / "as-file.safetensors"))
    from_folder = handle(models, "as-folder")
    from_file = handle(models, "as-file.safetensors")
    assert from_file.family is from_folder.family is TINY_ESTIMATORS[name][0]
    folder_weights = from_folder.get("depth_estimator").state_dict()
    file_weights = from_file.get("depth_estimator").state_dict()
    assert folder_weights.keys() == file_weights.keys()
    assert all(torch.equal(folder_weights[key], file_weights[key]) for key in folder_weights)
    assert torch.equal(estimate_depth(from_file, [photo]), estimate_depth(from_folder, [photo]))
    assert folder.is_dir()


@pytest.mark.parametrize("name", METRIC)
def test_metric_estimators_load_from_their_folders(name: str, photo: Image.Image, tmp_path: Path) -> None:
    save_folder(name, tmp_path / "depth" / "estimator")
    from_folder = estimate_depth(handle(tmp_path, "estimator"), [photo])
    assert torch.equal(from_folder, estimate_depth(handle(tmp_path, name), [photo]))


# --- bad input ------------------------------------------------------------------------------------------
def refused(models: Path, name: str) -> str:
    with pytest.raises(ModelError) as caught:
        depth_model = handle(models, name)
        depth_model.family  # noqa: B018 (recognising the layout is what fails)
        depth_model.get("depth_estimator")
    message = str(caught.value)
    assert "Traceback" not in message
    return message


def test_a_corrupt_file_is_refused_naming_it(tmp_path: Path) -> None:
    (tmp_path / "depth").mkdir()
    path = tmp_path / "depth" / "broken.safetensors"
    path.write_bytes(b"\x00" * 64)
    message = refused(tmp_path, "broken.safetensors")
    assert str(path) in message and "neither a safetensors file nor a PyTorch checkpoint" in message


def test_a_file_of_an_unknown_layout_is_refused_saying_what_is_expected(tmp_path: Path) -> None:
    (tmp_path / "depth").mkdir()
    path = tmp_path / "depth" / "mystery.safetensors"
    save_file({"encoder.weight": torch.zeros(2, 2)}, str(path))
    message = refused(tmp_path, "mystery.safetensors")
    assert str(path) in message and "Expected one of" in message and "Depth Anything V2" in message
    assert "mystery" in EstimatorSource("mystery.safetensors", "single_file", path).describe()


@pytest.mark.parametrize("name", METRIC)
def test_a_metric_estimator_as_one_file_is_refused_asking_for_its_folder(name: str, tmp_path: Path) -> None:
    folder = save_folder(name, tmp_path / "published")
    (tmp_path / "depth").mkdir()
    shutil.copy(folder / "model.safetensors", tmp_path / "depth" / "metric.safetensors")
    message = refused(tmp_path, "metric.safetensors")
    assert "config.json" in message and "models/depth/" in message


def test_a_stable_diffusion_checkpoint_in_the_depth_folder_points_to_checkpoint_loader(
    tmp_path: Path,
) -> None:
    (tmp_path / "depth").mkdir()
    save_file(
        {"model.diffusion_model.out.2.bias": torch.zeros(4)}, str(tmp_path / "depth" / "sd.safetensors")
    )
    assert "CheckpointLoader" in refused(tmp_path, "sd.safetensors")


def test_a_file_of_another_size_than_any_published_checkpoint_is_refused(tmp_path: Path) -> None:
    state = depth_anything_to_original(published_tensors("tiny-depth-anything-v2", tmp_path))
    state = {key: value for key, value in state.items() if not key.startswith("pretrained.blocks.3.")}
    (tmp_path / "depth").mkdir()
    save_file(state, str(tmp_path / "depth" / "cut.safetensors"))
    message = refused(tmp_path, "cut.safetensors")
    assert "3 layers match no published checkpoint" in message


def test_a_folder_of_another_model_or_without_its_processor_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "depth" / "bert"
    other.mkdir(parents=True)
    (other / "config.json").write_text(json.dumps({"model_type": "bert"}))
    assert "'bert' model, not a depth estimator" in refused(tmp_path, "bert")
    folder = save_folder("tiny-dpt-large", tmp_path / "depth" / "no-processor")
    (folder / "preprocessor_config.json").unlink()
    with pytest.raises(ModelError, match=r"has no preprocessor_config\.json"):
        handle(tmp_path, "no-processor").get("feature_extractor")
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # a truncated download
    message = refused(tmp_path, "no-processor")
    assert str(folder) in message and "download them again" in message


def test_an_unknown_name_lists_the_estimators_there_are(tmp_path: Path) -> None:
    with pytest.raises(ModelError) as caught:
        find_depth_estimator("depth-anything-giant", tmp_path)
    assert "'tiny-depth-pro'" in str(caught.value) and str((tmp_path / "depth").resolve()) in str(
        caught.value
    )
    assert DEPTH_ANYTHING.key == "depth-anything"
