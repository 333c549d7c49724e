"""What `depthgraph run` shows while it runs (captured, not timed): one bar over the sampler's steps as
the sampler counts them, a sweep's cells counted apart with the total known after the first cell,
nothing with --quiet, and an interrupt said plainly; and that the commands that only read graphs and
declarations start without torch."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from depthgraph.engine.app.cli.progress import RunProgress
from depthgraph.engine.core.events import NodeExecuting, Progress

from tests.cli_fixtures import REPOSITORY, Cli

# tqdm redraws the bar with carriage returns; each drawing is one state the user saw.
BAR = re.compile(r"(\d+)/(\d+|\?) ")


def drawings(stderr: str) -> list[str]:
    return [part for line in stderr.split("\n") for part in line.split("\r") if part.strip()]


def counts(stderr: str) -> list[tuple[int, str]]:
    return [(int(match[1]), match[2]) for text in drawings(stderr) if (match := BAR.search(text))]


@pytest.fixture
def library(workspace: Path) -> Path:
    for name in ("depth2img.json", "strength_sweep.json", "img2img.json"):
        shutil.copy(REPOSITORY / "graphs" / name, workspace / name)
    return workspace


def test_the_bar_counts_the_sampler_steps_as_the_sampler_counts_them(library: Path, depthgraph: Cli) -> None:
    outcome = depthgraph("run", "depth2img.json", "--set", "8.steps=6", "--device", "cpu")
    assert outcome.code == 0, outcome.stderr
    seen = counts(outcome.stderr)
    # PNDM takes one step more than asked for at strength 1.0 (diffusers' schedule): 7 steps.
    assert (7, "7") in seen
    assert [done for done, total in seen if total == "7"] == sorted(
        done for done, total in seen if total == "7"
    )
    assert any("node 9 (Depth Sampler)" in text and "/7" in text for text in drawings(outcome.stderr))
    assert (8, "8") not in seen  # saving the images is not counted as a step
    assert "done in" in outcome.stderr


def test_a_sweep_counts_its_cells_apart_from_the_steps_and_knows_its_total_after_one_cell() -> None:
    """Four cells of three steps: after the first, the bar's total is twelve, and it says which cell."""
    stream = io.StringIO()
    progress = RunProgress(
        {"15": "Sweep", "9": "Sampler"}, frozenset({"9"}), frozenset({"15"}), stream=stream
    )
    progress.update(NodeExecuting("p", "15"))
    for cell in range(4):
        progress.update(NodeExecuting("p", "9"))
        for step in range(1, 4):
            progress.update(Progress("p", "9", step, 3))
        progress.update(Progress("p", "15", cell + 1, 4))
        if cell == 0:
            assert progress.bar.total == 12
            assert "cell 2/4" in str(progress.bar)
    assert progress.bar.n == 12 and progress.bar.total == 12
    assert "4 cells" in str(progress.bar)
    progress.close()


def test_a_graph_without_a_sampler_counts_its_nodes(workspace: Path, depthgraph: Cli) -> None:
    outcome = depthgraph("run", "invert_and_scale")  # Load, Scale, Invert, Save: no sampling steps
    assert outcome.code == 0, outcome.stderr
    seen = counts(outcome.stderr)
    assert seen and {total for _, total in seen} == {"4"}
    # It moves node by node (the last drawing, 4/4, may be cleared with the bar before it is drawn).
    assert [done for done, _ in seen] == sorted(done for done, _ in seen) and (3, "4") in seen
    assert any("node 3 (Invert Image)" in text and "node" in text for text in drawings(outcome.stderr))
    assert "step" not in outcome.stderr


def test_quiet_prints_only_the_saved_files(library: Path, depthgraph: Cli) -> None:
    outcome = depthgraph("run", "img2img.json", "--set", "8.steps=2", "--quiet", "--device", "cpu")
    assert outcome.code == 0, outcome.stderr
    assert outcome.stderr == ""
    assert re.fullmatch(r"11: output/img2img_\d+\.png\n", outcome.stdout)


def test_an_interrupt_says_what_ran_and_that_saved_images_are_kept(
    library: Path, depthgraph: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    from depthgraph.engine.app.engine import Engine

    original = Engine.executor.func  # type: ignore[attr-defined]

    def interrupting(engine: Engine) -> object:
        executor = original(engine)
        listen = executor.run

        def run(*args: object, on_event: object = None, **options: object) -> object:
            def listener(event: object) -> None:
                if isinstance(event, Progress):
                    executor.interrupt()  # as Ctrl+C does, at the first sampler step
                if callable(on_event):
                    on_event(event)

            return listen(*args, on_event=listener, **options)

        executor.run = run
        return executor

    monkeypatch.setattr(Engine, "executor", property(interrupting))
    outcome = depthgraph("run", "img2img.json", "--set", "8.steps=3", "--device", "cpu")
    assert outcome.code == 130
    assert re.search(
        r"depthgraph: interrupted \(\d+ of 10 node\(s\) ran\); images saved before it are kept",
        outcome.stderr,
    )
    assert "cached for this process" not in outcome.stderr


@pytest.mark.parametrize(
    "arguments",
    [["validate", "graphs/depth2img.json"], ["nodes"], ["nodes", "--json"], ["models", "list"], ["--help"]],
)
def test_commands_that_only_read_graphs_and_declarations_import_no_torch(arguments: list[str]) -> None:
    script = (
        "import sys\n"
        "from depthgraph.engine.app.cli import main\n"
        "try:\n"
        f"    code = main({json.dumps(arguments)})\n"
        "except SystemExit as exit_:\n"
        "    code = exit_.code\n"
        "heavy = sorted(name for name in ('torch', 'diffusers', 'transformers') if name in sys.modules)\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    finished = subprocess.run(
        [sys.executable, "-c", script], cwd=REPOSITORY, capture_output=True, text=True, timeout=120
    )
    assert finished.returncode == 0, finished.stderr
    assert "HEAVY []" in finished.stderr


def test_a_misspelt_node_type_gets_a_did_you_mean(workspace: Path, depthgraph: Cli) -> None:
    (workspace / "typo.json").write_text(json.dumps({"1": {"class_type": "DepthSampelr", "inputs": {}}}))
    outcome = depthgraph("validate", "typo.json")
    assert outcome.code == 1
    assert "unknown node type 'DepthSampelr'; did you mean 'DepthSampler'?" in outcome.stderr


def test_a_misspelt_required_input_is_named(workspace: Path, depthgraph: Cli) -> None:
    graph = {
        "1": {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 8, "height": 8}},
        "2": {"class_type": "MaskToImage", "inputs": {"maks": ["1", 0]}},
        "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}},
    }
    (workspace / "typo.json").write_text(json.dumps(graph))
    outcome = depthgraph("validate", "typo.json")
    assert "this input is required (the node is given 'maks': a misspelling of 'mask'?)" in outcome.stderr


def test_set_targets_get_a_did_you_mean_and_where_the_input_is(library: Path, depthgraph: Cli) -> None:
    typo = depthgraph("validate", "depth2img.json", "--set", "8.sead=3")
    assert typo.code == 2
    assert "node 8 (NoiseLatent) has no input 'sead'; did you mean 'seed'?" in typo.stderr
    wrong_node = depthgraph("validate", "depth2img.json", "--set", "1.image=photos/cat.png")
    assert "node 1 (CheckpointLoader) has no input 'image'" in wrong_node.stderr
    assert wrong_node.stderr.rstrip().endswith("the graph has 2.image")
    missing = depthgraph("validate", "depth2img.json", "--set", "99.seed=1")
    assert "the graph has no node '99'" in missing.stderr and "the graph has 8.seed" in missing.stderr


def test_nodes_name_shows_each_input_with_its_type_default_range_and_choices(depthgraph: Cli) -> None:
    outcome = depthgraph("nodes", "NoiseLatent")
    assert outcome.code == 0, outcome.stderr
    lines = outcome.stdout.splitlines()
    assert lines[0] == "NoiseLatent (Noise Latent), category latent"
    assert "  strength: FLOAT default 1.0 range 0..1, step 0.01" in lines
    assert "  steps: INT default 50 range 1..1000" in lines
    assert any(line.startswith("  scheduler: COMBO default 'pndm' one of 'pndm', 'ddim'") for line in lines)
    assert "  0: LATENT (LATENT)" in lines
    by_title = depthgraph("nodes", "Apply ControlNet")
    assert by_title.stdout.startswith("ControlNetApply (Apply ControlNet)")
    unknown = depthgraph("nodes", "DepthSampelr")
    assert unknown.code == 1
    assert "no node type 'DepthSampelr'; did you mean 'DepthSampler'" in unknown.stderr
