"""Bounds a prompt must stay within whatever its inputs say, and the output-size check behind them.

A node that makes images, masks, depth maps or latents declares how big its output will be
(`output_size` on `engine.core.registry.node`). The check runs twice, each time before any work:
validation asks with the typed-in constants, so `SolidMask` 16384×16384 is refused before anything
runs, and the scheduler asks again with the real inputs just before the node runs, so an image scaled
beyond the budget fails that node before a pixel of it is allocated.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .registry import NodeDefinition

BUDGET_SETTING = "max_output_pixels"


@dataclass(frozen=True)
class Limits:
    """Bounds a node must respect whatever its inputs say (from the settings)."""

    max_grid_cells: int = 64  # cells a comparison grid may run and draw
    # width × height × batch of any image, mask, depth map or latent (at the size of its image) a node makes
    max_output_pixels: int = 64 * 2**20

    def output_problem(self, pixels: int | None) -> str | None:
        """Why an output of `pixels` (width × height × batch) may not be made, or None if it may."""
        if pixels is None or pixels <= self.max_output_pixels:
            return None
        return (
            f"this node would make {_pixels(pixels)}, counting width × height × batch, more than the "
            f"budget of {_pixels(self.max_output_pixels)}; make its output smaller (size, scale or batch) "
            f"or raise {BUDGET_SETTING} in the settings"
        )


class OutputTooLargeError(ValueError):
    """A node was about to make an output beyond `Limits.max_output_pixels`."""


def declared_output_pixels(definition: NodeDefinition, inputs: Mapping[str, Any]) -> int | None:
    """What the node's `output_size` says for these inputs; None when it has none or cannot tell.

    An input the declaration reads but `inputs` lacks (a link, during validation) means it cannot tell.
    """
    if definition.output_size is None:
        return None
    try:
        pixels = definition.output_size(inputs)
    except KeyError:
        return None
    if pixels is None:
        return None
    return int(pixels)


def check_output_size(definition: NodeDefinition, inputs: Mapping[str, Any], limits: Limits) -> None:
    """Raise `OutputTooLargeError` if the node would make more than the budget from these inputs."""
    problem = limits.output_problem(declared_output_pixels(definition, inputs))
    if problem is not None:
        raise OutputTooLargeError(problem)


def _pixels(count: int) -> str:
    """A pixel count as messages write it: 268,435,456 pixels (268 MP)."""
    if count < 10**6:
        return f"{count:,} pixels"
    return f"{count:,} pixels ({count / 1e6:,.0f} MP)"
