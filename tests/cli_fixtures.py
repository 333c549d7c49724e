"""Fixtures for the tests of the `depthgraph` command: a scratch folder holding the example graph and
photo as the current folder, and a way to run the command in-process as a shell would see it."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from depthgraph.engine.app.cli import main

REPOSITORY = Path(__file__).resolve().parents[1]
EXAMPLE_GRAPH = REPOSITORY / "graphs" / "invert_and_scale.json"
EXAMPLE_IMAGE = REPOSITORY / "input" / "example.jpg"
_SCRIPT = Path(sys.executable).with_name("depthgraph")
DEPTHGRAPH = [str(_SCRIPT)] if _SCRIPT.is_file() else [sys.executable, "-m", "depthgraph.engine"]


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str


Cli = Callable[..., Outcome]


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A current and home folder with graph.json (the example graph) and input/example.jpg."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DEPTHGRAPH_HOME", str(tmp_path))
    monkeypatch.delenv("DEPTHGRAPH_CONFIG", raising=False)
    (tmp_path / "input").mkdir()
    shutil.copy(EXAMPLE_IMAGE, tmp_path / "input" / "example.jpg")
    shutil.copy(EXAMPLE_GRAPH, tmp_path / "graph.json")
    return tmp_path


@pytest.fixture
def depthgraph(workspace: Path, capsys: pytest.CaptureFixture[str]) -> Cli:
    """Run the command in-process; argparse-style exits become an exit code like the shell's."""

    def run(*args: str | Path) -> Outcome:
        capsys.readouterr()
        try:
            code = main([str(arg) for arg in args])
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
        captured = capsys.readouterr()
        return Outcome(code, captured.out, captured.err)

    return run
