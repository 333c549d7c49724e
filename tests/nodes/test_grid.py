"""Comparison grids: how values are typed, how cells are laid out and labelled, and the cell limit."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from depthgraph.engine.core.context import Limits, NodeContext
from depthgraph.engine.core.files import FileStore
from depthgraph.nodes.grid import GridLabels, image_grid, parse_target, split_values

RED, GREEN, BLUE, BLACK = (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0), (0.0, 0.0, 0.0)


@pytest.fixture
def context(tmp_path: Path) -> NodeContext:
    files = FileStore(tmp_path / "input", tmp_path / "output", tmp_path / "temp")
    return NodeContext("p", "16", "ImageGrid", files, limits=Limits(max_grid_cells=6))


def solid(*colours: tuple[float, float, float], size: int = 20) -> torch.Tensor:
    return torch.stack([torch.tensor(colour).expand(size, size, 3) for colour in colours])


def grid(images: torch.Tensor, context: NodeContext, **options: object) -> torch.Tensor:
    settings: dict[str, object] = {
        "columns": 0,
        "column_labels": "",
        "row_labels": "",
        "gap": 4,
        "font_size": 0,
    }
    settings.update(options)
    result: torch.Tensor = image_grid.function(images=images, context=context, **settings)[0]
    return result


def test_values_are_separated_by_commas_or_one_per_line_for_text_with_commas() -> None:
    assert split_values("0.4, 0.6,0.8 , 1.0,") == ["0.4", "0.6", "0.8", "1.0"]
    assert split_values("a cat, photo\na dog, painting\n") == ["a cat, photo", "a dog, painting"]


def test_a_swept_input_is_written_node_dot_input() -> None:
    assert parse_target(" 8.strength ") == ("8", "strength")
    with pytest.raises(ValueError, match=r"write NODE_ID.INPUT, e.g. 8.strength"):
        parse_target("strength")


def test_four_images_in_two_columns_sit_in_a_two_by_two_grid_with_gaps(context: NodeContext) -> None:
    sheet = grid(solid(RED, GREEN, BLUE, BLACK), context, columns=2)
    assert sheet.shape == (1, 4 + 2 * 24, 4 + 2 * 24, 3)  # no labels: a gap before and after each cell
    centres = {(0, 0): RED, (0, 1): GREEN, (1, 0): BLUE, (1, 1): BLACK}
    for (row, column), colour in centres.items():
        y, x = 4 + row * 24 + 10, 4 + column * 24 + 10
        assert tuple(sheet[0, y, x].tolist()) == colour
    assert tuple(sheet[0, 2, 2].tolist()) == (1.0, 1.0, 1.0)  # white between cells


def test_without_a_column_count_the_grid_is_as_square_as_possible(context: NodeContext) -> None:
    sheet = grid(solid(RED, GREEN, BLUE, RED, GREEN), context)
    assert sheet.shape[1:3] == (4 + 2 * 24, 4 + 3 * 24)  # five images: three across, two down


def test_labels_add_a_margin_above_the_columns_and_beside_the_rows(context: NodeContext) -> None:
    labels = GridLabels(columns=("strength 0.4", "strength 1"), rows=("seed 1",))
    sheet = grid(solid(RED, GREEN), context, labels=labels)
    plain = grid(solid(RED, GREEN), context, columns=2)
    assert sheet.shape[1] > plain.shape[1] and sheet.shape[2] > plain.shape[2]
    top_margin = sheet.shape[1] - 24
    assert (sheet[0, :top_margin] < 0.5).any()  # text was drawn in the top margin
    assert (sheet[0, top_margin:, :10] < 0.5).any()  # and beside the row


def test_typed_labels_replace_the_sweeps(context: NodeContext) -> None:
    labels = GridLabels(columns=("a", "b"))
    with_sweep = grid(solid(RED, GREEN), context, labels=labels, font_size=14)
    typed = grid(solid(RED, GREEN), context, labels=labels, column_labels="first label, second", font_size=14)
    assert not torch.equal(with_sweep, typed)


def test_cells_with_several_images_keep_each_cell_in_its_column(context: NodeContext) -> None:
    # Two swept values, two images per value: [v1 #1, v1 #2, v2 #1, v2 #2].
    labels = GridLabels(columns=("v1", "v2"), per_cell=2)
    sheet = grid(solid(RED, GREEN, BLUE, BLACK), context, labels=labels, font_size=12)
    top = sheet.shape[1] - 2 * 24 + 4
    left = sheet.shape[2] - 2 * 24 + 4
    column_one = [tuple(sheet[0, top + row * 24 + 10, left + 10].tolist()) for row in range(2)]
    column_two = [tuple(sheet[0, top + row * 24 + 10, left + 24 + 10].tolist()) for row in range(2)]
    assert column_one == [RED, GREEN] and column_two == [BLUE, BLACK]


def test_more_images_than_the_cell_limit_are_refused_naming_the_setting(context: NodeContext) -> None:
    with pytest.raises(ValueError, match=r"7 images are more than the grid limit of 6 .* max_grid_cells"):
        grid(solid(*([RED] * 7)), context)


def test_a_sweep_that_changes_the_size_centres_smaller_cells_on_white(tmp_path: Path) -> None:
    from depthgraph.engine.app.config import Settings
    from depthgraph.engine.app.engine import Engine
    from PIL import Image

    (tmp_path / "input").mkdir()
    Image.new("RGB", (40, 40), (255, 0, 0)).save(tmp_path / "input" / "red.png")
    engine = Engine(Settings.under(tmp_path, device="cpu"))
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "red.png"}},
        "2": {
            "class_type": "ImageScale",
            "inputs": {
                "image": ["1", 0],
                "upscale_method": "nearest-exact",
                "width": 8,
                "height": 0,
                "crop": "disabled",
            },
        },
        "3": {
            "class_type": "SweepImages",
            "inputs": {
                "images": ["2", 0],
                "x_input": "2.width",
                "x_values": "16, 32",
                "y_input": "",
                "y_values": "",
            },
        },
        "4": {"class_type": "ImageGrid", "inputs": {"images": ["3", 0], "labels": ["3", 1], "gap": 0}},
        "5": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "grid"}},
    }
    result = engine.run(prompt)
    assert result.status == "success", result.error
    with Image.open(engine.files.output_dir / result.outputs["5"]["images"][0]["filename"]) as saved:
        sheet = saved.convert("RGB")
    # Two 32×32 slots under a label row: the 16×16 cell sits in the middle of the first, white around it.
    top = sheet.height - 32
    assert sheet.getpixel((16, top + 16)) == (255, 0, 0) and sheet.getpixel((2, top + 2)) == (255, 255, 255)
    assert sheet.getpixel((32 + 2, top + 2)) == (255, 0, 0)  # the 32×32 cell fills its slot
