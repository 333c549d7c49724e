"""Every family is told apart before its weights load, from a diffusers folder or a single file, and a
single file in the real LDM layout loads to exactly the tensors of the same model's folder.

The tiny models are written as single files by `family_files` (the inverse of the loader). That the
files have the layout A1111 and ComfyUI users keep is checked by diffusers' own single-file loader
(`from_single_file`, given the folder's configs, offline) reading them to the very tensors of the
folder; then ours must read them to the same.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from depthgraph.engine.models.common import ModelError
from depthgraph.engine.models.families import (
    CHECKPOINT_KEYS,
    SD1,
    SD2,
    SD2_DEPTH,
    SDXL,
    UnsupportedModelError,
    checkpoint_info,
    folder_info,
)
from depthgraph.engine.models.manager import ModelManager
from depthgraph.engine.models.tiny import build_tiny
from safetensors.torch import save_file

from tests.models.family_files import (
    WEIGHTED,
    configs_of,
    pipeline_of,
    single_file_state,
    tiny_parts,
)

FAMILY_OF = {"tiny-sd15": SD1, "tiny-sd21": SD2, "tiny-sd21-v": SD2, "tiny-sdxl": SDXL}


def test_the_single_file_keys_read_are_diffusers_own() -> None:
    from diffusers.loaders.single_file_utils import CHECKPOINT_KEY_NAMES

    for name, key in CHECKPOINT_KEYS.items():
        assert CHECKPOINT_KEY_NAMES[name] == key, name


@pytest.mark.parametrize("name", list(FAMILY_OF))
def test_a_saved_folder_is_told_by_its_unet_and_scheduler_configs(name: str, tmp_path: Path) -> None:
    pipeline_of(tiny_parts(name)).save_pretrained(tmp_path / name)
    info = folder_info(tmp_path / name)
    assert info.family == FAMILY_OF[name]
    assert info.prediction_type == ("v_prediction" if name.endswith("-v") else "epsilon")


def write_configs(folder: Path, unet: dict[str, Any], scheduler: dict[str, Any] | None = None) -> Path:
    (folder / "unet").mkdir(parents=True)
    (folder / "model_index.json").write_text("{}")
    (folder / "unet" / "config.json").write_text(json.dumps(unet))
    if scheduler is not None:
        (folder / "scheduler").mkdir()
        (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(scheduler))
    return folder


def test_the_published_configs_tell_each_family(tmp_path: Path) -> None:
    from depthgraph.engine.models import family_configs as published

    cases = [
        (published.SD1_UNET, None, SD1, "epsilon"),
        (published.SD2_UNET, None, SD2, "epsilon"),
        (published.SD2_V_UNET, published.SD2_V_SCHEDULER, SD2, "v_prediction"),
        (published.SDXL_UNET, published.SDXL_SCHEDULER, SDXL, "epsilon"),
        ({**published.SD2_UNET, "in_channels": 5}, None, SD2_DEPTH, "epsilon"),
    ]
    for index, (unet, scheduler, family, prediction) in enumerate(cases):
        info = folder_info(write_configs(tmp_path / str(index), unet, scheduler))
        assert (info.family, info.prediction_type) == (family, prediction), index


def test_kinds_of_model_depthgraph_does_not_run_are_refused_saying_what_they_are(tmp_path: Path) -> None:
    from depthgraph.engine.models.family_configs import SD1_UNET

    inpainting = write_configs(tmp_path / "inpaint", {**SD1_UNET, "in_channels": 9})
    with pytest.raises(UnsupportedModelError, match="is an inpainting model"):
        folder_info(inpainting)
    layout = {CHECKPOINT_KEYS["inpainting"]: (320, 4, 3, 3), CHECKPOINT_KEYS["xl_refiner"]: (1280,)}
    with pytest.raises(UnsupportedModelError, match="SDXL refiner"):
        checkpoint_info(layout, None, Path("refiner.safetensors"))
    with pytest.raises(ModelError, match="carries no text encoder"):
        checkpoint_info({CHECKPOINT_KEYS["inpainting"]: (320, 4, 3, 3)}, None, Path("unet-only.safetensors"))


def test_a_sd2_file_is_v_prediction_unless_it_is_the_512_base_by_diffusers_rule_or_marked() -> None:
    layout = {CHECKPOINT_KEYS["inpainting"]: (320, 4, 3, 3), CHECKPOINT_KEYS["open_clip"]: (49408, 1024)}
    where = Path("v2.ckpt")
    assert checkpoint_info(layout, None, where).prediction_type == "v_prediction"
    assert checkpoint_info(layout, 875000, where).prediction_type == "epsilon"
    widths_only = {CHECKPOINT_KEYS["inpainting"]: (320, 4, 3, 3), CHECKPOINT_KEYS["v2"]: (320, 1024)}
    assert checkpoint_info(widths_only, 875000, where).family == SD2  # diffusers' width rule
    sd1 = {CHECKPOINT_KEYS["inpainting"]: (320, 4, 3, 3), CHECKPOINT_KEYS["clip"]: (77, 768), "v_pred": ()}
    assert checkpoint_info(sd1, None, where).prediction_type == "v_prediction"  # ComfyUI's marker


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Each tiny family as a diffusers folder and as a single file in the models folder."""
    models = tmp_path_factory.mktemp("models")
    made: dict[str, Any] = {"models": models, "parts": {}}
    for name in FAMILY_OF:
        parts = tiny_parts(name)
        pipeline_of(parts).save_pretrained(models / f"folder-{name}")
        state = single_file_state(name, parts)
        if name == "tiny-sd21":  # the one SD 2 file diffusers reads as epsilon: 512-base-ema's step
            torch.save({"state_dict": state, "global_step": 875000}, models / f"{name}.ckpt")
        else:
            save_file(state, str(models / f"{name}.safetensors"))
        made["parts"][name] = parts
    build_tiny("tokenizer").save_pretrained(models / "tokenizer")  # the vocabulary single files lack
    return made


def file_name(name: str) -> str:
    return f"{name}.ckpt" if name == "tiny-sd21" else f"{name}.safetensors"


@pytest.mark.parametrize("name", list(FAMILY_OF))
def test_diffusers_own_single_file_loader_reads_the_exported_layout_to_the_folders_tensors(
    exported: dict[str, Any], name: str
) -> None:
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    models = exported["models"]
    kind = StableDiffusionXLPipeline if name == "tiny-sdxl" else StableDiffusionPipeline
    theirs = kind.from_single_file(
        str(models / file_name(name)), config=str(models / f"folder-{name}"), local_files_only=True
    )
    for part in WEIGHTED:
        expected = exported["parts"][name].get(part)
        if expected is None:
            continue
        loaded = getattr(theirs, part).state_dict()
        for key, value in expected.state_dict().items():
            assert torch.equal(loaded[key], value), f"{part}: {key}"


@pytest.mark.parametrize("name", list(FAMILY_OF))
def test_a_single_file_is_told_its_family_and_loads_to_the_folders_tensors(
    exported: dict[str, Any], name: str
) -> None:
    parts = exported["parts"][name]
    manager = ModelManager(exported["models"])
    family = FAMILY_OF[name]
    manager.single_file_configs = {family.key: configs_of(parts)}
    info = manager.info(file_name(name))
    assert info.family == family and manager.info(f"folder-{name}").family == family
    assert info.prediction_type == ("v_prediction" if name.endswith("-v") else "epsilon")
    for part in WEIGHTED:
        if part not in parts:
            continue
        loaded = manager.load(file_name(name), part).state_dict()
        expected = parts[part].state_dict()
        assert set(loaded) == set(expected), part
        for key, value in expected.items():
            assert torch.equal(loaded[key], value), f"{part}: {key}"
    schedule = manager.load(file_name(name), "scheduler").config
    assert schedule.prediction_type == info.prediction_type


@pytest.mark.parametrize("name", ["tiny-sd15", "tiny-sdxl"])
def test_the_img2img_graph_paints_the_same_image_from_the_single_file_and_the_folder(
    exported: dict[str, Any], name: str, tmp_path: Path
) -> None:
    from depthgraph.engine.app.config import Settings
    from depthgraph.engine.app.engine import Engine
    from PIL import Image

    (tmp_path / "input").mkdir()
    rng = np.random.default_rng(5)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "input" / "photo.png")
    engine = Engine(Settings.under(tmp_path, models_dir=exported["models"], device="cpu"))
    engine.models.single_file_configs = {FAMILY_OF[name].key: configs_of(exported["parts"][name])}
    root = Path(__file__).resolve().parents[2]
    prompt = json.loads((root / "graphs" / "img2img.json").read_text())["nodes"]
    prompt["2"]["inputs"]["image"] = "photo.png"
    prompt["8"]["inputs"]["steps"] = 3
    pictures = []
    for model in (file_name(name), f"folder-{name}"):
        prompt["1"]["inputs"]["ckpt_name"] = model
        result = engine.run(prompt)
        assert result.status == "success", result.error
        saved = engine.files.output_dir / result.outputs["11"]["images"][0]["filename"]
        pictures.append(np.asarray(Image.open(saved)))
    # The same weights; only float rounding differs (a folder's tensors sit at other memory alignments,
    # which changes the summation order of CPU matrix products by an ulp).
    assert np.abs(pictures[0].astype(int) - pictures[1].astype(int)).max() <= 1


def test_the_published_configs_build_each_familys_architecture() -> None:
    """Single files carry no configs; ours must build each family's parts at their published sizes."""
    from depthgraph.engine.models.family_configs import SD1_CONFIGS, SD2_V_CONFIGS, SDXL_CONFIGS
    from depthgraph.engine.models.single_file import empty_component

    expected = {
        "sd1": (SD1_CONFIGS, {"unet": 859.5, "vae": 83.7, "text_encoder": 123.1}),
        "sd2": (SD2_V_CONFIGS, {"unet": 865.9, "vae": 83.7, "text_encoder": 340.4}),
        "sdxl": (SDXL_CONFIGS, {"unet": 2567.5, "vae": 83.7, "text_encoder": 123.1, "text_encoder_2": 694.7}),
    }
    for family, (configs, millions) in expected.items():
        with torch.device("meta"):
            parts = {part: empty_component(part, configs) for part in millions}
        counted = {
            part: round(sum(p.numel() for p in module.parameters()) / 1e6, 1)
            for part, module in parts.items()
        }
        assert counted == millions, family
