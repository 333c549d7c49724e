"""Which models and conditionings a sampler takes, told at validation before anything runs.

Validation follows what the loader's outputs describe (`CheckpointLoader`: the model's `ModelInfo`;
`CLIPTextEncode`: the family whose CLIP made the conditioning) and hands it to each sampler's check:
a depth sampler needs the 5-channel depth UNet, the plain sampler a 4-channel one, and the prompts
must be encoded for the model's text space. The samplers check the UNet again when they run, for
graphs whose model validation could not tell (one from a custom loader).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from depthgraph.engine.core.files import FileStore
from depthgraph.engine.models.controlnets import ControlNetInfo
from depthgraph.engine.models.families import ModelInfo
from depthgraph.nodes.conditioning_value import ConditioningInfo

NO_DEPTH_INPUT = (
    "this model takes no depth: its UNet has 4 input channels. Use Sampler for image-to-image, or a "
    "depth ControlNet with it"
)
DEPTH_MODEL_IN_SAMPLER = (
    "this is a depth model (SD2-depth: its UNet takes the depth map as a fifth input channel): use "
    "DepthSampler and link a depth map"
)


def _conditioning_problems(model: ModelInfo, known: Mapping[str, Any]) -> dict[str, str]:
    problems = {}
    for name in ("positive", "negative"):
        made = known.get(name)
        if isinstance(made, ConditioningInfo) and made.family.text_space != model.family.text_space:
            problems[name] = (
                f"this conditioning was encoded by {made.family.title}'s text encoder "
                f"({made.family.text_space}), but the model is {model.family.title}, which reads "
                f"{model.family.text_space}: encode the prompt with this model's CLIP"
            )
    return problems


def depth_sampler_check(known: Mapping[str, Any], files: FileStore) -> dict[str, str]:
    """DepthSampler's pairing rule: an SD2-depth model, prompts encoded for it."""
    model = known.get("model")
    if not isinstance(model, ModelInfo):
        return {}
    problems = _conditioning_problems(model, known)
    if not model.family.takes_depth:
        problems["model"] = (
            f"this model takes no depth: it is {model.family.title}, whose UNet has 4 input channels. Use "
            "Sampler for image-to-image, or a depth ControlNet with it"
        )
    return problems


def sampler_check(known: Mapping[str, Any], files: FileStore) -> dict[str, str]:
    """Sampler's pairing rule: a 4-channel model (SD 1.x, 2.x, XL), prompts encoded for it."""
    model = known.get("model")
    if not isinstance(model, ModelInfo):
        return {}
    problems = _conditioning_problems(model, known)
    if model.family.takes_depth:
        problems["model"] = DEPTH_MODEL_IN_SAMPLER
    return problems


def controlnet_apply_check(known: Mapping[str, Any], files: FileStore) -> dict[str, str]:
    """Apply ControlNet's rule: the ControlNet reads the prompts' text space (it is for the family
    they were encoded for), takes a 3-channel control image, and starts before it ends."""
    problems: dict[str, str] = {}
    start, end = known.get("start_percent"), known.get("end_percent")
    if isinstance(start, (int, float)) and isinstance(end, (int, float)) and start > end:
        problems["start_percent"] = (
            f"start_percent ({start:g}) is after end_percent ({end:g}): the ControlNet would never apply; "
            "lower start_percent or raise end_percent"
        )
    control = known.get("control_net")
    if not isinstance(control, ControlNetInfo):
        return problems
    if control.conditioning_channels != 3:
        problems["control_net"] = (
            f"this ControlNet takes a {control.conditioning_channels}-channel control image; Apply "
            "ControlNet gives it RGB images (3 channels): use a ControlNet trained on images"
        )
    for name in ("positive", "negative"):
        made = known.get(name)
        if isinstance(made, ConditioningInfo) and made.family.text_space != control.family.text_space:
            problems.setdefault(
                "control_net",
                f"this ControlNet is for {control.family.title}, but the {name} prompt was encoded by "
                f"{made.family.title}'s text encoder ({made.family.text_space}): load a ControlNet made for "
                f"{made.family.title}, or use a {control.family.title} model",
            )
    return problems
