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
        constants = sorted(graph_node.constants.items())
        upstream = sorted(
            (name, signatures[link.source], link.output) for name, link in graph_node.links.items()
        )
        fingerprint = ""
        if definition.fingerprint is not None:
            try:
                fingerprint = definition.fingerprint(graph_node.constants, files)
            except Exception as error:
                raise FingerprintError(node_id, definition.class_name, error) from error
        # repr is exact for the coerced constants (int, float, bool, str) and cheap; the digest keeps
        # every signature short however deep the graph.
        text = repr((definition.class_name, definition.version, constants, upstream, fingerprint))
        signatures[node_id] = hashlib.blake2b(text.encode(), digest_size=16).hexdigest()
    return signatures
