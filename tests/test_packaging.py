"""The installed wheel puts one name on the import path, `depthgraph`, so it can live beside ComfyUI,
whose own top-level `nodes` and `server` modules it must neither shadow nor be shadowed by."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import pytest
from depthgraph.engine.app.example_inputs import EXAMPLE_INPUTS

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(folder),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = folder.glob("depthgraph-*.whl")
    return built


def test_the_wheel_holds_one_top_level_package(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert tops == {"depthgraph"}
    for expected in (
        "depthgraph/server.py",
        "depthgraph/engine/core/registry.py",
        "depthgraph/engine/app/cli/__init__.py",
        "depthgraph/nodes/__init__.py",
        "depthgraph/web/index.html",
        "depthgraph/web/js/main.js",
        "depthgraph/web/comfyui/depth_view.js",
        "depthgraph/web/depth_view.css",
        "depthgraph/web/vendor/litegraph/litegraph.es.js",
        "depthgraph/graphs/depth2img.json",
    ):
        assert expected in names, expected
    assert not any(name.startswith("depthgraph/tests/") for name in names)
    shipped_inputs = {name.removeprefix("depthgraph/input/") for name in names if "/input/" in name}
    assert shipped_inputs == set(EXAMPLE_INPUTS)  # what the library graphs load, and nothing else
    loaded = {
        value
        for graph in (ROOT / "graphs").glob("*.json")
        for node in json.loads(graph.read_text())["nodes"].values()
        for key, value in node["inputs"].items()
        if key in ("image", "depth") and isinstance(value, str)
    }
    assert loaded <= set(EXAMPLE_INPUTS)


COMFY_NODES = """
NODE_CLASS_MAPPINGS = {"KSampler": object}
def comfy_marker():
    return "comfyui nodes"
"""
COMFY_SERVER = """
class PromptServer:
    instance = None
def comfy_marker():
    return "comfyui server"
"""


def test_installed_beside_comfyuis_own_nodes_and_server_both_import(wheel: Path, tmp_path: Path) -> None:
    environment = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(environment)], check=True, timeout=120)
    python = environment / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", purelib, str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    # Its dependencies (torch, diffusers, ...) from this environment, as a plain path: none of its
    # .pth files run, so this checkout's editable install stays out of the fresh environment.
    (Path(purelib) / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    comfy = tmp_path / "ComfyUI"
    comfy.mkdir()
    (comfy / "nodes.py").write_text(COMFY_NODES)
    (comfy / "server.py").write_text(COMFY_SERVER)
    script = textwrap.dedent(
        """
        import sys
        sys.path.insert(0, ".")  # as `python main.py` in ComfyUI's folder puts it first
        import nodes, server
        from depthgraph.engine.app.config import Settings
        from depthgraph.engine.app.engine import Engine
        import depthgraph.nodes, depthgraph.server
        assert nodes.comfy_marker() == "comfyui nodes" and server.comfy_marker() == "comfyui server"
        assert sys.modules["nodes"] is nodes and sys.modules["server"] is server
        assert depthgraph.nodes is not nodes and depthgraph.server is not server
        engine = Engine(Settings(device="cpu"))
        assert "DepthSampler" in {definition.class_name for definition in engine.registry}
        print(depthgraph.server.__file__)
        # The library by name, and its example inputs copied into the new home's input folder.
        import os
        from depthgraph.engine.app.cli.entry import main
        assert main(["validate", "depth2img"]) == 0
        print(" ".join(sorted(os.listdir(os.path.join(os.environ["DEPTHGRAPH_HOME"], "input")))))
        """
    )
    done = subprocess.run(
        [str(python), "-c", script],
        cwd=comfy,  # ComfyUI runs from its own folder: its modules come first on the path
        env={
            **{key: value for key, value in os.environ.items() if key != "PYTHONPATH"},
            "DEPTHGRAPH_HOME": str(tmp_path / "home"),
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().startswith(purelib), "depthgraph came from the wheel, not this checkout"
    assert done.stdout.splitlines()[-1].split() == sorted(EXAMPLE_INPUTS)
    assert "made the input folder" in done.stderr
