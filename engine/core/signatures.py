"""A node's signature: what its result depends on, and so the key of its cached result.

signature = hash(class name, node version, constant inputs, the signatures and output indices of the
nodes it reads from, the fingerprint of whatever outside thing it reads). Node ids are not part of it:
renumbering a graph invalidates nothing, and two identical branches share one result.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from .files import FileStore
from .graph import ExecutableGraph


class FingerprintError(Exception):
    """A node's fingerprint could not be taken (its file is gone, say)."""

    def __init__(self, node_id: str, class_type: str, cause: BaseException) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.node_id = node_id
        self.class_type = class_type
        self.cause = cause


def compute_signatures(
    graph: ExecutableGraph, files: FileStore, known: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The signature of every node of `graph`, by node id; those in `known` are taken as they are."""
    signatures: dict[str, str] = dict(known or {})
    for node_id in graph.order:
        if node_id in signatures:
            continue
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


def inherited_signatures(
    part: ExecutableGraph, whole: ExecutableGraph, signatures: Mapping[str, str]
) -> dict[str, str]:
    """The signatures of `whole` that still hold in `part`, a sub-graph of it with some nodes replaced
    (`ExecutableGraph.with_changes`): a node keeps its signature if it is the same node and every node
    it reads keeps theirs. A sweep's cells so hash an input file once, not once per cell."""
    kept: dict[str, str] = {}
    for node_id in part.order:
        graph_node = part.nodes[node_id]
        if (
            node_id in signatures
            and whole.nodes.get(node_id) is graph_node
            and all(link.source in kept for link in graph_node.links.values())
        ):
            kept[node_id] = signatures[node_id]
    return kept
