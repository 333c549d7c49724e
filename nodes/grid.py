"""Comparison grids: run a chain of nodes over a list of values, and lay images out with labels.

`SweepImages` takes its `images` lazily (see engine.core.subchain): for every value of one or two swept
inputs — strength 0.4, 0.6, 0.8, 1.0 across, two seeds down — it runs the chain behind the link with
that value. The chain runs inside the current run on the same cache, so what does not depend on the
swept input (loading, depth, text encoding, VAE encoding) runs once for the whole grid.
`ImageGrid` draws any batch of images as a grid with column and row labels.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from depthgraph.engine.core.context import NodeContext
from depthgraph.engine.core.limits import Limits, OutputTooLargeError
from depthgraph.engine.core.registry import Int, Output, Socket, String, node
from depthgraph.engine.core.sockets import GRID_LABELS, IMAGE
from depthgraph.engine.core.subchain import SubChain
from depthgraph.nodes.heavy import torch
from depthgraph.nodes.image_tensors import tensor_to_pil
from depthgraph.nodes.output_sizes import image_dims
from PIL import Image, ImageDraw, ImageFont


@dataclass(frozen=True)
class GridLabels:
    """What a sweep's cells show: one label per column, one per row, and images per cell."""

    columns: tuple[str, ...]
    rows: tuple[str, ...] = ()
    per_cell: int = 1


def split_values(text: str) -> list[str]:
    """Values typed as one text: one per line if there are several lines (for prompts, which hold
    commas), else separated by commas. Blank entries are dropped."""
    parts = text.splitlines() if "\n" in text.strip() else text.split(",")
    return [part.strip() for part in parts if part.strip()]


def parse_target(text: str) -> tuple[str, str]:
    """ "8.strength" -> ("8", "strength")."""
    node_id, dot, name = text.strip().partition(".")
    if not dot or not node_id or not name:
        raise ValueError(
            f"{text!r} does not name an input; write NODE_ID.INPUT, e.g. 8.strength (the node's id is "
            "shown on it in the editor and is its key in the graph file)"
        )
    return node_id.strip(), name.strip()


def _axis(chain: SubChain, target: str, values_text: str, axis: str) -> tuple[str, str, list[Any]]:
    node_id, name = parse_target(target)
    values = split_values(values_text)
    if not values:
        raise ValueError(f"{axis}_values is empty; list the values to try, e.g. 0.4, 0.6, 0.8, 1.0")
    return node_id, name, chain.check(node_id, name, values)


def _label(name: str, value: Any) -> str:
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return f"{name} {text}"


@node(
    "SweepImages",
    display_name="Sweep Values",
    category="image/grid",
    description="Runs the chain behind its images once per value of one or two inputs, for an Image Grid.",
    outputs=[Output(IMAGE, "images"), Output(GRID_LABELS, "labels")],
)
def sweep_images(
    images: SubChain = Socket(IMAGE, lazy=True, tooltip="the end of the chain to repeat, e.g. VAE Decode"),
    x_input: str = String("8.strength", tooltip="NODE_ID.INPUT to vary across the columns"),
    x_values: str = String(
        "0.4, 0.6, 0.8, 1.0", multiline=True, tooltip="separated by commas, or one per line"
    ),
    y_input: str = String("", tooltip="NODE_ID.INPUT to vary down the rows (empty: one row)"),
    y_values: str = String("", multiline=True, tooltip="separated by commas, or one per line"),
    *,
    context: NodeContext,
) -> tuple[torch.Tensor, GridLabels]:
    x_node, x_name, xs = _axis(images, x_input, x_values, "x")
    rows: list[tuple[str, str, Any] | None] = [None]
    if y_input.strip():
        y_node, y_name, ys = _axis(images, y_input, y_values, "y")
        if (y_node, y_name) == (x_node, x_name):
            raise ValueError(f"x_input and y_input both name {x_node}.{x_name}; sweep two different inputs")
        rows = [(y_node, y_name, value) for value in ys]
    cells = len(xs) * len(rows)
    limit = context.limits.max_grid_cells
    if cells > limit:
        raise ValueError(
            f"this sweep makes {len(xs)} × {len(rows)} = {cells} cells, more than the limit of {limit}; "
            "sweep fewer values, or raise max_grid_cells in the settings"
        )
    results: list[torch.Tensor] = []
    for row in rows:
        for value in xs:
            changes: dict[str, dict[str, Any]] = {x_node: {x_name: value}}
            if row is not None:
                changes.setdefault(row[0], {})[row[1]] = row[2]
            results.append(images.evaluate(changes))
            _check_sweep_size(results, cells, context.limits)
            context.progress(len(results), cells)
    per_cell = results[0].shape[0]
    if any(result.shape[0] != per_cell for result in results):
        raise ValueError("the swept input changes the batch size; sweep an input that keeps it")
    labels = GridLabels(
        columns=tuple(_label(x_name, value) for value in xs),
        rows=tuple(_label(row[1], row[2]) for row in rows if row is not None),
        per_cell=per_cell,
    )
    return torch.cat(_letterboxed(results)), labels


def _check_sweep_size(results: list[torch.Tensor], cells: int, limits: Limits) -> None:
    """Stop a sweep as soon as the cells run so far show that all of them, letterboxed to the largest,
    would be more than the output budget: before the remaining cells run."""
    per_cell = max(result.shape[0] for result in results)
    height = max(result.shape[1] for result in results)
    width = max(result.shape[2] for result in results)
    problem = limits.output_problem(cells * per_cell * height * width)
    if problem is not None:
        raise OutputTooLargeError(f"{cells} cells of {width}×{height}: {problem}")


def _letterboxed(cells: list[torch.Tensor]) -> list[torch.Tensor]:
    """Each cell's images centred on white at the largest cell size (a sweep may change the size)."""
    height = max(cell.shape[1] for cell in cells)
    width = max(cell.shape[2] for cell in cells)
    boxed = []
    for images in cells:
        if images.shape[1:3] != (height, width):
            canvas = torch.ones(images.shape[0], height, width, 3, dtype=images.dtype, device=images.device)
            top, left = (height - images.shape[1]) // 2, (width - images.shape[2]) // 2
            canvas[:, top : top + images.shape[1], left : left + images.shape[2]] = images
            images = canvas
        boxed.append(images)
    return boxed


def _fit_text(draw: ImageDraw.ImageDraw, text: str, font: Any, width: int) -> str:
    """`text`, cut short with an ellipsis if it is wider than `width` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def grid_layout(count: int, columns: int, labels: GridLabels | None) -> tuple[int, int]:
    """(columns, rows) for `count` images: as asked, else the sweep's columns, else near-square."""
    if columns <= 0:
        columns = len(labels.columns) if labels is not None else math.ceil(math.sqrt(count))
    columns = max(1, min(columns, count))
    return columns, math.ceil(count / columns)


def draw_grid(
    images: torch.Tensor,
    columns: int,
    column_labels: tuple[str, ...],
    row_labels: tuple[str, ...],
    gap: int,
    font_size: int,
) -> torch.Tensor:
    """Images [N, H, W, 3] on a white sheet, `columns` across, labels above the columns and left of
    the rows; returns one image [1, H', W', 3]."""
    count, height, width = images.shape[0], images.shape[1], images.shape[2]
    rows = math.ceil(count / columns)
    size = font_size or max(12, min(48, width // 14))
    font = ImageFont.load_default(size=size)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    top = size + 2 * gap + 4 if column_labels else gap
    left_width = 0
    if row_labels:
        left_width = min(
            width, int(max(measure.textlength(label, font=font) for label in row_labels)) + 2 * gap
        )
    left = left_width + gap
    sheet_width = left + columns * (width + gap)
    sheet_height = top + rows * (height + gap)
    sheet = Image.new("RGB", (sheet_width, sheet_height), "white")
    draw = ImageDraw.Draw(sheet)
    for index in range(count):
        row, column = divmod(index, columns)
        sheet.paste(tensor_to_pil(images[index]), (left + column * (width + gap), top + row * (height + gap)))
    for column, label in enumerate(column_labels[:columns]):
        text = _fit_text(draw, label, font, width)
        x = left + column * (width + gap) + (width - draw.textlength(text, font=font)) / 2
        draw.text((x, gap), text, fill="black", font=font)
    for row, label in enumerate(row_labels[:rows]):
        text = _fit_text(draw, label, font, left_width - gap)
        draw.text((gap, top + row * (height + gap) + height / 2), text, fill="black", font=font, anchor="lm")
    array = np.asarray(sheet, dtype=np.float32) / 255.0
    return torch.from_numpy(array)[None].to(images.device)


def _grid_size(inputs: Mapping[str, Any]) -> int | None:
    """The sheet's pixels, at least: the cells and the gaps between them (labels add a little)."""
    found = image_dims(inputs.get("images"))
    if found is None:
        return None
    count, height, width = found
    columns, rows = grid_layout(count, int(inputs["columns"]), inputs.get("labels"))
    gap = int(inputs["gap"])
    return (columns * (width + gap) + gap) * (rows * (height + gap) + gap)


def _row_labels(labels: GridLabels | None) -> tuple[str, ...]:
    """A sweep's row labels; with several images per cell, each row of a cell's images numbered."""
    if labels is None:
        return ()
    if labels.per_cell == 1:
        return labels.rows
    rows = labels.rows or ("",)
    return tuple(f"{label} #{index + 1}".strip() for label in rows for index in range(labels.per_cell))


@node(
    "ImageGrid",
    display_name="Image Grid",
    category="image/grid",
    description="Lays a batch of images out as a grid, labelled above the columns and beside the rows.",
    outputs=[Output(IMAGE)],
    output_size=_grid_size,
)
def image_grid(
    images: torch.Tensor = Socket(IMAGE),
    columns: int = Int(0, min=0, max=256, tooltip="0: one per swept value, or as square as possible"),
    labels: GridLabels | None = Socket(GRID_LABELS, optional=True, tooltip="from Sweep Values"),
    column_labels: str = String("", tooltip="separated by commas; replaces the sweep's labels"),
    row_labels: str = String("", tooltip="separated by commas; replaces the sweep's labels"),
    gap: int = Int(8, min=0, max=256, tooltip="pixels between cells"),
    font_size: int = Int(0, min=0, max=256, tooltip="0: sized to the cells"),
    *,
    context: NodeContext,
) -> tuple[torch.Tensor]:
    count = images.shape[0]
    limit = context.limits.max_grid_cells
    if count > limit:
        raise ValueError(
            f"{count} images are more than the grid limit of {limit} cells; "
            "pass fewer images, or raise max_grid_cells in the settings"
        )
    if labels is not None and labels.per_cell > 1 and columns <= 0:
        # Each sweep cell holds a batch: its images go down the rows, under their column's label.
        columns = len(labels.columns)
        order = torch.arange(count).view(-1, len(labels.columns), labels.per_cell).transpose(1, 2).reshape(-1)
        images = images[order.to(images.device)]
    across, _ = grid_layout(count, columns, labels)
    column_texts = tuple(split_values(column_labels)) or (labels.columns if labels is not None else ())
    row_texts = tuple(split_values(row_labels)) or _row_labels(labels)
    return (draw_grid(images, across, column_texts, row_texts, gap, font_size),)
