"""What a comparison grid costs, and what the cache saves: graphs/strength_sweep.json on one engine.

    python benchmarks/sweep_cache.py [--steps 10] [--device cpu]

Runs the 4 × 3 strength sweep (img2img, depth2img, ControlNet depth) cold, the same grid again, and
the grid with a fifth strength, and prints the time of each and how often each node ran. Work the
cells share (loading, depth estimation, text and VAE encoding) should run once per grid; a repeated
grid should run nothing; a new value should run only its own cells.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from depthgraph.engine.app.config import Settings
from depthgraph.engine.app.engine import Engine
from depthgraph.engine.core.events import Event, NodeExecuting
from depthgraph.engine.formats.graph_file import load_graph

ROOT = Path(__file__).resolve().parent.parent


def timed(engine: Engine, prompt: dict[str, Any], label: str) -> None:
    events: list[Event] = []
    started = time.perf_counter()
    result = engine.run(prompt, on_event=events.append)
    seconds = time.perf_counter() - started
    runs = Counter(event.node_id for event in events if isinstance(event, NodeExecuting) and event.node_id)
    # The sweep node (15) is announced once more after each of its cells, so it counts cells + 1.
    shown = ", ".join(f"{node}×{count}" for node, count in sorted(runs.items(), key=lambda kv: int(kv[0])))
    print(f"{label:<22} {seconds:7.1f} s  {result.status:<8} node runs: {shown or 'none'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        workspace = Path(folder)
        shutil.copytree(ROOT / "input", workspace / "input")
        engine = Engine(Settings.under(workspace, device=args.device))
        prompt = json.loads(json.dumps(load_graph(ROOT / "graphs" / "strength_sweep.json").prompt))
        for entry in prompt.values():
            if entry["class_type"] == "NoiseLatent":
                entry["inputs"]["steps"] = args.steps
        methods = "4 strengths × 3 methods (img2img, depth2img and ControlNet depth)"
        print(f"strength_sweep.json, {methods}, {args.steps} steps, {engine.device}")
        timed(engine, prompt, "cold")
        timed(engine, prompt, "same grid again")
        for entry in prompt.values():
            if entry["class_type"] == "SweepImages":
                entry["inputs"]["x_values"] += ", 0.9"
        timed(engine, prompt, "one more strength")


if __name__ == "__main__":
    main()
