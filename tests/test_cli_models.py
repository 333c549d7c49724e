"""`depthgraph models list | fetch | import` (the download is replaced: no network)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from depthgraph.engine.app.cli import main
from depthgraph.engine.models.importing import FOLDER_PARTS
from safetensors.torch import save_file


def make_depth_folder(folder: Path, channels: int = 5) -> None:
    for part in FOLDER_PARTS:
        (folder / part).mkdir(parents=True, exist_ok=True)
    (folder / "model_index.json").write_text("{}")
    (folder / "unet" / "config.json").write_text(json.dumps({"in_channels": channels}))


def depth_checkpoint(path: Path, channels: int = 5, ema: bool = False) -> Path:
    """A file with the names a 512-depth-ema file has for the parts the checks read."""
    state = {
        "model.diffusion_model.input_blocks.0.0.weight": torch.zeros(320, channels, 3, 3),
        "model.diffusion_model.out.2.bias": torch.zeros(4),
        "first_stage_model.decoder.conv_out.bias": torch.zeros(3),
        "cond_stage_model.model.ln_final.weight": torch.zeros(8),
        "depth_model.model.scratch.output_conv.4.bias": torch.zeros(1),
        "betas": torch.zeros(10),
    }
    if ema:
        state.update({f"model_ema.diffusion_model{index}": torch.zeros(1) for index in range(101)})
    save_file(state, str(path))
    return path


def models_in(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir()) if folder.exists() else []


def test_models_list_shows_the_tiny_model_and_folders_in_the_models_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_depth_folder(tmp_path / "models" / "sd2-depth")
    make_depth_folder(tmp_path / "models" / "stabilityai" / "stable-diffusion-2-depth")
    (tmp_path / "models" / "notes").mkdir()
    assert main(["models", "--models-dir", str(tmp_path / "models"), "list"]) == 0
    lines = capsys.readouterr().out.split("\n\n")[0].splitlines()  # the depth estimators follow
    assert [line.split()[0] for line in lines] == [
        "tiny-random",
        "tiny-sd15",
        "tiny-sd21",
        "tiny-sd21-v",
        "tiny-sdxl",
        "sd2-depth",
        "stabilityai/stable-diffusion-2-depth",
    ]
    assert "noise" in lines[0]
    assert lines[0].endswith("(DepthSampler); depth estimation (its own MiDaS DPT-hybrid, DEPTH_MODEL)")
    assert "Stable Diffusion XL, epsilon: image-to-image and inpainting (Sampler)" in lines[4]
    assert "Stable Diffusion 2.x, v-prediction" in lines[3]
    assert "Stable Diffusion 2 depth" in lines[5] and "[told by unet/config.json]" in lines[5]


@pytest.fixture
def downloads(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """snapshot_download replaced: it writes a depth model folder where it is told."""
    calls: list[dict[str, Any]] = []

    def fake_download(**options: Any) -> str:
        calls.append(options)
        make_depth_folder(Path(options["local_dir"]))
        return str(options["local_dir"])

    monkeypatch.setattr("huggingface_hub.snapshot_download", fake_download)
    return calls


def test_models_fetch_downloads_the_diffusers_layout_into_the_models_dir(
    tmp_path: Path, downloads: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["models", "--models-dir", str(tmp_path / "models"), "fetch"]) == 0
    (options,) = downloads
    assert options["repo_id"] == "stabilityai/stable-diffusion-2-depth"
    assert "*/*.safetensors" in options["allow_patterns"] and "*.ckpt" in options["ignore_patterns"]
    assert models_in(tmp_path / "models") == ["stable-diffusion-2-depth"]  # nothing left half-way
    assert "ckpt_name=stable-diffusion-2-depth" in capsys.readouterr().out


def test_models_fetch_takes_another_repository(tmp_path: Path, downloads: list[dict[str, Any]]) -> None:
    assert (
        main(["models", "--models-dir", str(tmp_path), "fetch", "someone/depth-finetune", "--revision", "v2"])
        == 0
    )
    assert downloads[0]["repo_id"] == "someone/depth-finetune" and downloads[0]["revision"] == "v2"
    assert models_in(tmp_path) == ["depth-finetune"]


def test_a_failed_download_is_one_clear_line_and_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def cut_off(**options: Any) -> str:
        (Path(options["local_dir"]) / "unet").mkdir(parents=True)
        (Path(options["local_dir"]) / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"half")
        raise OSError("network is unreachable")

    monkeypatch.setattr("huggingface_hub.snapshot_download", cut_off)
    assert main(["models", "--models-dir", str(tmp_path), "fetch", "someone/depth-model"]) == 1
    error = capsys.readouterr().err
    assert "could not download someone/depth-model" in error and "network is unreachable" in error
    assert models_in(tmp_path) == []


def test_a_download_of_a_model_depthgraph_does_not_run_is_refused_and_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(
        "huggingface_hub.snapshot_download",
        lambda **options: make_depth_folder(Path(options["local_dir"]), channels=9),
    )
    assert main(["models", "--models-dir", str(tmp_path), "fetch", "someone/sd2-inpainting"]) == 1
    error = capsys.readouterr().err
    assert "someone/sd2-inpainting was downloaded but cannot be used, so it was removed" in error
    assert "is an inpainting model" in error and ".fetching" not in error
    assert models_in(tmp_path) == []


def test_a_download_of_a_plain_sd_model_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(
        "huggingface_hub.snapshot_download",
        lambda **options: make_depth_folder(Path(options["local_dir"]), channels=4),
    )
    assert main(["models", "--models-dir", str(tmp_path), "fetch", "someone/sd15"]) == 0
    assert models_in(tmp_path) == ["sd15"]


def test_models_fetch_never_writes_into_an_existing_folder(
    tmp_path: Path, downloads: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "stable-diffusion-2-depth").mkdir()
    assert main(["models", "--models-dir", str(tmp_path), "fetch"]) == 1
    assert "already exists" in capsys.readouterr().err and downloads == []


def test_import_copies_a_checkpoint_with_its_yaml_and_says_what_it_found(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    downloads = tmp_path / "Downloads"
    downloads.mkdir()
    checkpoint = depth_checkpoint(downloads / "512-depth-ema.safetensors")
    (downloads / "512-depth-ema.yaml").write_text(
        "model:\n  target: ldm.models.diffusion.ddpm.LatentDepth2ImageDiffusion\n  params:\n"
        "    parameterization: v\n    depth_stage_config: {params: {model_type: dpt_hybrid}}\n"
        "    unet_config: {params: {in_channels: 5, out_channels: 4, model_channels: 320,"
        " attention_resolutions: [4, 2, 1], num_res_blocks: 2, channel_mult: [1, 2, 4, 4],"
        " num_head_channels: 64, use_linear_in_transformer: true, transformer_depth: 1, context_dim: 1024}}\n"
        "    first_stage_config: {params: {ddconfig: {z_channels: 4, in_channels: 3, out_ch: 3, ch: 128,"
        " ch_mult: [1, 2, 4, 4], num_res_blocks: 2}}}\n"
    )
    models = tmp_path / "models"
    assert main(["models", "--models-dir", str(models), "import", str(checkpoint), "--name", "depth-v"]) == 0
    out = capsys.readouterr().out
    assert models_in(models) == ["depth-v.safetensors", "depth-v.yaml"]
    assert (models / "depth-v.safetensors").read_bytes() == checkpoint.read_bytes()
    assert (
        "an SD2-depth single-file checkpoint: 6 tensors (UNet 2, VAE 1, text encoder 1, MiDaS depth 1" in out
    )
    assert "its config 512-depth-ema.yaml: v_prediction prediction, 24 text layers" in out
    assert "its config is kept beside it as depth-v.yaml" in out
    assert "ckpt_name=depth-v.safetensors" in out
    assert main(["models", "--models-dir", str(models), "list"]) == 0
    assert "depth-v.safetensors" in capsys.readouterr().out


def test_import_links_a_folder_and_fetch_of_a_local_path_imports_it(tmp_path: Path) -> None:
    folder = tmp_path / "elsewhere" / "my-depth"
    make_depth_folder(folder)
    models = tmp_path / "models"
    assert main(["models", "--models-dir", str(models), "import", str(folder), "--link"]) == 0
    assert (models / "my-depth").is_symlink() and (models / "my-depth").resolve() == folder.resolve()
    checkpoint = depth_checkpoint(tmp_path / "elsewhere" / "depth.ckpt.safetensors", ema=True)
    assert main(["models", "--models-dir", str(models), "fetch", str(checkpoint)]) == 0
    assert (models / "depth.ckpt.safetensors").is_file()


def test_import_refuses_what_is_not_a_depth_model_and_copies_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    models = tmp_path / "models"
    inpainting = depth_checkpoint(tmp_path / "512-inpainting-ema.safetensors", channels=9)
    half = make_depth_folder(tmp_path / "no-vae") or tmp_path / "no-vae"
    (half / "vae").rmdir()
    notes = tmp_path / "notes.txt"
    notes.write_text("not a model")
    cases = [
        (inpainting, "is an inpainting model (9 channels"),
        (half, "has no vae folder"),
        (notes, "neither a model folder nor a checkpoint file"),
        (tmp_path / "missing.ckpt", "does not exist"),
    ]
    for path, message in cases:
        assert main(["models", "--models-dir", str(models), "import", str(path)]) == 1
        assert message in capsys.readouterr().err
    assert models_in(models) == []


def test_import_never_overwrites_nor_leaves_the_models_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    models = tmp_path / "models"
    checkpoint = depth_checkpoint(tmp_path / "depth.safetensors")
    assert main(["models", "--models-dir", str(models), "import", str(checkpoint)]) == 0
    assert main(["models", "--models-dir", str(models), "import", str(checkpoint)]) == 1
    assert "already exists" in capsys.readouterr().err
    for name in ("../outside", "sub/dir", ".hidden"):
        assert main(["models", "--models-dir", str(models), "import", str(checkpoint), "--name", name]) == 1
        assert "cannot name a model" in capsys.readouterr().err
    assert models_in(models) == ["depth.safetensors"] and not (tmp_path / "outside.safetensors").exists()


def test_import_puts_each_kind_where_its_loader_finds_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An SD 2.x file into models/, a ControlNet (original layout, yaml beside it) into
    models/controlnet/, a diffusers ControlNet folder there too, a depth estimator into models/depth/;
    each report names the input that picks it."""
    from depthgraph.engine.models.tiny_controlnets import build_tiny_controlnet
    from depthgraph.engine.models.tiny_depth import build_tiny_estimator

    from tests.models.ldm_export import controlnet_to_ldm, original_controlnet_yaml

    downloads = tmp_path / "Downloads"
    downloads.mkdir()
    models = tmp_path / "models"
    plain = depth_checkpoint(downloads / "v2-1_512-ema-pruned.safetensors", channels=4)
    state = {
        "cond_stage_model.model.token_embedding.weight": torch.zeros(8, 8),
        "global_step": torch.tensor(875000),
    }
    from safetensors.torch import load_file

    save_file({**load_file(plain), **state}, str(plain))
    assert main(["models", "--models-dir", str(models), "import", str(plain)]) == 0
    out = capsys.readouterr().out
    assert "a Stable Diffusion 2.x single-file checkpoint" in out and "ckpt_name=v2-1_512-ema-pruned" in out

    controlnet = build_tiny_controlnet("tiny-controlnet-sd15")
    pth = downloads / "control_v11f1p_sd15_depth.pth"
    torch.save(controlnet_to_ldm(controlnet.state_dict(), dict(controlnet.config)), pth)
    (downloads / "control_v11f1p_sd15_depth.yaml").write_text(
        original_controlnet_yaml(dict(controlnet.config))
    )
    assert main(["models", "--models-dir", str(models), "import", str(pth)]) == 0
    out = capsys.readouterr().out
    assert "a ControlNet for Stable Diffusion 1.x" in out
    assert "control_net_name=control_v11f1p_sd15_depth.pth" in out
    assert models_in(models / "controlnet") == [
        "control_v11f1p_sd15_depth.pth",
        "control_v11f1p_sd15_depth.yaml",
    ]

    controlnet.save_pretrained(downloads / "control-sd15-depth-diffusers")
    assert (
        main(
            ["models", "--models-dir", str(models), "import", str(downloads / "control-sd15-depth-diffusers")]
        )
        == 0
    )
    assert "control_net_name=control-sd15-depth-diffusers" in capsys.readouterr().out

    build_tiny_estimator("tiny-depth-anything-v2").save_pretrained(downloads / "Depth-Anything-V2-Small-hf")
    assert (
        main(["models", "--models-dir", str(models), "import", str(downloads / "Depth-Anything-V2-Small-hf")])
        == 0
    )
    out = capsys.readouterr().out
    assert "Depth Anything" in out and "depth_model_name=Depth-Anything-V2-Small-hf" in out
    assert models_in(models / "depth") == ["Depth-Anything-V2-Small-hf"]
    assert main(["models", "--models-dir", str(models), "list"]) == 0
    listed = capsys.readouterr().out
    assert "control_v11f1p_sd15_depth.pth  (ControlNet for Stable Diffusion 1.x; single file" in listed
