"""Loading a depth model: one node whose four outputs feed the other families."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from engine.context import NodeContext
from engine.files import FileStore
from engine.models.manager import ModelHandle, find_models, model_names
from engine.models.tiny import TINY_MODEL
from engine.registry import Input, Output, node
from engine.sockets import CLIP, DEPTH_MODEL, MODEL, VAE


def _model_choices(files: FileStore) -> Sequence[str]:
    return model_names(files.models_dir)


def _where_models_are(files: FileStore, name: str) -> str:
    available = ", ".join(repr(choice) for choice in model_names(files.models_dir))
    return (
        f"model {name!r} was not found: searched {files.models_dir.resolve()} for a folder {name!r} with "
        f"model_index.json (diffusers layout) or a checkpoint file {name!r}. Place it there, pass "
        "--models-dir, or run "
        f"`depthgraph models fetch` on a machine with internet. Available: {available}"
    )


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
    inputs=[
        Input.combo(
            "ckpt_name",
            _model_choices,
            default=TINY_MODEL,
            tooltip="a diffusers folder or .ckpt/.safetensors file in models/; tiny-random makes noise",
            missing_hint=_where_models_are,
        )
    ],
    outputs=[Output(MODEL), Output(CLIP), Output(VAE), Output(DEPTH_MODEL)],
    fingerprint=_model_fingerprint,
)
def checkpoint_loader(
    ckpt_name: str, context: NodeContext
) -> tuple[ModelHandle, ModelHandle, ModelHandle, ModelHandle]:
    context.models.find(ckpt_name)  # a clear error now if it vanished since validation
    handle = ModelHandle(context.models, ckpt_name)
    # One handle serves all four sockets: each node loads only the parts it uses, when it runs.
    return handle, handle, handle, handle
