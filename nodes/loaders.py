"""Loading a model: one node whose four outputs feed the other families of nodes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from depthgraph.engine.core.context import NodeContext
from depthgraph.engine.core.files import FileStore
from depthgraph.engine.core.registry import Combo, Output, Unusable, node
from depthgraph.engine.core.sockets import CLIP, DEPTH_MODEL, MODEL, VAE
from depthgraph.engine.models.common import ModelError
from depthgraph.engine.models.families import ModelInfo, UnsupportedModelError
from depthgraph.engine.models.manager import (
    ModelHandle,
    ModelSource,
    find_models,
    model_names,
    model_not_found_message,
    no_depth_estimator_message,
)
from depthgraph.engine.models.tiny import TINY_MODEL


def _model_choices(files: FileStore) -> Sequence[str]:
    return model_names(files.models_dir)


def _where_models_are(files: FileStore, name: str) -> str:
    return model_not_found_message(name, files.models_dir)


def _source(files: FileStore, name: Any) -> ModelSource | None:
    return next((source for source in find_models(files.models_dir) if source.name == name), None)


def _model_fingerprint(inputs: Mapping[str, Any], files: FileStore) -> str:
    source = _source(files, inputs["ckpt_name"])
    return "missing" if source is None else source.fingerprint()


def describe_model(known: Mapping[str, Any], files: FileStore) -> ModelInfo | None:
    """At validation: which family the model typed in is (None when it cannot be told yet)."""
    source = _source(files, known.get("ckpt_name"))
    if source is None:
        return None
    try:
        return source.info()
    except ModelError:
        return None


def describe_depth_model(known: Mapping[str, Any], files: FileStore) -> ModelInfo | Unusable | None:
    """The model, or, for one without its own depth estimator, why its DEPTH_MODEL cannot be used."""
    info = describe_model(known, files)
    if info is not None and not info.depth_estimator:
        return Unusable(no_depth_estimator_message(str(known.get("ckpt_name")), info))
    return info


def _check_model(known: Mapping[str, Any], files: FileStore) -> dict[str, str]:
    """A model of a kind depthgraph does not run (an inpainting UNet, a refiner) is refused now."""
    found = _source(files, known.get("ckpt_name"))
    try:
        if found is not None:
            found.info()
    except UnsupportedModelError as error:
        return {"ckpt_name": str(error)}
    except ModelError:
        pass  # unreadable: loading it says what is wrong
    return {}


@node(
    "CheckpointLoader",
    display_name="Load Checkpoint",
    category="loaders",
    description=(
        "Picks a Stable Diffusion 1.x, 2.x, XL or 2-depth model from the models folder (the tiny-* models "
        "are built in)."
    ),
    outputs=[
        Output(MODEL, describe=describe_model),
        Output(CLIP, describe=describe_model),
        Output(VAE, describe=describe_model),
        Output(DEPTH_MODEL, describe=describe_depth_model),
    ],
    fingerprint=_model_fingerprint,
    inputs_check=_check_model,
)
def checkpoint_loader(
    ckpt_name: str = Combo(
        _model_choices,
        default=TINY_MODEL,
        tooltip="a diffusers folder or .ckpt/.safetensors file in models/; the tiny-* models make noise",
        missing_hint=_where_models_are,
    ),
    *,
    context: NodeContext,
) -> tuple[ModelHandle, ModelHandle, ModelHandle, ModelHandle]:
    """MODEL, CLIP, VAE and DEPTH_MODEL of one model. DEPTH_MODEL is its own depth estimator, which only
    SD2-depth checkpoints carry: for the others validation refuses a link from it, saying to load an
    estimator on its own."""
    context.models.find(ckpt_name)  # a clear error now if it vanished since validation
    handle = ModelHandle(context.models, ckpt_name)
    # One handle serves all four sockets: each node loads only the parts it uses, when it runs.
    return handle, handle, handle, handle
