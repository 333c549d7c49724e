"""Depth Ensemble: a depth node with a lazy input, which runs the chain behind it several times.

Depth estimated at several image sizes has different strengths (a large image gives fine detail, a
small one the overall layout); averaging the maps keeps some of each. The node gets the chain that
makes its depth map instead of the map, and runs it once per value of one input of that chain (say
the width of an Upscale Image before Estimate Depth). Nodes of the chain that do not depend on that
input (loading the model and the photo) run once: every run shares the cache.
"""

from __future__ import annotations

import torch
from depthgraph.engine.api import DEPTH, NodeContext, Output, Socket, String, SubChain, node
from depthgraph.nodes.depth_ops import normalize_min_max
from depthgraph.nodes.spatial import stretch_depth


def parse_target(target: str) -> tuple[str, str]:
    """ "2.width" -> ("2", "width")."""
    node_id, _, name = target.strip().partition(".")
    if not node_id or not name:
        raise ValueError(f"{target!r} does not name an input; write NODE_ID.INPUT, e.g. 2.width")
    return node_id, name


@node(
    "DepthEnsemble",
    display_name="Depth Ensemble",
    category="depth/example",
    description="Runs the depth chain once per value of one of its inputs and averages the depth maps.",
    outputs=[Output(DEPTH)],
)
def depth_ensemble(
    depth: SubChain = Socket(DEPTH, lazy=True, tooltip="the end of the chain that makes the depth map"),
    target: str = String("2.width", tooltip="NODE_ID.INPUT to vary, e.g. an Upscale Image's width"),
    values: str = String("384, 512, 768", tooltip="the values to try, separated by commas"),
    *,
    context: NodeContext,
) -> tuple[torch.Tensor]:
    """The mean of the chain's depth maps, each stretched to the first one's size and to 0..1 (their
    scales differ from run to run)."""
    node_id, name = parse_target(target)
    listed = [value.strip() for value in values.split(",") if value.strip()]
    if not listed:
        raise ValueError("values is empty; list the values to try, e.g. 384, 512, 768")
    if len(listed) == 1:
        context.warn(f"only one value for {target}, so there is nothing to average; list two or more")
    # Each value read as the input's type and checked against its bounds, as if typed into that node.
    tried = depth.check(node_id, name, listed)
    first = normalize_min_max(depth.evaluate({node_id: {name: tried[0]}}))
    total = first
    context.progress(1, len(tried))  # the bar in the editor, and where Stop ends the node between runs
    for index, value in enumerate(tried[1:], start=2):
        maps = depth.evaluate({node_id: {name: value}}).to(first.device)
        total = total + normalize_min_max(stretch_depth(maps, first.shape[2], first.shape[3]))
        context.progress(index, len(tried))
    return (total / len(tried),)
