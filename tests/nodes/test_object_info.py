"""The built-in nodes' schema (`GET /object_info`, `depthgraph nodes --json`) is pinned byte for byte:
the editor, ComfyUI clients and every saved graph read it, so it changes only on purpose.

To accept a change made on purpose, write the golden file again and review its diff:

    python -m tests.nodes.test_object_info
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from depthgraph.engine.app.plugins import load_node_packs
from depthgraph.engine.core.files import FileStore
from depthgraph.engine.core.registry import NodeRegistry
from depthgraph.engine.core.schema import object_info

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "object_info.json"


def built_in_schema(root: Path) -> str:
    """object_info of the built-in nodes as JSON, in the order it is served, for a workspace in `root`
    holding one photo and one depth map (so the file combos list something) and no models but the tiny
    one."""
    files = FileStore(
        input_dir=root / "input",
        output_dir=root / "output",
        temp_dir=root / "temp",
        models_dir=root / "models",
    )
    files.input_dir.mkdir(parents=True)
    (files.input_dir / "photo.png").write_bytes(b"")
    (files.input_dir / "depth.npy").write_bytes(b"")
    registry = NodeRegistry()
    report = load_node_packs(registry)
    assert report.problems == []
    return json.dumps(object_info(registry, files), indent=1, ensure_ascii=False) + "\n"


def test_the_built_in_node_schema_is_unchanged(tmp_path: Path) -> None:
    assert built_in_schema(tmp_path) == GOLDEN.read_text(encoding="utf-8")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        GOLDEN.write_text(built_in_schema(Path(folder)), encoding="utf-8")
    print(f"wrote {GOLDEN}")
