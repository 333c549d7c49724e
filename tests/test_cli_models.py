"""`depthgraph models list` and `depthgraph models fetch` (the download is replaced: no network)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engine.cli import main


def make_depth_folder(folder: Path) -> None:
    (folder / "unet").mkdir(parents=True)
    (folder / "model_index.json").write_text("{}")
    (folder / "unet" / "config.json").write_text(json.dumps({"in_channels": 5}))


def test_models_list_shows_the_tiny_model_and_folders_in_the_models_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_depth_folder(tmp_path / "models" / "sd2-depth")
    make_depth_folder(tmp_path / "models" / "stabilityai" / "stable-diffusion-2-depth")
    (tmp_path / "models" / "notes").mkdir()
    assert main(["models", "--models-dir", str(tmp_path / "models"), "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == [
        "tiny-random",
        "sd2-depth",
        "stabilityai/stable-diffusion-2-depth",
    ]
    assert "noise" in lines[0]


def test_models_fetch_downloads_the_diffusers_layout_into_the_models_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[dict[str, Any]] = []

    def fake_download(**options: Any) -> str:
        calls.append(options)
        make_depth_folder_files(Path(options["local_dir"]))
        return str(options["local_dir"])

    def make_depth_folder_files(folder: Path) -> None:
        (folder / "unet").mkdir(parents=True, exist_ok=True)
        (folder / "model_index.json").write_text("{}")

    monkeypatch.setattr("huggingface_hub.snapshot_download", fake_download)
    assert main(["models", "--models-dir", str(tmp_path / "models"), "fetch"]) == 0
    (options,) = calls
    assert options["repo_id"] == "stabilityai/stable-diffusion-2-depth"
    assert Path(options["local_dir"]) == tmp_path / "models" / "stable-diffusion-2-depth"
    assert "*/*.safetensors" in options["allow_patterns"] and "*.ckpt" in options["ignore_patterns"]
    assert "ckpt_name=stable-diffusion-2-depth" in capsys.readouterr().out


def test_a_failed_download_is_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def offline(**options: Any) -> str:
        raise OSError("network is unreachable")

    monkeypatch.setattr("huggingface_hub.snapshot_download", offline)
    assert main(["models", "--models-dir", str(tmp_path), "fetch", "someone/depth-model"]) == 1
    error = capsys.readouterr().err
    assert "could not download someone/depth-model" in error and "network is unreachable" in error
