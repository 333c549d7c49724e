"""What a node pack imports: one place, which stays put when the engine's modules move.

from depthgraph.engine.api import IMAGE, Float, Output, Socket, node
"""

from .core.context import Interrupted, NodeContext
from .core.registry import (
    ANY,
    BOOLEAN,
    COMBO,
    FLOAT,
    INT,
    STRING,
    Boolean,
    Combo,
    FilenamePrefix,
    Float,
    Input,
    Int,
    NodeDeclarationError,
    NodeOutput,
    Output,
    Socket,
    String,
    Unusable,
    node,
)
from .core.sockets import CLIP, CONDITIONING, DEPTH, DEPTH_MODEL, IMAGE, LATENT, MASK, MODEL, VAE
from .core.subchain import SubChain

__all__ = [
    "ANY",
    "BOOLEAN",
    "CLIP",
    "COMBO",
    "CONDITIONING",
    "DEPTH",
    "DEPTH_MODEL",
    "FLOAT",
    "IMAGE",
    "INT",
    "LATENT",
    "MASK",
    "MODEL",
    "STRING",
    "VAE",
    "Boolean",
    "Combo",
    "FilenamePrefix",
    "Float",
    "Input",
    "Int",
    "Interrupted",
    "NodeContext",
    "NodeDeclarationError",
    "NodeOutput",
    "Output",
    "Socket",
    "String",
    "SubChain",
    "Unusable",
    "node",
]
