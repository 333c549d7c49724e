"""torch for the node modules, imported when a node first uses it (`engine.core.lazy`): declaring the
built-in nodes, as `depthgraph validate`, `nodes`, `models list` and the server's `/object_info` do,
imports no torch. Type checkers see the real modules."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    import torch.nn.functional as F  # noqa: N812 (the usual torch spelling)
else:
    from depthgraph.engine.core.lazy import lazy_module

    torch = lazy_module("torch")
    F = lazy_module("torch.nn.functional")

__all__ = ["F", "torch"]
