"""Node schemas in the shape of ComfyUI's `/object_info`, so its clients and editors read ours."""

from __future__ import annotations

from typing import Any

from .files import FileStore
from .registry import InputSpec, NodeDefinition, NodeRegistry
from .sockets import COMBO, FLOAT, INT, STRING


def input_schema(spec: InputSpec, files: FileStore) -> list[Any]:
    """One input as ComfyUI writes it: `[type, options]`, or `[[choices], options]` for a combo."""
    options: dict[str, Any] = {}
    if spec.default is not None:
        options["default"] = spec.default
    if spec.type in (INT, FLOAT):
        for key in ("min", "max", "step"):
            value = getattr(spec, key)
            if value is not None:
                options[key] = value
        if spec.display:
            options["display"] = spec.display
    if spec.type == STRING and spec.multiline:
        options["multiline"] = True
    if spec.upload == "image":
        options["image_upload"] = True
    if spec.tooltip:
        options["tooltip"] = spec.tooltip
    if spec.lazy:
        options["lazy"] = True  # ComfyUI's flag for inputs evaluated on demand
    kind: Any = list(spec.choices(files)) if spec.type == COMBO else spec.type
    return [kind, options] if options else [kind]


def node_schema(definition: NodeDefinition, files: FileStore) -> dict[str, Any]:
    required = {s.name: input_schema(s, files) for s in definition.inputs if s.required}
    optional = {s.name: input_schema(s, files) for s in definition.inputs if not s.required}
    inputs: dict[str, Any] = {"required": required}
    order: dict[str, list[str]] = {"required": list(required)}
    if optional:
        inputs["optional"] = optional
        order["optional"] = list(optional)
    return {
        "input": inputs,
        "input_order": order,
        "output": [output.type for output in definition.outputs],
        "output_is_list": [False for _ in definition.outputs],
        "output_name": [output.label for output in definition.outputs],
        "output_tooltips": [output.tooltip for output in definition.outputs],
        "name": definition.class_name,
        "display_name": definition.display_name,
        "description": definition.description,
        "python_module": _module_shown(definition.module),
        "category": definition.category,
        "output_node": definition.output_node,
        "version": definition.version,
        "deprecated": False,
        "experimental": False,
    }


def object_info(registry: NodeRegistry, files: FileStore) -> dict[str, dict[str, Any]]:
    """Every registered node's schema, by class name."""
    return {definition.class_name: node_schema(definition, files) for definition in registry}


PACKAGE_PREFIX = "depthgraph."


def _module_shown(module: str) -> str:
    """The node's module as clients have always seen it: `nodes.depth` for the built-in packs, whatever
    name the package is installed under (ComfyUI's front end tells built-in from custom nodes by it)."""
    return module.removeprefix(PACKAGE_PREFIX)
