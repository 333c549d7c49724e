"""A checkpoint's LDM yaml beside it (A1111's layout) decides how it is read, SD 1.x/2.x/XL or SD2-depth;
a yaml for a kind of model depthgraph does not run is refused with what it is; without one a file whose
tensors tell nothing is read as SD2-depth.

The configs here are written in code with the values of Stability's v2-midas-inference.yaml (and of
its siblings for the refusals), as a user's `NAME.yaml` would hold them.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from depthgraph.engine.models.common import ModelError
from depthgraph.engine.models.families import UnsupportedModelError
from depthgraph.engine.models.ldm_config import SD2_DEPTH_ARCHITECTURE, architecture_of, yaml_beside
from depthgraph.engine.models.manager import ModelSource
from depthgraph.engine.models.sd2_depth import SCHEDULER, SD2_DEPTH

UNET_PARAMS = {
    "use_checkpoint": True,
    "image_size": 32,
    "in_channels": 5,
    "out_channels": 4,
    "model_channels": 320,
    "attention_resolutions": [4, 2, 1],
    "num_res_blocks": 2,
    "channel_mult": [1, 2, 4, 4],
    "num_head_channels": 64,
    "use_spatial_transformer": True,
    "use_linear_in_transformer": True,
    "transformer_depth": 1,
    "context_dim": 1024,
    "legacy": False,
}
MIDAS_CONFIG: dict[str, Any] = {
    "model": {
        "base_learning_rate": 5.0e-07,
        "target": "ldm.models.diffusion.ddpm.LatentDepth2ImageDiffusion",
        "params": {
            "linear_start": 0.00085,
            "linear_end": 0.0120,
            "num_timesteps_cond": 1,
            "timesteps": 1000,
            "image_size": 64,
            "channels": 4,
            "conditioning_key": "hybrid",
            "scale_factor": 0.18215,
            "use_ema": False,
            "depth_stage_config": {
                "target": "ldm.modules.midas.api.MiDaSInference",
                "params": {"model_type": "dpt_hybrid"},
            },
            "unet_config": {
                "target": "ldm.modules.diffusionmodules.openaimodel.UNetModel",
                "params": UNET_PARAMS,
            },
            "first_stage_config": {
                "target": "ldm.models.autoencoder.AutoencoderKL",
                "params": {
                    "embed_dim": 4,
                    "ddconfig": {
                        "double_z": True,
                        "z_channels": 4,
                        "resolution": 256,
                        "in_channels": 3,
                        "out_ch": 3,
                        "ch": 128,
                        "ch_mult": [1, 2, 4, 4],
                        "num_res_blocks": 2,
                        "attn_resolutions": [],
                        "dropout": 0.0,
                    },
                    "lossconfig": {"target": "torch.nn.Identity"},
                },
            },
            "cond_stage_config": {
                "target": "ldm.modules.encoders.modules.FrozenOpenCLIPEmbedder",
                "params": {"freeze": True, "layer": "penultimate"},
            },
        },
    }
}


def beside(tmp_path: Path, config: Any, name: str = "512-depth-ema") -> Path:
    checkpoint = tmp_path / f"{name}.ckpt"
    checkpoint.write_bytes(b"")
    (tmp_path / f"{name}.yaml").write_text(config if isinstance(config, str) else yaml.safe_dump(config))
    return checkpoint


def changed(**params: Any) -> dict[str, Any]:
    config = copy.deepcopy(MIDAS_CONFIG)
    config["model"]["params"].update(params)
    return config


def test_without_a_yaml_the_file_is_read_as_sd2_depth(tmp_path: Path) -> None:
    checkpoint = tmp_path / "512-depth-ema.safetensors"
    checkpoint.write_bytes(b"")
    assert yaml_beside(checkpoint) is None
    assert architecture_of(checkpoint) is SD2_DEPTH_ARCHITECTURE


def test_stabilitys_depth_config_gives_the_sd2_depth_architecture_and_schedule(tmp_path: Path) -> None:
    architecture = architecture_of(beside(tmp_path, MIDAS_CONFIG))
    assert architecture.yaml == tmp_path / "512-depth-ema.yaml"
    for key in (
        "in_channels",
        "out_channels",
        "block_out_channels",
        "attention_head_dim",
        "cross_attention_dim",
        "down_block_types",
        "up_block_types",
        "layers_per_block",
        "use_linear_projection",
        "sample_size",
    ):
        assert architecture.configs.unet[key] == SD2_DEPTH.unet[key], key
    assert dict(architecture.configs.vae) == dict(SD2_DEPTH.vae)
    assert dict(architecture.configs.text_encoder) == dict(SD2_DEPTH.text_encoder)
    assert dict(architecture.scheduler) == SCHEDULER
    assert architecture.scheduler["clip_sample"] is False


def test_the_yaml_decides_parameterization_text_layer_scale_factor_and_schedule(tmp_path: Path) -> None:
    config = changed(parameterization="v", scale_factor=0.13025, linear_end=0.02, timesteps=500)
    config["model"]["params"]["cond_stage_config"]["params"]["layer"] = "last"
    config["model"]["params"]["unet_config"]["params"]["num_head_channels"] = 32
    architecture = architecture_of(beside(tmp_path, config))
    assert architecture.scheduler["prediction_type"] == "v_prediction"
    assert architecture.scheduler["beta_end"] == 0.02
    assert architecture.scheduler["num_train_timesteps"] == 500
    assert architecture.configs.vae["scaling_factor"] == 0.13025
    assert architecture.configs.text_encoder["num_hidden_layers"] == 24
    assert architecture.configs.unet["attention_head_dim"] == [10, 20, 40, 40]


def test_a_yml_beside_the_file_is_found_too(tmp_path: Path) -> None:
    checkpoint = tmp_path / "depth.safetensors"
    checkpoint.write_bytes(b"")
    (tmp_path / "depth.yml").write_text(yaml.safe_dump(changed(parameterization="v")))
    assert architecture_of(checkpoint).scheduler["prediction_type"] == "v_prediction"


def not_depth(target: str, in_channels: int) -> dict[str, Any]:
    config = copy.deepcopy(MIDAS_CONFIG)
    config["model"]["target"] = target
    del config["model"]["params"]["depth_stage_config"]
    config["model"]["params"]["unet_config"]["params"]["in_channels"] = in_channels
    return config


def refiner() -> dict[str, Any]:
    config = not_depth("sgm.models.diffusion.DiffusionEngine", 4)
    config["model"]["params"]["network_config"] = {"params": {**UNET_PARAMS, "context_dim": 1280}}
    return config


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (not_depth("ldm.models.diffusion.ddpm.LatentInpaintDiffusion", 9), "describes an inpainting model"),
        (
            {"model": {**MIDAS_CONFIG["model"], "target": "my.Thing"}},
            r"describes a Thing \(Thing\), which depthgraph does not run",
        ),
        (refiner(), "describes an SDXL refiner"),
    ],
)
def test_a_yaml_for_another_kind_of_model_is_refused_saying_what_it_is(
    tmp_path: Path, config: dict[str, Any], message: str
) -> None:
    with pytest.raises(UnsupportedModelError, match=message):
        architecture_of(beside(tmp_path, config))


def test_a_text_to_image_yaml_is_read_as_its_family(tmp_path: Path) -> None:
    """v2-inference-v.yaml (LatentDiffusion, OpenCLIP, v) is SD 2.x; v1-inference.yaml (CLIP) SD 1.x."""
    sd2 = not_depth("ldm.models.diffusion.ddpm.LatentDiffusion", 4)
    sd2["model"]["params"]["parameterization"] = "v"
    architecture = architecture_of(beside(tmp_path, sd2, name="v2-1_768-ema-pruned"))
    assert architecture.family == "sd2" and architecture.scheduler["prediction_type"] == "v_prediction"
    assert architecture.configs.unet["in_channels"] == 4 and architecture.configs.depth_estimator is None
    sd1 = not_depth("ldm.models.diffusion.ddpm.LatentDiffusion", 4)
    sd1["model"]["params"]["cond_stage_config"] = {
        "target": "ldm.modules.encoders.modules.FrozenCLIPEmbedder"
    }
    sd1["model"]["params"]["unet_config"]["params"].update(
        context_dim=768, use_linear_in_transformer=False, num_heads=8
    )
    architecture = architecture_of(beside(tmp_path, sd1, name="v1-5-pruned"))
    assert architecture.family == "sd1" and architecture.configs.unet["cross_attention_dim"] == 768
    assert architecture.configs.text_encoder["hidden_act"] == "quick_gelu"


def test_a_depth_config_that_cannot_be_read_says_what_is_wrong(tmp_path: Path) -> None:
    four_channels = copy.deepcopy(MIDAS_CONFIG)
    four_channels["model"]["params"]["unet_config"]["params"]["in_channels"] = 4
    large_midas = changed(depth_stage_config={"params": {"model_type": "dpt_large"}})
    cases = [
        (four_channels, "takes 4 input channels, the depth model takes 5"),
        (large_midas, "depth stage is MiDaS 'dpt_large'"),
        (changed(parameterization="x"), "parameterization 'x'"),
        (changed(linear_start="fast"), "noise schedule cannot be read"),
        ("model: [unclosed", "cannot be read .*remove it to read the checkpoint as SD2-depth"),
        ("- just\n- a list\n", "is not a model config"),
        ({"model": {"target": "ldm.models.diffusion.ddpm.LatentDepth2ImageDiffusion"}}, "no `model.params`"),
    ]
    for index, (config, message) in enumerate(cases):
        with pytest.raises(ModelError, match=message):
            architecture_of(beside(tmp_path, config, name=f"model-{index}"))


def test_a_changed_yaml_changes_the_models_fingerprint(tmp_path: Path) -> None:
    checkpoint = beside(tmp_path, MIDAS_CONFIG)
    source = ModelSource(checkpoint.name, "single_file", checkpoint)
    before = source.fingerprint()
    yaml_file = tmp_path / "512-depth-ema.yaml"
    yaml_file.write_text(yaml.safe_dump(changed(parameterization="v")))
    stat = yaml_file.stat()
    os.utime(yaml_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert source.fingerprint() != before


def test_the_loader_samples_with_the_yamls_schedule_and_refuses_a_wrong_yaml_before_reading_weights(
    tmp_path: Path,
) -> None:
    from depthgraph.engine.models.manager import ModelManager

    v_model = beside(tmp_path, changed(parameterization="v"), name="depth-v")
    v_model.rename(v_model.with_suffix(".safetensors"))
    beside(tmp_path, not_depth("ldm.models.diffusion.ddpm.LatentInpaintDiffusion", 9), name="inpaint")
    manager = ModelManager(tmp_path)
    assert manager.load("depth-v.safetensors", "scheduler").config.prediction_type == "v_prediction"
    assert "read with depth-v.yaml" in manager.find("depth-v.safetensors").describe()
    with pytest.raises(ModelError, match=r"inpaint\.yaml describes an inpainting model"):
        manager.load("inpaint.ckpt", "unet")  # the empty file is never opened: the yaml is refused first
