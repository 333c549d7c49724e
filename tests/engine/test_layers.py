"""The engine stands on its own: it never imports the node packs or the server, and it runs
graphs without torch installed."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for statement in ast.walk(tree):
        if isinstance(statement, ast.Import):
            names.update(alias.name.split(".")[0] for alias in statement.names)
        elif isinstance(statement, ast.ImportFrom) and statement.module and statement.level == 0:
            names.add(statement.module.split(".")[0])
    return names


def test_the_engine_never_imports_nodes_or_the_server() -> None:
    for path in sorted((ROOT / "engine").rglob("*.py")):
        leaks = imported_modules(path) & {"nodes", "server"}
        assert not leaks, f"{path.relative_to(ROOT)} imports {leaks}"


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
        import pkgutil, importlib, sys
        import engine
        for module in pkgutil.iter_modules(engine.__path__):
            if module.name != "__main__":
                importlib.import_module(f"engine.{module.name}")
        from engine.config import Settings
        from engine.runtime import Engine
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


def test_without_torch_the_built_in_pack_is_reported_not_fatal(tmp_path: Path) -> None:
    done = run_without_torch(
        """
        import sys
        from engine.cli import main
        sys.exit(main(["nodes"]))
        """,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "warning" in done.stderr and "torch" in done.stderr
    assert "Traceback" not in done.stderr
