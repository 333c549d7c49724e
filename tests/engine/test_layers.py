"""The layers stand as the folders show them.

- Everything is imported under one name, `depthgraph` (engine/ is depthgraph.engine, nodes/
  depthgraph.nodes, server.py depthgraph.server), never as bare top-level modules.
- The engine never imports the node packs or the server.
- The graph core (`engine/core`) imports nothing of the application, the models or the cluster, nor
  torch, diffusers or transformers; the formats (`engine/formats`) stand on the core alone.
- No module imports, directly or through others, a module that imports it back (function-level
  imports count too: they are circles that only wait to be walked).
- Graphs run without torch installed.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "depthgraph"
TOP_MODULES = ("server", "server_events", "server_files", "server_security")
HEAVY = {"torch", "diffusers", "transformers", "safetensors"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join([PACKAGE, *parts])


def source_files() -> list[Path]:
    files = [*sorted((ROOT / "engine").rglob("*.py")), *sorted((ROOT / "nodes").rglob("*.py"))]
    files += [ROOT / f"{name}.py" for name in TOP_MODULES]
    return [path for path in files if "__pycache__" not in path.parts]


def imports_of(path: Path) -> Iterator[tuple[str, int]]:
    """(absolute module name, line) of every import in the file, relative ones resolved."""
    own = module_name(path)
    package = own if path.name == "__init__.py" else own.rsplit(".", 1)[0]
    for statement in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(statement, ast.Import):
            for alias in statement.names:
                yield alias.name, statement.lineno
        elif isinstance(statement, ast.ImportFrom):
            if statement.level:
                base = package.split(".")
                base = base[: len(base) - (statement.level - 1)]
                module = ".".join([*base, statement.module] if statement.module else base)
            else:
                module = statement.module or ""
            yield module, statement.lineno
            for alias in statement.names:  # `from . import x` imports the module x
                yield f"{module}.{alias.name}", statement.lineno


MODULES = {module_name(path): path for path in source_files()}


def own_module(name: str) -> str | None:
    """The depthgraph module an import name refers to (a name imported from a module counts as it)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def test_nothing_imports_bare_top_level_engine_nodes_or_server() -> None:
    bare = {"engine", "nodes", *TOP_MODULES}
    found = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for path in [*source_files(), *sorted((ROOT / "tests").rglob("*.py"))]
        for name, line in imports_of(path)
        if name.split(".")[0] in bare
    ]
    assert not found, "\n".join(found)


def test_the_engine_never_imports_nodes_or_the_server() -> None:
    outside = (f"{PACKAGE}.nodes", *(f"{PACKAGE}.{name}" for name in TOP_MODULES))
    for path in sorted((ROOT / "engine").rglob("*.py")):
        for name, line in imports_of(path):
            assert not name.startswith(outside), f"{path.relative_to(ROOT)}:{line} imports {name}"


LAYERS_BELOW = {  # a layer, and what of depthgraph it may import
    "core": ("core",),
    "formats": ("core", "formats"),
}


@pytest.mark.parametrize("layer", sorted(LAYERS_BELOW))
def test_the_lower_layers_stand_on_their_own(layer: str) -> None:
    allowed = tuple(f"{PACKAGE}.engine.{below}" for below in LAYERS_BELOW[layer])
    for path in sorted((ROOT / "engine" / layer).rglob("*.py")):
        for name, line in imports_of(path):
            where = f"{path.relative_to(ROOT)}:{line} imports {name}"
            assert name.split(".")[0] not in HEAVY, where
            if name.startswith(f"{PACKAGE}."):
                assert name.startswith(allowed), where


def test_there_is_no_import_circle() -> None:
    graph = nx.DiGraph()
    for name, path in MODULES.items():
        graph.add_node(name)
        for imported, _ in imports_of(path):
            target = own_module(imported)
            if target is not None and target != name and not name.startswith(f"{target}."):
                graph.add_edge(
                    name, target
                )  # a package's __init__ that its own modules import is not a circle
    circles = [
        sorted(component) for component in nx.strongly_connected_components(graph) if len(component) > 1
    ]
    assert not circles, circles


# A None entry in sys.modules is how Python marks a module as absent: `import torch` raises
# ModuleNotFoundError and importlib.util.find_spec("torch") returns None, as on a machine without it.
BLOCK_TORCH = """
import sys
sys.modules["torch"] = None
"""


def run_without_torch(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "script.py"
    script.write_text(BLOCK_TORCH + textwrap.dedent(code))
    return subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )


def test_graphs_run_without_torch(tmp_path: Path) -> None:
    done = run_without_torch(
        """
        import importlib, pkgutil, sys
        import depthgraph.engine.app, depthgraph.engine.core, depthgraph.engine.formats
        for package in (depthgraph.engine.core, depthgraph.engine.formats, depthgraph.engine.app):
            for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
                importlib.import_module(module.name)
        from depthgraph.engine.app.config import Settings
        from depthgraph.engine.app.engine import Engine
        from tests.engine.node_pack import make_registry
        runtime = Engine(Settings(device="auto"), registry=make_registry())
        result = runtime.run({
            "1": {"class_type": "Number", "inputs": {"value": 2}},
            "2": {"class_type": "Add", "inputs": {"a": ["1", 0], "b": 3}},
            "3": {"class_type": "Show", "inputs": {"value": ["2", 0]}},
        })
        assert sys.modules["torch"] is None
        print(runtime.device, result.status, result.outputs["3"]["text"][0])
        """,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["cpu", "success", "5"]


def test_without_torch_the_built_in_nodes_are_listed_and_running_one_says_what_is_missing(
    tmp_path: Path,
) -> None:
    """Declaring the built-in nodes needs no torch (it is imported when a node first uses it), so
    `nodes` lists them; running one that needs torch fails saying so, not with a traceback."""
    done = run_without_torch(
        """
        import sys
        from depthgraph.engine.app.cli import main
        sys.exit(main(["nodes"]))
        """,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "DepthSampler" in done.stdout and "warning" not in done.stderr
    graph = tmp_path / "graph.json"
    graph.write_text(
        '{"1": {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 8, "height": 8}}, '
        '"2": {"class_type": "MaskToImage", "inputs": {"mask": ["1", 0]}}, '
        '"3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}}'
    )
    ran = run_without_torch(
        f"""
        import sys
        from depthgraph.engine.app.cli import main
        sys.exit(main(["run", {str(graph)!r}, "--device", "cpu"]))
        """,
        tmp_path,
    )
    assert ran.returncode == 1, ran.stderr
    assert "torch is not installed, and running this node needs it" in ran.stderr
    assert "Traceback" not in ran.stderr
