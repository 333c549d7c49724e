"""Single-file depth checkpoints (LDM/MiDaS names) load to exactly the tensors of the diffusers folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from depthgraph.engine.models.common import ModelError
from depthgraph.engine.models.single_file import (
    DEPTH_PREFIX,
    DepthModelConfigs,
    convert_midas,
    load_single_file,
    midas_key_to_dpt,
)
from depthgraph.engine.models.tiny import build_tiny
from safetensors.torch import save_file

from tests.models.ldm_export import dpt_to_midas, text_to_open_clip, unet_to_ldm, vae_to_ldm

PARTS = ("unet", "vae", "text_encoder", "depth_estimator")


@pytest.fixture(scope="module")
def tiny() -> dict[str, Any]:
    return {part: build_tiny(part) for part in PARTS}


def configs_of(tiny: dict[str, Any]) -> DepthModelConfigs:
    return DepthModelConfigs(
        unet=dict(tiny["unet"].config),
        vae=dict(tiny["vae"].config),
        text_encoder=tiny["text_encoder"].config.to_dict(),
        depth_estimator=tiny["depth_estimator"].config.to_dict(),
    )


def single_file_state(tiny: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The tiny model as a 512-depth-ema file lays it out, with the extra keys such files carry."""
    state: dict[str, torch.Tensor] = {}
    state.update(unet_to_ldm(tiny["unet"].state_dict(), tiny["unet"].config))
    state.update(vae_to_ldm(tiny["vae"].state_dict(), tiny["vae"].config))
    state.update(text_to_open_clip(tiny["text_encoder"].state_dict()))
    state.update(
        dpt_to_midas(tiny["depth_estimator"].state_dict(), tiny["depth_estimator"].config.hidden_size)
    )
    state["betas"] = torch.linspace(0.00085, 0.012, 1000)
    state[DEPTH_PREFIX + "pretrained.model.head.weight"] = torch.zeros(10, 32)  # timm's unused classifier
    return {key: value.contiguous().clone() for key, value in state.items()}


def test_midas_names_map_onto_every_dpt_weight(tiny: dict[str, Any]) -> None:
    estimator = tiny["depth_estimator"]
    midas = {
        key[len(DEPTH_PREFIX) :]: value
        for key, value in single_file_state(tiny).items()
        if key.startswith(DEPTH_PREFIX)
    }
    converted = convert_midas(midas, estimator.config.hidden_size, estimator.config.num_hidden_layers)
    assert set(converted) == set(estimator.state_dict())
    assert midas_key_to_dpt("scratch.refinenet4.resConfUnit1.conv2.bias") == (
        "neck.fusion_stage.layers.0.residual_layer1.convolution2.bias"
    )
    assert midas_key_to_dpt("pretrained.model.patch_embed.backbone.stages.1.blocks.0.conv1.weight") == (
        "dpt.embeddings.backbone.bit.encoder.stages.1.layers.0.conv1.weight"
    )


@pytest.mark.parametrize("suffix", [".safetensors", ".ckpt"])
def test_a_single_file_loads_to_the_same_tensors_as_the_folder(
    tiny: dict[str, Any], tmp_path: Path, suffix: str
) -> None:
    state = single_file_state(tiny)
    path = tmp_path / f"512-depth-ema{suffix}"
    if suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save({"state_dict": state, "global_step": 0}, path)
    loaded = load_single_file(path, configs_of(tiny))
    for part in PARTS:
        expected = tiny[part].state_dict()
        actual = loaded[part].state_dict()
        assert set(actual) == set(expected), part
        for key, value in expected.items():
            assert torch.equal(actual[key], value), f"{part}: {key}"


def test_a_checkpoint_that_is_not_a_depth_model_says_so(tiny: dict[str, Any], tmp_path: Path) -> None:
    state = single_file_state(tiny)
    first = "model.diffusion_model.input_blocks.0.0.weight"
    state[first] = state[first][:, :4].contiguous()
    path = tmp_path / "v2-1_512-ema-pruned.safetensors"
    save_file(state, str(path))
    with pytest.raises(
        ModelError, match="is not a depth model: its UNet takes 4 channels, the depth model takes 5"
    ):
        load_single_file(path, configs_of(tiny))


def test_a_depth_file_pruned_of_its_midas_weights_loads_without_an_estimator(
    tiny: dict[str, Any], tmp_path: Path
) -> None:
    """Its depth maps can come from an estimator loaded on its own; asking it for its own says so."""
    from depthgraph.engine.models.manager import ModelManager

    state = {key: value for key, value in single_file_state(tiny).items() if not key.startswith(DEPTH_PREFIX)}
    path = tmp_path / "no-midas.safetensors"
    save_file(state, str(path))
    assert sorted(load_single_file(path, configs_of(tiny))) == ["text_encoder", "unet", "vae"]
    manager = ModelManager(tmp_path)
    manager.single_file_configs = configs_of(tiny)
    assert manager.info(path.name).depth_estimator is False
    with pytest.raises(ModelError, match="pruned of its MiDaS depth estimator: load a depth estimator"):
        manager.load(path.name, "depth_estimator")


def test_the_graph_on_a_single_file_paints_what_it_paints_on_the_same_weights_built_in(
    tiny: dict[str, Any], tmp_path: Path
) -> None:
    """The tiny model exported as `512-depth-ema.safetensors` is the built-in tiny-random model, so the
    depth-to-image graph must give the very same image on both."""
    import json

    import numpy as np
    from depthgraph.engine.app.config import Settings
    from depthgraph.engine.app.engine import Engine
    from PIL import Image

    models = tmp_path / "models"
    models.mkdir()
    save_file(single_file_state(tiny), str(models / "512-depth-ema.safetensors"))
    build_tiny("tokenizer").save_pretrained(models / "tokenizer")
    (tmp_path / "input").mkdir()
    rng = np.random.default_rng(5)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "input" / "photo.png")
    engine = Engine(Settings.under(tmp_path, device="cpu"))
    engine.models.single_file_configs = configs_of(tiny)
    prompt = json.loads((Path(__file__).resolve().parents[2] / "graphs" / "depth2img.json").read_text())[
        "nodes"
    ]
    prompt["2"]["inputs"]["image"] = "photo.png"
    prompt["8"]["inputs"]["steps"] = 3
    pictures = []
    for model in ("512-depth-ema.safetensors", "tiny-random"):
        prompt["1"]["inputs"]["ckpt_name"] = model
        result = engine.run(prompt)
        assert result.status == "success", result.error
        saved = engine.files.output_dir / result.outputs["11"]["images"][0]["filename"]
        pictures.append(np.asarray(Image.open(saved)))
    assert np.array_equal(pictures[0], pictures[1])


def test_a_single_file_without_a_tokenizer_says_where_to_get_one(
    tiny: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from depthgraph.engine.models.manager import ModelManager

    # open_clip as if absent

    monkeypatch.setattr("depthgraph.engine.models.sd2_depth.BPE_FILE", "not-installed.txt.gz")
    save_file(single_file_state(tiny), str(tmp_path / "512-depth-ema.safetensors"))
    manager = ModelManager(tmp_path)
    with pytest.raises(ModelError, match=r"carry no tokenizer.*open_clip_torch"):
        manager.load("512-depth-ema.safetensors", "tokenizer")


def test_models_convert_writes_a_folder_diffusers_can_load(
    tiny: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from depthgraph.engine.app.cli import main
    from diffusers import StableDiffusionDepth2ImgPipeline

    monkeypatch.setattr("depthgraph.engine.models.convert.SD2_DEPTH", configs_of(tiny))
    checkpoint = tmp_path / "512-depth-ema.safetensors"
    save_file(single_file_state(tiny), str(checkpoint))
    build_tiny("tokenizer").save_pretrained(tmp_path / "tokenizer")
    assert main(["models", "convert", str(checkpoint), str(tmp_path / "converted")]) == 0
    pipeline = StableDiffusionDepth2ImgPipeline.from_pretrained(tmp_path / "converted")
    for key, value in tiny["unet"].state_dict().items():
        assert torch.equal(pipeline.unet.state_dict()[key], value)
    written = json.loads((tmp_path / "converted" / "scheduler" / "scheduler_config.json").read_text())
    assert written["clip_sample"] is False and written["set_alpha_to_one"] is False  # as Stability samples
    assert written["steps_offset"] == 1 and written["prediction_type"] == "epsilon"
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".")] == []
    assert main(["models", "convert", str(checkpoint), str(tmp_path / "converted")]) == 1  # never overwrites


def test_the_sd2_depth_configs_build_the_published_architecture() -> None:
    """Single files carry no configs; ours must build SD2-depth's parts at their published sizes."""
    from depthgraph.engine.models.sd2_depth import SD2_DEPTH
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, DPTConfig, DPTForDepthEstimation

    with torch.device("meta"):  # shapes only, no memory
        parts = {
            "unet": UNet2DConditionModel.from_config(SD2_DEPTH.unet),
            "vae": AutoencoderKL.from_config(SD2_DEPTH.vae),
            "text_encoder": CLIPTextModel(CLIPTextConfig(**SD2_DEPTH.text_encoder)),
            "depth_estimator": DPTForDepthEstimation(DPTConfig(**SD2_DEPTH.depth_estimator)),
        }
    millions = {
        name: round(sum(p.numel() for p in part.parameters()) / 1e6, 1) for name, part in parts.items()
    }
    assert millions == {"unet": 865.9, "vae": 83.7, "text_encoder": 340.4, "depth_estimator": 122.4}
    assert parts["unet"].config.in_channels == 5


def test_a_fine_tune_with_an_ema_copy_loads_the_ema_unet(
    tiny: dict[str, Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A `use_ema: True` training checkpoint keeps LitEma's copy of the UNet (`model_ema.*`) beside the
    training weights; the copy is the one made for inference, so it is the one loaded."""
    import logging

    from depthgraph.engine.models.single_file import EMA_PREFIX, ema_name

    unet = tiny["unet"]
    averaged = {key: value + 1 for key, value in unet.state_dict().items()}
    state = single_file_state(tiny)
    for key, value in unet_to_ldm(averaged, unet.config).items():
        state[ema_name(key)] = value.contiguous().clone()
    frozen = "model.diffusion_model.time_embed.0.bias"  # LitEma keeps no copy of a frozen parameter
    del state[ema_name(frozen)]
    state[f"{EMA_PREFIX}decay"] = torch.tensor(0.9999)
    state[f"{EMA_PREFIX}num_updates"] = torch.tensor(1234, dtype=torch.int32)
    path = tmp_path / "depth-fine-tune.ckpt"
    torch.save({"state_dict": state, "global_step": 1234}, path)
    with caplog.at_level(logging.INFO, logger="depthgraph.models"):
        loaded = load_single_file(path, configs_of(tiny))
    for key, value in loaded["unet"].state_dict().items():
        if key == "time_embedding.linear_1.bias":
            assert torch.equal(value, unet.state_dict()[key]), "a tensor without a copy keeps its own value"
        else:
            assert torch.equal(value, averaged[key]), key
    for part in ("vae", "text_encoder", "depth_estimator"):
        for key, value in tiny[part].state_dict().items():
            assert torch.equal(loaded[part].state_dict()[key], value), f"{part}: {key}"
    [message] = [record.getMessage() for record in caplog.records if record.name == "depthgraph.models"]
    assert message.startswith(f"{path}: the UNet's EMA weights are used")
