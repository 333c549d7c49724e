"""Subgraphs, flattened as ComfyUI's front end flattens them when it builds a prompt.

A subgraph definition (`definitions.subgraphs`, workflow schema 0.4 and 1) is a small workflow of its
own whose links may leave a pseudo node for its inputs (id -10) or enter one for its outputs (id -20).
A node whose type is a definition's id is an instance of it. Flattening replaces every instance that
runs (not muted, not bypassed) by its definition's nodes under execution ids `<instance>:<inner id>`
(nested: `a:b:c`), and follows each link to where its value comes from, as the front end's
`ExecutableNodeDTO.resolveInput` does:

- a link from the inputs node takes what feeds the instance's input of that slot: the outer link if
  there is one, else the value of the widget the instance shows for that input, else nothing;
- a link from an instance's output takes the inner link into the outputs node of that slot.

An instance shows a widget for each input that feeds an inner widget (through nested instances too);
its `widgets_values` hold one value per such input, in input order, and a missing value is the first
such inner widget's own. Older workflows list promoted inner widgets in the instance's
`properties.proxyWidgets` (`[inner node id, widget]`, the values at the same places in
`widgets_values`), which set those widgets as the front end's migration of them does.

Definitions are read and checked by `subgraph_definitions`; group nodes by `group_nodes`.

Two things we do differently on purpose: an instance muted or bypassed inside another subgraph is left
out with its nodes (the front end still runs them), and a null stored value counts as no value.

The result is a plain workflow's nodes and links (a link may carry a constant), which
`workflow_convert` converts as any other: reroutes, primitives, bypass and mute work inside too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..core.registry import NodeRegistry
from .subgraph_definitions import INPUTS_NODE, Subgraph, WidgetSlot, check_nesting
from .workflow_json import (
    BYPASSED,
    MUTED,
    Link,
    LinkId,
    PrimitiveValue,
    Source,
    WorkflowError,
    check_constant,
    describe,
    is_control_value,
    is_link_id,
    short,
    widget_values,
)

MAX_FLAT_NODES = 10_000  # nodes and instances, once every instance is expanded
LEGACY_PREFIX = re.compile(r"^\s*(\d+)\s*:\s*(.+)$")  # "12: seed", as old proxyWidgets named widgets


class NoValue:
    """No widget value: the input feeds no widget."""


NO_VALUE = NoValue()


@dataclass
class Scope:
    """The root graph, or one running instance of a subgraph: its nodes and links, where it sits and
    what its instance gives it (promoted widget values, widget values for inner nodes)."""

    path: tuple[str, ...]
    nodes: dict[str, Mapping[str, Any]]
    links: dict[LinkId, Link]
    subgraph: Subgraph | None = None
    parent: Scope | None = None
    outer_links: tuple[LinkId | None, ...] = ()  # what feeds each instance input, in the parent
    values: dict[int, Any] = field(default_factory=dict)  # promoted widget values by input slot
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)  # inner node → widget → value

    @property
    def label(self) -> str:
        if self.subgraph is None:
            return "the workflow"
        return f"{self.subgraph.label} (node {short(':'.join(self.path))})"

    def flat_id(self, node_id: str) -> str:
        return ":".join((*self.path, node_id))

    def flat_link(self, link_id: LinkId) -> LinkId:
        return f"{':'.join(self.path)}/{link_id}" if self.path else link_id


@dataclass
class FlatGraph:
    """A workflow without subgraphs: nodes by execution id, and where each link comes from."""

    nodes: dict[str, Mapping[str, Any]]
    links: dict[LinkId, Source]


def flatten(
    nodes: dict[str, Mapping[str, Any]],
    links: dict[LinkId, Link],
    subgraphs: Mapping[str, Subgraph],
    registry: NodeRegistry,
) -> FlatGraph:
    """The workflow's nodes with every running instance replaced by its inner nodes."""
    check_nesting(subgraphs)
    flattener = Flattener(subgraphs, registry)
    try:
        flattener.expand(Scope((), nodes, links))
    except RecursionError:  # a link passing through thousands of instances in a row
        raise WorkflowError(
            "a link passes through too many subgraph nodes in a row to follow; unpack some of them"
        ) from None
    return FlatGraph(flattener.nodes, flattener.links)


class Flattener:
    """Expands instances scope by scope, resolving each link once its target node is emitted."""

    def __init__(self, subgraphs: Mapping[str, Subgraph], registry: NodeRegistry):
        self.subgraphs = subgraphs
        self.registry = registry
        self.nodes: dict[str, Mapping[str, Any]] = {}
        self.links: dict[LinkId, Source] = {}
        self.scopes: dict[tuple[str, ...], Scope] = {}
        self.defaults: dict[tuple[str, int], Any] = {}

    def expand(self, scope: Scope) -> None:
        for node_id, node in scope.nodes.items():
            child = self.child(scope, node_id, node)
            if child is not None:
                self.expand(child)
            else:
                self.emit(scope, node_id, node)

    def child(self, scope: Scope, node_id: str, node: Mapping[str, Any]) -> Scope | None:
        """The scope of a running instance (made once), or None for any other node."""
        subgraph = self.subgraphs.get(node["type"])
        if subgraph is None or node.get("mode") in (MUTED, BYPASSED):
            return None
        path = (*scope.path, node_id)
        if path not in self.scopes:
            self.count_one()
            child = Scope(path, subgraph.nodes, subgraph.links, subgraph, scope)
            child.outer_links = instance_links(node, subgraph)
            if subgraph.widget_slots is not None:
                child.overrides = group_widgets(child.label, node, subgraph.widget_slots)
            else:
                self.read_instance_widgets(child, node, scope.overrides.get(node_id, {}))
            self.scopes[path] = child
        return self.scopes[path]

    def emit(self, scope: Scope, node_id: str, node: Mapping[str, Any]) -> None:
        """Add one node that is not a running instance, its input links resolved."""
        self.count_one()
        flat_id = scope.flat_id(node_id)
        slots = node.get("inputs")
        rewritten: list[Any] = []
        for slot in slots if isinstance(slots, list) else []:
            link_id = slot.get("link") if isinstance(slot, Mapping) else None
            if not is_link_id(link_id):
                rewritten.append(slot)  # unlinked, or malformed: the converter says so
                continue
            flat_link = scope.flat_link(link_id)
            source = self.source(scope, link_id, set())
            if source is not None:
                self.links[flat_link] = source
            rewritten.append({**slot, "link": flat_link})
        if not scope.path:
            self.nodes[flat_id] = node  # the root keeps its link ids
            return
        flat: dict[str, Any] = {**node, "id": flat_id}
        if isinstance(slots, list):
            flat["inputs"] = rewritten
        overrides = scope.overrides.get(node_id)
        if overrides:
            flat["widgets_values"] = self.overridden_values(flat_id, node, overrides)
        self.nodes[flat_id] = flat

    def count_one(self) -> None:
        if len(self.nodes) + len(self.scopes) >= MAX_FLAT_NODES:
            raise WorkflowError(
                f"the workflow's subgraphs expand to more than {MAX_FLAT_NODES} nodes; "
                "split it into smaller workflows"
            )

    def source(self, scope: Scope, link_id: LinkId, seen: set[tuple[Any, ...]]) -> Source | None:
        """Where a link of this scope really comes from; None where nothing feeds it."""
        link = scope.links.get(link_id)
        if link is None:
            return None
        if scope.subgraph is not None and link.origin == INPUTS_NODE:
            return self.instance_input(scope, link.origin_slot, seen)
        origin = scope.nodes.get(link.origin)
        child = self.child(scope, link.origin, origin) if origin is not None else None
        if child is None:
            return (scope.flat_id(link.origin), link.origin_slot)
        return self.instance_output(child, link.origin_slot, seen)

    def instance_input(self, scope: Scope, slot: int, seen: set[tuple[Any, ...]]) -> Source | None:
        """What feeds an instance's input: the outer link, else its widget's value, else nothing."""
        visit(seen, scope, "input", slot)
        outer = scope.outer_links[slot] if slot < len(scope.outer_links) else None
        if outer is not None and scope.parent is not None:
            return self.source(scope.parent, outer, seen)
        if slot in scope.values:
            return PrimitiveValue(scope.values[slot])
        return None

    def instance_output(self, scope: Scope, slot: int, seen: set[tuple[Any, ...]]) -> Source | None:
        visit(seen, scope, "output", slot)
        assert scope.subgraph is not None
        link_id = scope.subgraph.output_link(slot)
        return None if link_id is None else self.source(scope, link_id, seen)

    def read_instance_widgets(
        self, scope: Scope, instance: Mapping[str, Any], given: Mapping[str, Any]
    ) -> None:
        """The values of the widgets a subgraph instance shows: one stored value per promoting input,
        then the legacy proxyWidgets, then what an outer instance's proxyWidgets set here."""
        assert scope.subgraph is not None
        subgraph = scope.subgraph
        stored = instance.get("widgets_values")
        place = 0
        for slot, name in enumerate(subgraph.inputs):
            default = self.promoted_default(subgraph, slot)
            if default is NO_VALUE:
                continue
            value = stored_value(stored, place, name)
            place += 1
            scope.values[slot] = default if value is None else value
        for slot, value in self.proxy_widget_values(scope, instance, stored).items():
            scope.values[slot] = value
        for name, value in given.items():
            if name in subgraph.inputs and subgraph.inputs.index(name) in scope.values:
                scope.values[subgraph.inputs.index(name)] = value
        for slot, value in scope.values.items():
            scope.values[slot] = check_constant(
                value, f"{scope.label}: widget {describe(subgraph.inputs[slot])}"
            )

    def proxy_widget_values(self, scope: Scope, instance: Mapping[str, Any], stored: Any) -> dict[int, Any]:
        """Legacy `properties.proxyWidgets`: the value at each entry's place sets the promoted input
        that feeds that widget, else the inner widget itself (as the front end's migration does)."""
        assert scope.subgraph is not None
        subgraph = scope.subgraph
        values: dict[int, Any] = {}
        for place, (node_id, widget) in enumerate(proxy_entries(instance)):
            value = stored_value(stored, place, None)
            if value is None:
                continue  # a hole: the widget keeps its value
            node_id = subgraph.renumbered.get(node_id, node_id)
            slot = subgraph.inputs.index(widget) if node_id == "-1" and widget in subgraph.inputs else None
            slot = slot if slot is not None else self.input_feeding(subgraph, node_id, widget)
            if slot is not None:
                if slot in scope.values:
                    values[slot] = value
                continue
            inner = subgraph.nodes.get(node_id)
            if inner is not None:
                name = widget if has_input(inner, widget) else strip_legacy_prefixes(widget)
                scope.overrides.setdefault(node_id, {})[name] = check_constant(
                    value, f"{scope.label}: widget {describe(widget)}"
                )
        return values

    def input_feeding(self, subgraph: Subgraph, node_id: str, widget: str) -> int | None:
        """The subgraph input whose links reach that inner node's input of that name."""
        for slot in range(len(subgraph.inputs)):
            for link in subgraph.input_links(slot):
                if link.target != node_id or link.target_slot is None:
                    continue
                if input_name(subgraph.nodes[node_id], link.target_slot) == widget:
                    return slot
        return None

    def promoted_default(self, subgraph: Subgraph, slot: int) -> Any:
        """The own value of the first inner widget an input feeds (through nested instances too), or
        NO_VALUE where it feeds none (then the instance shows no widget for it)."""
        key = (subgraph.id, slot)
        if key not in self.defaults:
            self.defaults[key] = NO_VALUE
            for link in subgraph.input_links(slot):
                target = subgraph.nodes.get(link.target or "")
                if target is None or link.target_slot is None:
                    continue  # straight to the outputs node
                nested = self.subgraphs.get(target["type"])
                if nested is not None:
                    value = self.promoted_default(nested, link.target_slot)
                else:
                    value = self.own_widget_value(target, link.target_slot)
                if value is not NO_VALUE:
                    self.defaults[key] = value
                    break
        return self.defaults[key]

    def own_widget_value(self, node: Mapping[str, Any], slot: int) -> Any:
        definition = self.registry.get(node["type"])
        name = input_name(node, slot)
        spec = definition.inputs_by_name.get(name) if definition is not None and name else None
        if definition is None or spec is None or not spec.is_widget:
            return NO_VALUE
        return widget_values(f"node {short(str(node.get('id')))}", node, definition).get(
            spec.name, spec.default
        )

    def overridden_values(self, flat_id: str, node: Mapping[str, Any], overrides: Mapping[str, Any]) -> Any:
        """The node's widget values with those its instance sets (by name, as the converter reads them)."""
        values = node.get("widgets_values")
        if node["type"] == "PrimitiveNode":
            rest = values[1:] if isinstance(values, list) else []
            return [next(iter(overrides.values())), *rest]
        definition = self.registry.get(node["type"])
        if definition is None:
            return values  # an unknown type: the converter names it
        named = widget_values(f"node {short(flat_id)}", node, definition)
        for name, value in overrides.items():
            spec = definition.inputs_by_name.get(name)
            if spec is not None and spec.is_widget:
                named[name] = value
        return named


def visit(seen: set[tuple[Any, ...]], scope: Scope, side: str, slot: int) -> None:
    """Refuse a link that comes back to where it started (an output fed by its own input)."""
    key = (scope.path, side, slot)
    if key in seen:
        raise WorkflowError(
            f"{scope.label}: its {side} {slot} feeds itself through a link that passes straight through "
            "the subgraph; remove one link of that loop"
        )
    seen.add(key)


def instance_links(instance: Mapping[str, Any], subgraph: Subgraph) -> tuple[LinkId | None, ...]:
    """The outer link into each of the definition's inputs: the instance's input of that name, else
    the one at its place (the front end rebuilds an instance's inputs from its definition and
    matches the saved ones to them by name)."""
    slots = instance.get("inputs")
    entries = [slot for slot in slots if isinstance(slot, Mapping)] if isinstance(slots, list) else []
    found: list[LinkId | None] = []
    for place, name in enumerate(subgraph.inputs):
        slot = entries[place] if place < len(entries) else None
        slot = next((entry for entry in entries if entry.get("name") == name), slot)
        link = slot.get("link") if slot is not None else None
        found.append(link if is_link_id(link) else None)
    return tuple(found)


def group_widgets(
    label: str, instance: Mapping[str, Any], slots: tuple[WidgetSlot, ...]
) -> dict[str, dict[str, Any]]:
    """A group node's widgets_values by the inner widgets they set (the front end copies them in)."""
    stored = instance.get("widgets_values")
    values = stored if isinstance(stored, list) else []
    overrides: dict[str, dict[str, Any]] = {}
    place = 0
    for slot in slots:
        if place >= len(values):
            break
        value = values[place]
        place += 1
        if slot.has_control and place < len(values) and is_control_value(values[place]):
            place += 1
        if value is not None:
            overrides.setdefault(slot.node, {})[slot.name] = check_constant(
                value, f"{label}: widget {describe(slot.name)}"
            )
    return overrides


def stored_value(stored: Any, place: int, name: str | None) -> Any:
    """An instance's stored widget value at a place (or by name, where they are stored by name)."""
    if isinstance(stored, list):
        return stored[place] if place < len(stored) else None
    if isinstance(stored, Mapping) and name is not None:
        return stored.get(name)
    return None


def proxy_entries(instance: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The instance's legacy proxyWidgets as (inner node id, widget); none where they are not
    a list of two or three texts (the front end then ignores them all too)."""
    properties = instance.get("properties")
    entries = properties.get("proxyWidgets") if isinstance(properties, Mapping) else None
    if isinstance(entries, str):
        try:
            entries = json.loads(entries)
        except ValueError:
            return []
    if not isinstance(entries, list):
        return []
    if not all(
        isinstance(entry, list) and len(entry) in (2, 3) and all(isinstance(part, str) for part in entry)
        for entry in entries
    ):
        return []
    return [(entry[0], entry[1]) for entry in entries]


def strip_legacy_prefixes(widget: str) -> str:
    while (match := LEGACY_PREFIX.match(widget)) is not None:
        widget = match.group(2)
    return widget


def input_name(node: Mapping[str, Any], slot: int) -> str | None:
    slots = node.get("inputs")
    entry = slots[slot] if isinstance(slots, list) and slot < len(slots) else None
    name = entry.get("name") if isinstance(entry, Mapping) else None
    return name if isinstance(name, str) else None


def has_input(node: Mapping[str, Any], name: str) -> bool:
    slots = node.get("inputs")
    return isinstance(slots, list) and any(
        isinstance(slot, Mapping) and slot.get("name") == name for slot in slots
    )
