"""What every test package shares: a workspace's input, output and temp folders, the rule that
tests marked `gpu` run only where torch sees a CUDA GPU, and a local Ray cluster (`tests.ray_cluster`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from depthgraph.engine.core.files import FileStore

pytest_plugins = ["tests.cli_fixtures", "tests.ray_cluster"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    marked = [item for item in items if "gpu" in item.keywords]
    if not marked:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in marked:
        item.add_marker(skip)


@pytest.fixture
def files(tmp_path: Path) -> FileStore:
    """A file store whose three folders live in tmp_path; the input folder exists."""
    store = FileStore(
        input_dir=tmp_path / "input", output_dir=tmp_path / "output", temp_dir=tmp_path / "temp"
    )
    store.input_dir.mkdir()
    return store
