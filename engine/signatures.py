"""A node's signature: what its result depends on, and so the key of its cached result.

signature = hash(class name, node version, constant inputs, the signatures and output indices of the
nodes it reads from, the fingerprint of whatever outside thing it reads). Node ids are not part of it:
renumbering a graph invalidates nothing, and two identical branches share one result.
"""

from __future__ import annotations

import hashlib

from engine.files import FileStore
from engine.graph import ExecutableGraph


class FingerprintError(Exception):
    """A node's fingerprint could not be taken (its file is gone, say)."""

    def __init__(self, node_id: str, class_type: str, cause: BaseException) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.node_id = node_id
        self.class_type = class_type
        self.cause = cause


def compute_signatures(graph: ExecutableGraph, files: FileStore) -> dict[str, str]:
    """The signature of every node of `graph`, by node id."""
    signatures: dict[str, str] = {}
    for node_id in graph.order:
        graph_node = graph.nodes[node_id]
        definition = graph_node.definition
        # Constants and links are in the order the node declares its inputs (validation fills them
        # so), whatever order the file had. Names are identifiers and digests are hex, so joining on
        # a control character is unambiguous; repr marks each constant's type ("1", "1.0", "True", "'1'").
        parts = [definition.class_name, str(definition.version)]
        for name, value in graph_node.constants.items():
            parts.append(name)
            parts.append(repr(value))
        for name, link in graph_node.links.items():
            parts.append(name)
            parts.append(signatures[link.source])
            parts.append(str(link.output))
        if definition.fingerprint is not None:
            try:
                parts.append(repr(definition.fingerprint(graph_node.constants, files)))
            except Exception as error:
                raise FingerprintError(node_id, definition.class_name, error) from error
        text = "\x1f".join(parts)
        signatures[node_id] = hashlib.blake2b(text.encode(), digest_size=16).hexdigest()
    return signatures
