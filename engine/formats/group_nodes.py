"""Legacy group nodes, read as subgraph definitions so that `subgraphs` flattens them.

A group node (ComfyUI's front end before subgraphs) is stored once per workflow in
`extra.groupNodes[name]`: its inner `nodes` (known by their place in that list), `links` between them
as `[origin index, origin slot, target index, target slot, ...]` (an origin of null is a link from
outside), and `external`, the `[index, slot, type]` outputs that are used outside. An instance has the
type `workflow>NAME` (`workflow/NAME` before front end 1.2.63); its inner nodes run as
`<instance id>:<index>`.

What the instance shows is derived as the front end's `GroupNodeConfig` derives it, inner node by
inner node: each widget (in declaration order), then each socket input that no inner link feeds;
after all nodes, the widgets converted to inputs that no inner link feeds. Its outputs are the inner
outputs not used inside (or listed in `external`). The instance's `widgets_values` set the inner
widgets in that order (the front end copies them in before building the prompt). Names clash as the
front end resolves it: the second `text` becomes `CLIPTextEncode text`, the third `CLIPTextEncode 3 text`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..core.registry import NodeRegistry
from ..core.sockets import INT
from .subgraph_definitions import INPUTS_NODE, OUTPUTS_NODE, Subgraph, WidgetSlot
from .workflow_json import Link, LinkId, WorkflowError, describe

PREFIXES = ("workflow>", "workflow/")


def read_group_nodes(workflow: Mapping[str, Any], registry: NodeRegistry) -> dict[str, Subgraph]:
    """The workflow's group nodes as definitions, by both forms of their instances' type."""
    extra = workflow.get("extra")
    groups = extra.get("groupNodes") if isinstance(extra, Mapping) else None
    if groups is None:
        return {}
    if not isinstance(groups, Mapping):
        raise WorkflowError(f"extra.groupNodes is {describe(groups)}; it is an object of group nodes by name")
    found: dict[str, Subgraph] = {}
    for name, data in groups.items():
        subgraph = GroupReader(str(name), data, registry).subgraph()
        for prefix in PREFIXES:
            found[prefix + str(name)] = subgraph
    return found


@dataclass(frozen=True)
class InnerShape:
    """What an inner node contributes: its widgets, its sockets and how many outputs it has."""

    widgets: tuple[str, ...]
    sockets: tuple[str, ...]
    outputs: int
    counted: frozenset[str] = frozenset()  # whole-number widgets (a control value may follow)


@dataclass
class GroupReader:
    """Reads one group node's data into a definition."""

    name: str
    data: Any
    registry: NodeRegistry
    nodes: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    links: dict[LinkId, Link] = field(default_factory=dict)
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    widgets: list[WidgetSlot] = field(default_factory=list)
    seen_names: dict[str, int] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"group node {describe(self.name)}"

    def subgraph(self) -> Subgraph:
        if not isinstance(self.data, Mapping) or not isinstance(self.data.get("nodes"), list):
            raise WorkflowError(
                f"{self.label} is {describe(self.data)}; a group node is an object with a 'nodes' list"
            )
        self.nodes = self.read_nodes(self.data["nodes"])
        for origin, origin_slot, target, target_slot in self.read_links(self.data.get("links")):
            self.link(origin, origin_slot, target, target_slot)
        converted: list[tuple[str, int, str, bool]] = []
        for index, node in self.nodes.items():
            shape = self.shape(index, node)
            if shape is not None:
                converted += self.plan_inputs(index, node, shape)
                self.plan_outputs(index, shape)
        for index, slot, widget, counted in converted:  # widgets converted to inputs come after all nodes
            self.widgets.append(WidgetSlot(index, widget, counted))
            self.promote(index, slot, self.input_label(index, widget))
        nodes: dict[str, Mapping[str, Any]] = {
            index: {**node, "id": int(index), "inputs": self.linked_inputs(index, node)}
            for index, node in self.nodes.items()
        }
        return Subgraph(
            f"workflow>{self.name}",
            self.label,
            nodes,
            self.links,
            tuple(self.inputs),
            tuple(self.outputs),
            widget_slots=tuple(self.widgets),
        )

    def read_nodes(self, entries: list[Any]) -> dict[str, Mapping[str, Any]]:
        nodes: dict[str, Mapping[str, Any]] = {}
        for index, node in enumerate(entries):
            if not isinstance(node, Mapping) or not isinstance(node.get("type"), str):
                raise WorkflowError(
                    f"{self.label}: nodes[{index}] is {describe(node)}; "
                    "each inner node is an object with a type"
                )
            if node["type"].startswith(PREFIXES):
                raise WorkflowError(
                    f"{self.label} holds another group node ({describe(node['type'])}); convert the inner "
                    "one to nodes in the editor and save again"
                )
            nodes[str(index)] = node
        return nodes

    def read_links(self, entries: Any) -> list[tuple[str, int, str, int]]:
        """The inner links as (origin, slot, target, slot); links from outside are left out."""
        if entries is None:
            return []
        if not isinstance(entries, list):
            raise WorkflowError(f"{self.label}: links are {describe(entries)}; they are a list of links")
        found = []
        for position, link in enumerate(entries):
            parts = link[:4] if isinstance(link, list) and len(link) >= 4 else None
            if parts is not None and parts[0] is None:
                continue  # fed from outside the group
            if (
                parts is None
                or not all(is_index(part) for part in parts)
                or not (str(parts[0]) in self.nodes and str(parts[2]) in self.nodes)
            ):
                raise WorkflowError(
                    f"{self.label}: links[{position}] is {describe(link)}; an inner link is "
                    "[origin index, origin slot, target index, target slot, ...] between its nodes"
                )
            found.append((str(parts[0]), parts[1], str(parts[2]), parts[3]))
        return found

    def link(self, origin: str, origin_slot: int, target: str, target_slot: int) -> None:
        self.links[len(self.links) + 1] = Link(origin, origin_slot, target, target_slot)

    def fed_inside(self, index: str, slot: int) -> bool:
        return any(link.target == index and link.target_slot == slot for link in self.links.values())

    def used_inside(self, index: str, slot: int) -> bool:
        return any(
            link.origin == index and link.origin_slot == slot and link.target != OUTPUTS_NODE
            for link in self.links.values()
        )

    def external(self, index: str, slot: int) -> bool:
        listed = self.data.get("external")
        return isinstance(listed, list) and any(
            isinstance(entry, list) and len(entry) >= 2 and str(entry[0]) == index and entry[1] == slot
            for entry in listed
        )

    def shape(self, index: str, node: Mapping[str, Any]) -> InnerShape | None:
        """None for a node the group does not show (a note, an unknown type, an inner reroute)."""
        kind = node["type"]
        if kind == "PrimitiveNode":
            return InnerShape(("value",), (), 1, frozenset({"value"})) if self.used_inside(index, 0) else None
        if kind == "Reroute":
            inner = self.fed_inside(index, 0) and self.used_inside(index, 0) and not self.external(index, 0)
            return None if inner else InnerShape((), (socket_type(node),), 1)
        definition = self.registry.get(kind)
        if definition is None:
            return None  # the converter names an unknown type
        return InnerShape(
            tuple(spec.name for spec in definition.inputs if spec.is_widget),
            tuple(spec.name for spec in definition.inputs if not spec.is_widget),
            len(definition.outputs),
            frozenset(spec.name for spec in definition.inputs if spec.type == INT),
        )

    def plan_inputs(
        self, index: str, node: Mapping[str, Any], shape: InnerShape
    ) -> list[tuple[str, int, str, bool]]:
        """Add the node's widgets and free sockets; return its converted widgets for later."""
        converted = []
        for widget in shape.widgets:
            slot = converted_slot(node, widget)
            if slot is not None:
                if not self.fed_inside(index, slot):
                    converted.append((index, slot, widget, widget in shape.counted))
                continue
            self.input_label(index, widget)  # a widget's name counts against the inputs' names
            self.widgets.append(WidgetSlot(index, widget, widget in shape.counted))
        for place, socket in enumerate(shape.sockets):
            slot = slot_named(node, socket, place)
            if self.fed_inside(index, slot) or self.hidden(index, socket):
                continue
            self.promote(index, slot, self.input_label(index, socket))
        # The front end sorts converted slots as text (so 10 comes before 2).
        return sorted(converted, key=lambda entry: str(entry[1]))

    def plan_outputs(self, index: str, shape: InnerShape) -> None:
        for slot in range(shape.outputs):
            config = self.config(index, "output", slot)
            visible = config.get("visible") if isinstance(config.get("visible"), bool) else None
            if visible is None:
                visible = not self.used_inside(index, slot) or self.external(index, slot)
            if visible:
                self.link(index, slot, OUTPUTS_NODE, len(self.outputs))
                self.outputs.append(f"{index}:{slot}")

    def promote(self, index: str, slot: int, name: str) -> None:
        """Make an inner input one of the instance's inputs."""
        self.link(INPUTS_NODE, len(self.inputs), index, slot)
        self.inputs.append(name)

    def hidden(self, index: str, name: str) -> bool:
        return self.config(index, "input", name).get("visible") is False

    def config(self, index: str, side: str, key: str | int) -> Mapping[str, Any]:
        config = self.data.get("config")
        node = config.get(index) if isinstance(config, Mapping) else None
        entries = node.get(side) if isinstance(node, Mapping) else None
        entry = entries.get(str(key)) if isinstance(entries, Mapping) else None
        return entry if isinstance(entry, Mapping) else {}

    def input_label(self, index: str, name: str) -> str:
        """The name the instance gives an inner input (the front end's getInputConfig)."""
        node = self.nodes[index]
        custom = self.config(index, "input", name).get("name")
        label = custom if isinstance(custom, str) else slot_label(node, name) or name
        key = label
        title = node.get("title")
        if (node["type"] == "PrimitiveNode" and title) or label in self.seen_names:
            prefix = f"{title if isinstance(title, str) else node['type']} "
            key = label = prefix + name
            if label in self.seen_names:
                label = f"{prefix}{self.seen_names[label]} {name}"
        self.seen_names[key] = self.seen_names.get(key, 1) + 1
        return label

    def linked_inputs(self, index: str, node: Mapping[str, Any]) -> list[Any]:
        """The inner node's input slots, each linked by the definition's own link ids."""
        slots = node.get("inputs")
        linked = []
        for slot, entry in enumerate(slots if isinstance(slots, list) else []):
            link = next(
                (
                    link_id
                    for link_id, link in self.links.items()
                    if link.target == index and link.target_slot == slot
                ),
                None,
            )
            linked.append({**entry, "link": link} if isinstance(entry, Mapping) else entry)
        return linked


def converted_slot(node: Mapping[str, Any], widget: str) -> int | None:
    """The input slot a widget was converted to (named after it, with `widget.name` set), if any."""
    slots = node.get("inputs")
    for slot, entry in enumerate(slots if isinstance(slots, list) else []):
        marker = entry.get("widget") if isinstance(entry, Mapping) else None
        if entry.get("name") == widget and isinstance(marker, Mapping) and marker.get("name") == widget:
            return slot
    return None


def slot_named(node: Mapping[str, Any], name: str, place: int) -> int:
    """The slot of the input of that name; else its place among the sockets (legacy nodes list
    their sockets first, in declaration order)."""
    slots = node.get("inputs")
    for slot, entry in enumerate(slots if isinstance(slots, list) else []):
        if isinstance(entry, Mapping) and entry.get("name") == name:
            return slot
    return place


def slot_label(node: Mapping[str, Any], name: str) -> str | None:
    slots = node.get("inputs")
    for entry in slots if isinstance(slots, list) else []:
        if isinstance(entry, Mapping) and entry.get("name") == name and isinstance(entry.get("label"), str):
            return str(entry["label"])
    return None


def socket_type(node: Mapping[str, Any]) -> str:
    slots = node.get("inputs")
    first = slots[0] if isinstance(slots, list) and slots and isinstance(slots[0], Mapping) else {}
    kind = first.get("type")
    return kind if isinstance(kind, str) else "*"


def is_index(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
