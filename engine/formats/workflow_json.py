"""The checked pieces of an editor workflow's JSON: nodes, links, ids, slots and widget values.

A workflow arrives from outside (a dropped file, a request body), so every part of it is checked
before it is used: anything of the wrong shape is a `WorkflowError` that names the node or link,
never a crash. Messages quote only a short, safe description of a bad value, never the value itself.
`workflow_convert`, `subgraphs` and `group_nodes` all read workflows through these functions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

from ..core.registry import NodeDefinition
from ..core.sockets import INT

MUTED, BYPASSED = 2, 4
CONTROL_VALUES = frozenset({"fixed", "increment", "decrement", "randomize"})
MAX_SLOT = 2**31 - 1
LINK_SHAPE = "[id, origin node, origin slot, target node, target slot, type]"

LinkId = int | str


class WorkflowError(ValueError):
    """A workflow that cannot be converted; the message names the node."""


@dataclass(frozen=True)
class PrimitiveValue:
    """What a link carries when a constant feeds it (a `PrimitiveNode`, a subgraph node's widget)."""

    value: Any


Source = tuple[str, int] | PrimitiveValue


@dataclass(frozen=True)
class Link:
    """One link: the output it leaves (node id as text, slot) and the input it enters. The target is
    None where the workflow does not say it well (only subgraph definitions need it)."""

    origin: str
    origin_slot: int
    target: str | None = None
    target_slot: int | None = None


def read_nodes(entries: list[Any]) -> dict[str, Mapping[str, Any]]:
    """The nodes by id (as text, the API form's keys); each one an object with an id and a type."""
    nodes: dict[str, Mapping[str, Any]] = {}
    for position, node in enumerate(entries):
        if not isinstance(node, Mapping):
            raise WorkflowError(
                f"nodes[{position}] is {describe(node)}; each node is an object with an id and a type"
            )
        node_id = node_key(node.get("id"))
        if node_id is None:
            raise WorkflowError(
                f"nodes[{position}]'s id is {describe(node.get('id'))}; a node's id is a number or text"
            )
        if node_id in nodes:
            raise WorkflowError(f"two nodes have the id {short(node_id)}; every node needs its own id")
        if not isinstance(node.get("type"), str):
            raise WorkflowError(
                f"node {short(node_id)}'s type is {describe(node.get('type'))}; "
                "a node's type is the name of its class"
            )
        nodes[node_id] = node
    return nodes


def read_links(entries: Any) -> dict[LinkId, Link]:
    """Each link by id, from the list of lists (schema 0.4) or of objects (schema 1, subgraphs)."""
    if entries is None:
        return {}
    if not isinstance(entries, list):
        raise WorkflowError(f"the workflow's 'links' is {describe(entries)}; it is a list of links")
    links: dict[LinkId, Link] = {}
    for position, entry in enumerate(entries):
        if entry is None:
            continue  # nothing linked here
        link_id, link = read_link(position, entry)
        links[link_id] = link
    return links


def read_link(position: int, link: Any) -> tuple[LinkId, Link]:
    if isinstance(link, list):
        if len(link) < 5:
            raise WorkflowError(f"links[{position}] has {len(link)} items; a link is {LINK_SHAPE}")
        link_id, origin, slot, target, target_slot = link[:5]
    elif isinstance(link, Mapping):
        link_id, origin, slot = link.get("id"), link.get("origin_id"), link.get("origin_slot", 0)
        target, target_slot = link.get("target_id"), link.get("target_slot")
    else:
        raise WorkflowError(f"links[{position}] is {describe(link)}; a link is {LINK_SHAPE}")
    if not is_link_id(link_id):
        raise WorkflowError(f"links[{position}]'s id is {describe(link_id)}; a link's id is a number or text")
    origin_id = node_key(origin)
    if origin_id is None:
        raise WorkflowError(
            f"link {describe(link_id)}'s origin node is {describe(origin)}; a link's origin is a node id"
        )
    output = slot_number(slot)
    if output is None:
        raise WorkflowError(
            f"link {describe(link_id)}'s origin slot (on node {short(origin_id)}) is {describe(slot)}; "
            "a slot is a whole number from 0"
        )
    return link_id, Link(origin_id, output, node_key(target), slot_number(target_slot))


def widget_values(label: str, node: Mapping[str, Any], definition: NodeDefinition) -> dict[str, Any]:
    """The node's own widget values by input name, as written (not yet checked). They are matched to
    the widget inputs in declaration order; the "control after generate" value an editor stores
    after a whole-number widget (a seed) is skipped. An object of values by name is read as it is."""
    values = node.get("widgets_values")
    if values is None:
        return {}
    if isinstance(values, Mapping):
        return {
            spec.name: values[spec.name]
            for spec in definition.inputs
            if spec.is_widget and spec.name in values
        }
    if not isinstance(values, list):
        raise WorkflowError(
            f"{label}'s widgets_values are {describe(values)}; they are a list of widget values"
        )
    found: dict[str, Any] = {}
    position = 0
    for spec in definition.inputs:
        if not spec.is_widget or position >= len(values):
            continue
        found[spec.name] = values[position]
        position += 1
        if spec.type == INT and position < len(values) and is_control_value(values[position]):
            position += 1
    return found


def is_control_value(value: Any) -> bool:
    """Whether a stored widget value is the "control after generate" choice, not a value."""
    return isinstance(value, str) and value in CONTROL_VALUES


def node_key(value: Any) -> str | None:
    """A node id as the API form's key (text), or None where it is no id."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value:
        return value
    return None


def is_link_id(value: Any) -> TypeGuard[LinkId]:
    return (isinstance(value, int) and not isinstance(value, bool)) or isinstance(value, str)


def slot_number(value: Any) -> int | None:
    """A slot: a whole number from 0 (also written as text, as some editors do)."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 10:
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_SLOT:
        return value
    return None


def check_constant(value: Any, what: str) -> Any:
    """A widget value as the API form can hold it: a list there would read as a link."""
    if isinstance(value, list | Mapping):
        raise WorkflowError(f"{what} is {describe(value)}; a widget's value is a number, text or true/false")
    if isinstance(value, float) and not math.isfinite(value):
        raise WorkflowError(f"{what} is {describe(value)}; a widget's value is a finite number")
    return value


def short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def describe(value: Any) -> str:
    """A short description of a JSON value for a message: small values as written, others by kind."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value) if abs(value) < 10**15 else "a very large number"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return repr(short(value))
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return f"a {type(value).__name__}"
