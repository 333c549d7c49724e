"""ControlNets as users keep them: diffusers folders, and single files in the diffusers layout and the
original ControlNet code's (prefixed `.pth` and bare fp16 safetensors, with or without the original
yaml beside them), each read into the same ControlNet as the folder; the original layout is checked
against diffusers' own single-file key tables; what is no ControlNet is refused saying what it is."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from depthgraph.engine.models.common import ModelError
from depthgraph.engine.models.controlnet_layout import LAYOUT_KEYS, config_from_weights
from depthgraph.engine.models.controlnets import find_controlnet, find_controlnets, read_controlnet
from depthgraph.engine.models.families import SD1, SD2, SDXL
from depthgraph.engine.models.tiny_controlnets import TINY_CONTROLNETS, build_tiny_controlnet
from diffusers.loaders import single_file_utils
from safetensors.torch import save_file

from tests.models.ldm_export import controlnet_to_ldm, original_controlnet_yaml

FAMILIES = {"tiny-controlnet-sd15": SD1, "tiny-controlnet-sd21": SD2, "tiny-controlnet-sdxl": SDXL}


def same_weights(ours: Any, theirs: Any) -> None:
    mine, reference = ours.state_dict(), theirs.state_dict()
    assert mine.keys() == reference.keys()
    for key, value in reference.items():
        assert torch.equal(mine[key], value), key


def same_outputs(ours: Any, theirs: Any) -> None:
    """The same residuals for the same input: the architecture (heads included) was read right."""
    generator = torch.Generator().manual_seed(0)
    sample = torch.randn(2, 4, 8, 8, generator=generator)
    text = torch.randn(2, 77, theirs.config.cross_attention_dim, generator=generator)
    hint = torch.rand(2, 3, 64, 64, generator=generator)
    added = None
    if theirs.config.addition_embed_type == "text_time":
        pooled = (
            theirs.config.projection_class_embeddings_input_dim - 6 * theirs.config.addition_time_embed_dim
        )
        added = {
            "text_embeds": torch.randn(2, pooled, generator=generator),
            "time_ids": torch.tensor([[64.0, 64, 0, 0, 64, 64]] * 2),
        }
    with torch.no_grad():
        mine = ours(sample, 500, text, hint, added_cond_kwargs=added, return_dict=False)
        reference = theirs(sample, 500, text, hint, added_cond_kwargs=added, return_dict=False)
    for a, b in zip([*mine[0], mine[1]], [*reference[0], reference[1]], strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    assert reference[1].abs().max() > 0  # the tiny ControlNets' output convolutions are not zero


@pytest.mark.parametrize("name", list(TINY_CONTROLNETS))
def test_a_diffusers_folder_loads_as_saved(tmp_path: Path, name: str) -> None:
    model = build_tiny_controlnet(name)
    model.save_pretrained(tmp_path / "controlnet" / "depth" / "control_v11f1p_sd15_depth")
    source = find_controlnet("depth/control_v11f1p_sd15_depth", tmp_path)
    assert source.kind == "folder"
    assert source.info().family is FAMILIES[name]
    same_weights(read_controlnet(source), model)


@pytest.mark.parametrize("name", ["tiny-controlnet-sd15", "tiny-controlnet-sd21"])
def test_a_diffusers_layout_file_loads_from_its_shapes(tmp_path: Path, name: str) -> None:
    """A diffusers ControlNet's weights kept alone: the architecture is read from the tensors."""
    model = build_tiny_controlnet(name)
    (tmp_path / "controlnet").mkdir()
    save_file(model.state_dict(), tmp_path / "controlnet" / "depth.safetensors")
    source = find_controlnet("depth.safetensors", tmp_path)
    assert source.kind == "single_file"
    assert source.info().family is FAMILIES[name]
    loaded = read_controlnet(source)
    same_weights(loaded, model)
    same_outputs(loaded, model)


def test_an_sdxl_file_takes_the_config_beside_it(tmp_path: Path) -> None:
    """SDXL's size-embedding width cannot be told from a tiny file's tensors: without the config it
    is refused saying so, with `NAME.json` (the diffusers config.json) beside it, it loads."""
    model = build_tiny_controlnet("tiny-controlnet-sdxl")
    folder = tmp_path / "controlnet"
    folder.mkdir()
    save_file(model.state_dict(), folder / "controlnet-depth-sdxl-1.0.safetensors")
    source = find_controlnet("controlnet-depth-sdxl-1.0.safetensors", tmp_path)
    assert source.info().family is SDXL
    with pytest.raises(ModelError, match=r"save its config\.json beside it"):
        read_controlnet(source)
    (folder / "controlnet-depth-sdxl-1.0.json").write_text(json.dumps(dict(model.config)))
    loaded = read_controlnet(source)
    same_weights(loaded, model)
    same_outputs(loaded, model)
    # diffusers' own single-file loader tells the file an SDXL ControlNet by the same names.
    state = model.state_dict()
    assert single_file_utils.infer_diffusers_model_type(state).startswith("controlnet_xl")


def test_the_real_sdxl_config_is_read_from_the_shapes() -> None:
    """diffusers/controlnet-depth-sdxl-1.0's architecture, from its tensors' shapes alone."""
    real = {
        "in_channels": 4,
        "conditioning_channels": 3,
        "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
        "block_out_channels": [320, 640, 1280],
        "layers_per_block": 2,
        "cross_attention_dim": 2048,
        "transformer_layers_per_block": [1, 2, 10],
        "attention_head_dim": [5, 10, 20],
        "use_linear_projection": True,
        "addition_embed_type": "text_time",
        "addition_time_embed_dim": 256,
        "projection_class_embeddings_input_dim": 2816,
        "conditioning_embedding_out_channels": [16, 32, 96, 256],
    }
    from diffusers import ControlNetModel

    with torch.device("meta"):
        model = ControlNetModel(**real)
    shapes = {key: torch.empty(value.shape, device="meta") for key, value in model.state_dict().items()}
    read = config_from_weights(shapes)
    assert {key: read[key] for key in real} == real


@pytest.mark.parametrize(
    ("name", "prefix", "suffix"),
    [
        ("tiny-controlnet-sd15", "control_model.", ".pth"),  # control_v11f1p_sd15_depth.pth
        ("tiny-controlnet-sd15", "", ".safetensors"),  # control_v11f1p_sd15_depth_fp16.safetensors
        ("tiny-controlnet-sd21", "control_model.", ".safetensors"),  # controlnet-sd21 files
    ],
)
@pytest.mark.parametrize("with_yaml", [False, True])
def test_an_original_layout_file_loads(
    tmp_path: Path, name: str, prefix: str, suffix: str, with_yaml: bool
) -> None:
    model = build_tiny_controlnet(name)
    state = controlnet_to_ldm(model.state_dict(), dict(model.config), prefix)
    folder = tmp_path / "controlnet"
    folder.mkdir()
    path = folder / f"control_depth{suffix}"
    if suffix == ".pth":
        torch.save(state, path)
    else:
        save_file(state, path)
    if with_yaml:
        path.with_suffix(".yaml").write_text(original_controlnet_yaml(dict(model.config)))
    source = find_controlnet(path.name, tmp_path)
    assert source.info().family is FAMILIES[name]
    loaded = read_controlnet(source)
    same_weights(loaded, model)
    same_outputs(loaded, model)


def test_the_original_layout_is_the_one_diffusers_reads() -> None:
    """The names written are those of the original files: diffusers' single-file loader tells them a
    ControlNet, its converter maps every one of them back (none left over, none missing), and the
    names of control_v11f1p_sd15_depth.pth that do not depend on its size are among them."""
    model = build_tiny_controlnet("tiny-controlnet-sd15")
    state = controlnet_to_ldm(model.state_dict(), dict(model.config))
    assert single_file_utils.infer_diffusers_model_type(state) == "controlnet"
    converted = single_file_utils.convert_controlnet_checkpoint(state, {"layers_per_block": 2})
    assert {key for key, value in converted.items() if value is not None} == set(model.state_dict())
    for key, value in model.state_dict().items():
        assert torch.equal(converted[key], value), key
    for real in (
        "control_model.time_embed.0.weight",
        "control_model.input_blocks.0.0.weight",
        "control_model.input_blocks.1.0.in_layers.0.weight",
        "control_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight",
        "control_model.input_blocks.3.0.op.weight",
        "control_model.input_hint_block.0.weight",
        "control_model.input_hint_block.14.weight",
        "control_model.zero_convs.0.0.weight",
        "control_model.middle_block.1.proj_in.weight",
        "control_model.middle_block_out.0.weight",
    ):
        assert real in state, real
    assert LAYOUT_KEYS["original"] in state


@pytest.mark.parametrize(
    ("keys", "said"),
    [
        ({"model.diffusion_model.input_blocks.0.0.weight": [4, 4]}, "Load Checkpoint"),
        ({"adapter.body.0.resnets.0.block1.weight": [4, 4]}, "T2I-Adapter"),
        ({"lora_controlnet": [1]}, "Control-LoRA"),
        ({"something.else": [4]}, "holds no ControlNet"),
    ],
)
def test_what_is_no_controlnet_is_refused_saying_what_it_is(
    tmp_path: Path, keys: dict[str, list[int]], said: str
) -> None:
    folder = tmp_path / "controlnet"
    folder.mkdir()
    save_file({key: torch.zeros(shape) for key, shape in keys.items()}, folder / "wrong.safetensors")
    source = find_controlnet("wrong.safetensors", tmp_path)
    with pytest.raises(ModelError, match=said):
        source.info()
    assert "cannot be used" in source.describe()


def test_a_folder_of_another_model_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "controlnet" / "not-a-controlnet"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"_class_name": "UNet2DConditionModel"}))
    with pytest.raises(ModelError, match="not a diffusers ControlNet config"):
        find_controlnet("not-a-controlnet", tmp_path).info()


def test_the_built_in_ones_come_first_and_a_missing_name_says_where_it_looked(tmp_path: Path) -> None:
    assert [source.name for source in find_controlnets(tmp_path)] == list(TINY_CONTROLNETS)
    with pytest.raises(ModelError, match=r"controlnet.*Available: 'tiny-controlnet-sd15'"):
        find_controlnet("control_v11f1p_sd15_depth", tmp_path)
