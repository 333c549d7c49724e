"""`depthgraph batch`: one graph over a folder of images or a list of seeds, on the in-process
executor and on Ray workers, with outputs named after their inputs and a manifest of them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from depthgraph.engine.app.batch import output_paths, parse_over, sweep_prompts
from depthgraph.engine.app.overrides import UsageError
from depthgraph.engine.core.files import FileStore
from PIL import Image

from tests.cli_fixtures import DEPTHGRAPH, REPOSITORY, Cli

DEPTH2IMG = REPOSITORY / "graphs" / "depth2img.json"


def frames(folder: Path, *names: str) -> Path:
    folder.mkdir()
    for index, name in enumerate(names):
        Image.new("RGB", (40, 32), (40 * index, 90, 160)).save(folder / name)
    (folder / "notes.txt").write_text("not an image: left out", encoding="utf-8")
    return folder


def manifest(output: Path) -> dict[str, Any]:
    (path,) = output.glob("batch-*.json")
    return dict(json.loads(path.read_text(encoding="utf-8")))


def test_a_folder_of_frames_gives_one_output_per_frame_named_after_it(
    depthgraph: Cli, workspace: Path
) -> None:
    frames(workspace / "frames", "f_10.png", "f_2.png", "f_1.png")
    result = depthgraph("batch", "graph.json", "--over", "1.image=frames")
    assert result.code == 0, result.stderr
    assert "3 of 3 done" in result.stderr
    record = manifest(workspace / "output")
    assert [item["input"] for item in record["items"]] == ["f_1.png", "f_2.png", "f_10.png"]  # natural order
    for item in record["items"]:
        (output,) = item["outputs"]
        assert output == f"inverted_{item['label']}_00001.png"
        with Image.open(workspace / "output" / output) as image:
            assert image.size == (384, 384)


def test_a_list_of_seeds_gives_different_images_named_by_seed(depthgraph: Cli, workspace: Path) -> None:
    result = depthgraph(
        "batch", DEPTH2IMG, "--over", "8.seed=1..3", "--set", "8.steps=2", "--set", "3.multiple=64", "--json"
    )
    assert result.code == 0, result.stderr
    record = json.loads(result.stdout)
    assert [item["input"] for item in record["items"]] == ["1", "2", "3"]
    images = [next(o for o in item["outputs"] if o.startswith("depth2img_seed")) for item in record["items"]]
    assert images == [
        "depth2img_seed-1_00001.png",
        "depth2img_seed-2_00001.png",
        "depth2img_seed-3_00001.png",
    ]
    contents = {(workspace / "output" / name).read_bytes() for name in images}
    assert len(contents) == 3


def test_one_bad_frame_fails_alone_and_the_batch_says_which(depthgraph: Cli, workspace: Path) -> None:
    folder = frames(workspace / "frames", "a.png", "c.png")
    (folder / "b.png").write_bytes(b"not a png")
    result = depthgraph("batch", "graph.json", "--over", "1.image=frames")
    assert result.code == 1
    assert "2 of 3 done" in result.stderr and "b:" in result.stderr
    statuses = {item["label"]: item["status"] for item in manifest(workspace / "output")["items"]}
    assert statuses == {"a": "success", "b": "error", "c": "success"}


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ("1.image", "write NODE_ID.INPUT=FOLDER"),
        ("1.image=missing/", "there is no folder"),
        ("1.image=empty", "has no images"),
        ("9.image=1,2", "has no node '9'"),
        ("1.picture=1,2", "has no input 'picture'"),
        ("1.image=,", "the list is empty"),
    ],
)
def test_a_bad_over_is_refused_with_what_to_write(
    depthgraph: Cli, workspace: Path, over: str, message: str
) -> None:
    (workspace / "empty").mkdir()
    result = depthgraph("batch", "graph.json", "--over", over)
    assert result.code == 2 and message in result.stderr
    assert not (workspace / "output").exists()


def test_lists_expand_ranges_both_ways_and_labels_are_safe_in_file_names() -> None:
    assert parse_over("8.seed=3..1,7").values == ["3", "2", "1", "7"]
    sweep = parse_over("2.text=a cat,a/dog")
    prompt = {
        "2": {"class_type": "T", "inputs": {}},
        "4": {"class_type": "S", "inputs": {"filename_prefix": "x"}},
    }
    prefixes = [p["4"]["inputs"]["filename_prefix"] for p in sweep_prompts(prompt, sweep)]
    assert prefixes == ["x_text-a_cat", "x_text-a_dog"]
    with pytest.raises(UsageError, match="more than"):
        parse_over("8.seed=0..100000000")


def test_the_manifest_names_every_saved_output_file_depth_maps_included(tmp_path: Path) -> None:
    files = FileStore(output_dir=tmp_path / "output", temp_dir=tmp_path / "temp")
    outputs = {
        "11": {"images": [{"filename": "depth2img_00001.png", "subfolder": "", "type": "output"}]},
        "12": {
            "images": [{"filename": "depth_00001.png", "subfolder": "maps", "type": "output"}],
            "depth_files": [{"filename": "depth_00001.npy", "subfolder": "maps", "type": "output"}],
        },
        "13": {"images": [{"filename": "preview_00001.png", "subfolder": "", "type": "temp"}]},
        "14": {"text": ["a caption"]},
    }

    assert output_paths(outputs, files) == [
        "depth2img_00001.png",
        "maps/depth_00001.png",
        "maps/depth_00001.npy",
    ]


def test_batch_on_two_ray_workers_runs_every_seed_and_names_the_workers(workspace: Path) -> None:
    command = [
        *DEPTHGRAPH,
        "batch",
        str(DEPTH2IMG),
        "--over",
        "8.seed=1..4",
        "--set",
        "8.steps=2",
        "--set",
        "3.multiple=64",
        "--executor",
        "ray",
        "--workers",
        "2",
        "--json",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=workspace)
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads(done.stdout)
    assert [item["status"] for item in record["items"]] == ["success"] * 4
    assert {item["worker"] for item in record["items"]} <= {"worker-0", "worker-1"}
    for item in record["items"]:  # the workers' files came back into this machine's output folder
        assert all((workspace / "output" / name).is_file() for name in item["outputs"])
        assert any(name.startswith(f"depth2img_seed-{item['input']}_") for name in item["outputs"])


def test_without_ray_installed_the_ray_executor_says_how_to_get_it(
    depthgraph: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails
    result = depthgraph(
        "batch", "graph.json", "--over", "1.image=example.jpg,example.jpg", "--executor", "ray"
    )
    assert result.code == 2 and "pip install 'depthgraph[ray]'" in result.stderr


def test_the_default_executor_never_imports_ray(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from depthgraph.engine.app.config import Settings\n"
        "from depthgraph.engine.app.cli import main\n"
        "from depthgraph.server import create_app\n"
        f"create_app(Settings.under(__import__('pathlib').Path({str(tmp_path)!r})))\n"
        "main(['nodes'])\n"
        "assert 'ray' not in sys.modules, 'ray was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_cluster_settings_come_from_the_config_file_and_bad_ones_are_named(tmp_path: Path) -> None:
    from depthgraph.engine.app.config import ConfigError, load_settings

    config = tmp_path / "depthgraph.yaml"
    config.write_text("cluster: {executor: ray, ray_address: auto, workers: 4, max_attempts: 2}\n")
    cluster = load_settings(config).cluster
    assert (cluster.executor, cluster.ray_address, cluster.workers, cluster.max_attempts) == (
        "ray",
        "auto",
        4,
        2,
    )
    for text, message in [
        ("cluster: {executor: spark}", "executor must be one of local, ray"),
        ("cluster: {workers: 0}", "workers must be a whole number from 1"),
        ("cluster: {gpus: 2}", "unknown cluster setting 'gpus'"),
        ("cluster: ray", "cluster maps a setting"),
    ]:
        config.write_text(text + "\n")
        with pytest.raises(ConfigError, match=message):
            load_settings(config)


def test_bad_cluster_options_on_the_command_line_exit_2_with_the_option_named(depthgraph: Cli) -> None:
    result = depthgraph(
        "batch", "graph.json", "--over", "1.image=a,b", "--executor", "ray", "--max-attempts", "0"
    )
    assert result.code == 2 and "--max-attempts must be a whole number" in result.stderr


def test_a_sweep_invalid_for_every_input_stops_before_running_anything(
    depthgraph: Cli, workspace: Path
) -> None:
    result = depthgraph("batch", "graph.json", "--over", "2.width=wide,narrow", "--executor", "ray")
    assert result.code == 1 and "is not valid for any input" in result.stderr and "width" in result.stderr
    assert not (workspace / "output").exists()  # no worker was started, nothing written
