"""The models routing says a prompt needs are named as a worker's model manager reports what it has
loaded, so "this worker holds the prompt's model" holds for depth estimators and ControlNets too."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from depthgraph.engine.app.config import Settings
from depthgraph.engine.app.engine import Engine
from depthgraph.engine.cluster.ray_backend import prompt_models
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]


def test_the_models_of_a_prompt_are_the_names_the_manager_loads_them_under(tmp_path: Path) -> None:
    (tmp_path / "input").mkdir()
    Image.fromarray(np.zeros((64, 64, 3), dtype=np.uint8)).save(tmp_path / "input" / "photo.png")
    engine = Engine(Settings.under(tmp_path, device="cpu"))
    prompt = json.loads((ROOT / "graphs" / "controlnet_depth.json").read_text())["nodes"]
    prompt["2"]["inputs"]["image"] = "photo.png"
    prompt["8"]["inputs"]["steps"] = 1
    validation = engine.validate(prompt)
    assert validation.graph is not None
    wanted = prompt_models(validation.graph)
    assert wanted == {"tiny-sd15", "depth/tiny-dpt-hybrid", "controlnet/tiny-controlnet-sd15"}
    assert engine.run(prompt).status == "success"
    assert {name for name, _ in engine.models.loaded()} == wanted
