"""What every test package shares: a workspace's input, output and temp folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.files import FileStore


@pytest.fixture
def files(tmp_path: Path) -> FileStore:
    """A file store whose three folders live in tmp_path; the input folder exists."""
    store = FileStore(
        input_dir=tmp_path / "input", output_dir=tmp_path / "output", temp_dir=tmp_path / "temp"
    )
    store.input_dir.mkdir()
    return store
