"""Loading a depth estimator on its own: one node whose DEPTH_MODEL feeds DepthEstimate, as a
checkpoint's does."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from depthgraph.engine.core.context import NodeContext
from depthgraph.engine.core.files import FileStore
from depthgraph.engine.core.registry import Combo, Output, node
from depthgraph.engine.core.sockets import DEPTH_MODEL
from depthgraph.engine.models.common import ModelError
from depthgraph.engine.models.depth_estimators import (
    DepthEstimatorHandle,
    depth_estimator_names,
    estimator_not_found_message,
    find_depth_estimator,
    find_depth_estimators,
)
from depthgraph.engine.models.manager import ModelManager

DEFAULT_ESTIMATOR = "tiny-dpt-hybrid"


def _choices(files: FileStore) -> Sequence[str]:
    return depth_estimator_names(files.models_dir)


def _where_estimators_are(files: FileStore, name: str) -> str:
    return estimator_not_found_message(name, files.models_dir)


def _fingerprint(inputs: Mapping[str, Any], files: FileStore) -> str:
    for source in find_depth_estimators(files.models_dir):
        if source.name == inputs["depth_model_name"]:
            return source.fingerprint()
    return "missing"


@node(
    "DepthModelLoader",
    display_name="Load Depth Estimator",
    category="loaders",
    description=(
        "Picks a depth estimator (MiDaS DPT-hybrid or DPT-large, Depth Anything V2, ZoeDepth, Depth Pro) "
        "from models/depth/ (tiny ones built in); the metric ones' metres become 1/m, so larger is nearer."
    ),
    outputs=[Output(DEPTH_MODEL)],
    fingerprint=_fingerprint,
)
def depth_model_loader(
    depth_model_name: str = Combo(
        _choices,
        default=DEFAULT_ESTIMATOR,
        tooltip=(
            "a Hugging Face folder or weights file in models/depth/; the tiny-* ones make noise. "
            "ZoeDepth and Depth Pro predict metres: Estimate Depth gives their inverse (1/m)"
        ),
        missing_hint=_where_estimators_are,
    ),
    *,
    context: NodeContext,
) -> tuple[DepthEstimatorHandle]:
    """The estimator's handle; it is loaded (once, then kept) when Estimate Depth first runs it."""
    if not isinstance(context.models, ModelManager):
        raise ModelError("this run has no model manager, so no depth estimator can be loaded")
    source = find_depth_estimator(depth_model_name, context.files.models_dir)
    source.family()  # a file or folder that is no estimator is refused here, naming what is expected
    return (DepthEstimatorHandle(context.models, source),)
