"""Settings for a self-contained workspace."""

from __future__ import annotations

from pathlib import Path

from depthgraph.engine.app.config import Settings


def test_a_workspace_keeps_every_folder_inside_it_and_takes_changes(tmp_path: Path) -> None:
    settings = Settings.under(tmp_path, device="cpu", models_dir=tmp_path / "shared-models")
    inside = [settings.input_dir, settings.output_dir, settings.temp_dir, settings.data_dir]
    assert all(folder.parent == tmp_path for folder in [*inside, *settings.custom_nodes_dirs])
    assert settings.models_dir == tmp_path / "shared-models" and settings.device == "cpu"
    files = settings.file_store()
    assert files.input_dir == tmp_path / "input" and files.models_dir == tmp_path / "shared-models"
