"""What node tests share: a workspace's folders, and a list that collects a node's warnings."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.files import FileStore


@pytest.fixture
def files(tmp_path: Path) -> FileStore:
    store = FileStore(
        input_dir=tmp_path / "input", output_dir=tmp_path / "output", temp_dir=tmp_path / "temp"
    )
    store.input_dir.mkdir()
    return store


@pytest.fixture
def warnings() -> list[str]:
    """Pass `warned=warnings.append` to a NodeContext to see what a node warned about."""
    return []
