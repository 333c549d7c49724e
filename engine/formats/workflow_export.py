"""A depthgraph document as an editor workflow (the litegraph JSON ComfyUI's front end opens).

The reverse of `workflow_convert`, for offering the graph library to ComfyUI's front end as templates:
each node gets its sockets from the registry, links become the workflow's link list, widget values
are written in the node's widget order (with the "control after generate" value ComfyUI's front end
keeps after a seed, `fixed` so that a template runs with the seed the graph gives, and the upload
button's value after the widgets of a node with an image picker), and the places on the canvas come
from the layout.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..core.registry import NodeDefinition, NodeRegistry
from ..core.sockets import INT
from .graph_file import GraphDocument

WORKFLOW_VERSION = 0.4
SEED_NAMES = frozenset({"seed", "noise_seed"})  # the INT widgets the front end adds the control to
DEFAULT_SIZE = [300.0, 160.0]
COLUMN, ROW = 360.0, 220.0  # where nodes without a place in the layout go


class ExportError(ValueError):
    """A graph that cannot be written as a workflow (a node type this server does not have)."""


def document_to_workflow(document: GraphDocument, registry: NodeRegistry) -> dict[str, Any]:
    """The workflow for `document`: node ids are kept when they are whole numbers, else renumbered."""
    prompt = document.prompt
    ids = workflow_ids(prompt)
    places = document.layout.get("nodes", {}) if isinstance(document.layout, Mapping) else {}
    links: list[list[Any]] = []
    nodes: list[dict[str, Any]] = []
    readers: dict[tuple[str, int], list[int]] = {}
    for order, (node_id, node) in enumerate(prompt.items()):
        definition = registry.get(node["class_type"])
        if definition is None:
            raise ExportError(f"node {node_id} is a {node['class_type']!r}, which this server does not have")
        nodes.append(
            workflow_node(node_id, node, definition, ids, order, places.get(node_id), links, readers)
        )
    for entry, node_id in zip(nodes, prompt, strict=True):
        definition = registry.get(prompt[node_id]["class_type"])
        assert definition is not None
        entry["outputs"] = [
            {
                "name": output.name or output.type,
                "type": output.type,
                "links": readers.get((node_id, slot), []),
                "slot_index": slot,
            }
            for slot, output in enumerate(definition.outputs)
        ]
    return {
        "last_node_id": max(ids.values(), default=0),
        "last_link_id": len(links),
        "nodes": nodes,
        "links": links,
        "groups": workflow_groups(document.layout),
        "config": {},
        "extra": {"depthgraph": {"title": document.title, "description": document.description}},
        "version": WORKFLOW_VERSION,
    }


def workflow_ids(prompt: Mapping[str, Any]) -> dict[str, int]:
    """Each API node id as the workflow's whole-number id (ids that are not numbers get new ones)."""
    ids = {node_id: int(node_id) for node_id in prompt if node_id.isdigit() and int(node_id) > 0}
    next_id = max(ids.values(), default=0)
    for node_id in prompt:
        if node_id not in ids:
            next_id += 1
            ids[node_id] = next_id
    return ids


def workflow_node(
    node_id: str,
    node: Mapping[str, Any],
    definition: NodeDefinition,
    ids: Mapping[str, int],
    order: int,
    place: Any,
    links: list[list[Any]],
    readers: dict[tuple[str, int], list[int]],
) -> dict[str, Any]:
    values = node.get("inputs", {})
    slots: list[dict[str, Any]] = []
    widgets: list[Any] = []
    for spec in definition.inputs:
        value = values.get(spec.name, spec.default)
        linked = isinstance(value, list) and len(value) == 2 and str(value[0]) in ids
        if linked:
            source, slot = str(value[0]), int(value[1])
            link_id = len(links) + 1
            links.append([link_id, ids[source], slot, ids[node_id], len(slots), spec.type])
            readers.setdefault((source, slot), []).append(link_id)
            slot_entry: dict[str, Any] = {"name": spec.name, "type": spec.type, "link": link_id}
            if spec.is_widget:
                slot_entry["widget"] = {"name": spec.name}
            slots.append(slot_entry)
        if spec.is_widget:
            widgets.append(spec.default if linked else value)
            if spec.type == INT and spec.name in SEED_NAMES:
                widgets.append("fixed")
        elif not linked:
            slots.append({"name": spec.name, "type": spec.type, "link": None})
    if any(spec.upload for spec in definition.inputs):
        widgets.append("image")  # the upload button's value, after all the node's own widgets
    title = node.get("_meta", {}).get("title")
    entry: dict[str, Any] = {
        "id": ids[node_id],
        "type": node["class_type"],
        "pos": pair(place, "pos") or [40.0 + COLUMN * (order % 6), 40.0 + ROW * (order // 6)],
        "size": pair(place, "size") or list(DEFAULT_SIZE),
        "flags": {},
        "order": order,
        "mode": 0,
        "inputs": slots,
        "properties": {"Node name for S&R": node["class_type"]},
        "widgets_values": widgets,
    }
    if isinstance(title, str) and title and title != definition.display_name:
        entry["title"] = title
    return entry


def pair(place: Any, key: str) -> list[float] | None:
    value = place.get(key) if isinstance(place, Mapping) else None
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, int | float) for v in value):
        return [float(value[0]), float(value[1])]
    return None


def workflow_groups(layout: Any) -> list[dict[str, Any]]:
    """The layout's groups (`{title, bounding: [x, y, w, h], color}`), as the front end draws them."""
    groups = layout.get("groups", []) if isinstance(layout, Mapping) else []
    found = []
    for group in groups if isinstance(groups, list) else []:
        if isinstance(group, Mapping) and isinstance(group.get("bounding"), list):
            found.append({key: group[key] for key in ("title", "bounding", "color") if key in group})
    return found
