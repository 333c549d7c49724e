"""`--set NODE_ID.INPUT=VALUE` on the command line: changing a graph's constants before it runs.

Shared by `run`, `validate` and `batch`. A value that names an existing file may point outside the
input folder (the user named it on their own command line); a graph file or a client may not.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path

from ..core.files import FileStore
from ..core.suggest import did_you_mean
from ..core.validation import Validation
from ..formats.graph_file import GraphDocument
from .config import Settings
from .engine import Engine


class UsageError(Exception):
    """A bad argument: exit code 2."""


def split_override(text: str) -> tuple[str, str, str]:
    target, equals, value = text.partition("=")
    node_id, dot, input_name = target.rpartition(".")
    if not equals or not dot or not node_id or not input_name:
        raise UsageError(f"--set {text!r}: write NODE_ID.INPUT=VALUE, e.g. --set 3.seed=42")
    return node_id, input_name, value


def apply_overrides(document: GraphDocument, overrides: Sequence[str], settings: Settings) -> FileStore:
    """Write each --set value into the prompt. A value naming an existing file is allowed as an input
    file even outside the input folder: the user named it on the command line."""
    extra_inputs: dict[str, Path] = {}
    for text in overrides:
        node_id, input_name, value = split_override(text)
        entry = document.prompt.get(node_id)
        if not isinstance(entry, dict):
            known = ", ".join(sorted(document.prompt, key=natural)) or "none"
            hint = _node_hint(document, input_name)
            raise UsageError(f"--set {text!r}: the graph has no node {node_id!r} (its nodes: {known}){hint}")
        inputs = entry.setdefault("inputs", {})
        if isinstance(inputs, dict):
            inputs[input_name] = value
        if value and Path(value).is_file():
            extra_inputs[value] = Path(value).resolve()
    return dataclasses.replace(settings.file_store(), extra_inputs=extra_inputs)


def check_override_inputs(document: GraphDocument, overrides: Sequence[str], engine: Engine) -> None:
    for text in overrides:
        node_id, input_name, _ = split_override(text)
        class_type = document.prompt[node_id].get("class_type")
        definition = engine.registry.get(class_type) if isinstance(class_type, str) else None
        if definition is not None and input_name not in definition.inputs_by_name:
            names = ", ".join(definition.inputs_by_name) or "none"
            suggestion = did_you_mean(input_name, definition.inputs_by_name)
            where = _node_hint(document, input_name, node_id)
            raise UsageError(
                f"--set {text!r}: node {node_id} ({class_type}) has no input {input_name!r};{suggestion} "
                f"its inputs are: {names}{where}"
            )


def store_typed_overrides(document: GraphDocument, overrides: Sequence[str], validation: Validation) -> None:
    """Put --set values back into the graph as their declared types ("256" -> 256), so the graph
    embedded in saved images reads as if it had been written that way."""
    if validation.graph is None:
        return
    for text in overrides:
        node_id, input_name, _ = split_override(text)
        graph_node = validation.graph.nodes.get(node_id)
        if graph_node is not None and input_name in graph_node.constants:
            document.prompt[node_id]["inputs"][input_name] = graph_node.constants[input_name]


def _node_hint(document: GraphDocument, input_name: str, besides: str = "") -> str:
    """Which nodes hold a value (not a link) for an input of that name: where --set meant to go."""
    having = [
        node_id
        for node_id, entry in sorted(document.prompt.items(), key=lambda item: natural(item[0]))
        if node_id != besides
        and isinstance(entry, dict)
        and isinstance(entry.get("inputs"), dict)
        and input_name in entry["inputs"]
        and not isinstance(entry["inputs"][input_name], list)
    ]
    targets = ", ".join(f"{node_id}.{input_name}" for node_id in having)
    return f"; the graph has {targets}" if having else ""


def natural(node_id: str) -> tuple[int, str]:
    return (int(node_id), "") if node_id.isdigit() else (sys.maxsize, node_id)
