"""Loading a depth model: one node whose four outputs feed the other families."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from depthgraph.engine.core.context import NodeContext
from depthgraph.engine.core.files import FileStore
from depthgraph.engine.core.registry import Combo, Output, node
from depthgraph.engine.core.sockets import CLIP, DEPTH_MODEL, MODEL, VAE
from depthgraph.engine.models.manager import ModelHandle, find_models, model_names, model_not_found_message
from depthgraph.engine.models.tiny import TINY_MODEL


def _model_choices(files: FileStore) -> Sequence[str]:
    return model_names(files.models_dir)


def _where_models_are(files: FileStore, name: str) -> str:
    return model_not_found_message(name, files.models_dir)


def _model_fingerprint(inputs: Mapping[str, Any], files: FileStore) -> str:
    for source in find_models(files.models_dir):
        if source.name == inputs["ckpt_name"]:
            return source.fingerprint()
    return "missing"


@node(
    "CheckpointLoader",
    display_name="Load Depth Model",
    category="loaders",
    description="Picks a Stable Diffusion 2 depth model from the models folder (tiny-random is built in).",
    outputs=[Output(MODEL), Output(CLIP), Output(VAE), Output(DEPTH_MODEL)],
    fingerprint=_model_fingerprint,
)
def checkpoint_loader(
    ckpt_name: str = Combo(
        _model_choices,
        default=TINY_MODEL,
        tooltip="a diffusers folder or .ckpt/.safetensors file in models/; tiny-random makes noise",
        missing_hint=_where_models_are,
    ),
    *,
    context: NodeContext,
) -> tuple[ModelHandle, ModelHandle, ModelHandle, ModelHandle]:
    context.models.find(ckpt_name)  # a clear error now if it vanished since validation
    handle = ModelHandle(context.models, ckpt_name)
    # One handle serves all four sockets: each node loads only the parts it uses, when it runs.
    return handle, handle, handle, handle
