"""The generation parameters of a saved image, in the text form A1111 writes into its PNGs
("parameters" chunk), read off the graph that made the image."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _upstream(prompt: Mapping[str, Any], start: str) -> list[str]:
    """Node ids that `start` reads from, nearest first."""
    seen, order, queue = {start}, [], [start]
    while queue:
        entry = prompt.get(queue.pop(0))
        inputs = entry.get("inputs", {}) if isinstance(entry, Mapping) else {}
        for value in inputs.values() if isinstance(inputs, Mapping) else ():
            if isinstance(value, list) and len(value) == 2 and str(value[0]) not in seen:
                seen.add(str(value[0]))
                order.append(str(value[0]))
                queue.append(str(value[0]))
    return order


def _constant(prompt: Mapping[str, Any], node_id: str, name: str) -> Any:
    value = prompt[node_id].get("inputs", {}).get(name)
    return None if isinstance(value, list) else value


def _text_of(prompt: Mapping[str, Any], link: Any) -> str | None:
    if isinstance(link, list) and len(link) == 2 and isinstance(prompt.get(str(link[0])), Mapping):
        source = str(link[0])
        if prompt[source].get("class_type") == "CLIPTextEncode":
            text = _constant(prompt, source, "text")
            return text if isinstance(text, str) else None
    return None


def generation_parameters(prompt: Mapping[str, Any], node_id: str, width: int, height: int) -> str | None:
    """The parameters text for the image saved by `node_id`, or None if no sampler made it."""
    upstream = _upstream(prompt, node_id)
    by_class: dict[str, str] = {}
    for source in upstream:
        class_type = prompt[source].get("class_type") if isinstance(prompt.get(source), Mapping) else None
        if isinstance(class_type, str):
            by_class.setdefault(class_type, source)
    sampler = by_class.get("DepthSampler") or by_class.get("Sampler")
    if sampler is None:
        return None
    inputs = prompt[sampler].get("inputs", {})
    lines = [_text_of(prompt, inputs.get("positive")) or ""]
    negative = _text_of(prompt, inputs.get("negative"))
    if negative:
        lines.append(f"Negative prompt: {negative}")
    fields: list[tuple[str, Any]] = []
    noise = by_class.get("NoiseLatent")
    if noise is not None:
        fields += [
            ("Steps", _constant(prompt, noise, "steps")),
            ("Sampler", _constant(prompt, noise, "scheduler")),
        ]
    fields.append(("CFG scale", _constant(prompt, sampler, "cfg")))
    if noise is not None:
        fields.append(("Seed", _constant(prompt, noise, "seed")))
    fields.append(("Size", f"{width}x{height}"))
    loader = by_class.get("CheckpointLoader")
    if loader is not None:
        fields.append(("Model", _constant(prompt, loader, "ckpt_name")))
    if noise is not None:
        fields.append(("Denoising strength", _constant(prompt, noise, "strength")))
    lines.append(", ".join(f"{name}: {value}" for name, value in fields if value is not None))
    return "\n".join(lines)
