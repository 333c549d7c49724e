"""The order a graph's nodes run in: each after its sources, otherwise as the file lists them; or,
for a graph that loops back on itself, one of its loops to report."""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence

from .graph import GraphNode


def run_order(needed: Sequence[str], nodes: Mapping[str, GraphNode]) -> tuple[list[str], list[str]]:
    """The needed nodes ordered so that each follows its sources (Kahn's algorithm), and no loop; or no
    order and one loop among them, in link order.

    Where links allow, nodes keep the order the file lists them in, which makes runs predictable.
    """
    # Files usually list sources before readers; then the file order is the answer.
    needed_set = set(needed)
    in_file_order = [node_id for node_id in nodes if node_id in needed_set]
    seen: set[str] = set()
    for node_id in in_file_order:
        for link in nodes[node_id].links.values():
            if link.source not in seen:
                break
        else:
            seen.add(node_id)
            continue
        break
    else:
        return in_file_order, []
    position = {node_id: index for index, node_id in enumerate(nodes)}
    waiting = dict.fromkeys(needed, 0)
    readers: dict[str, list[str]] = {node_id: [] for node_id in needed}
    for node_id in needed:
        for link in nodes[node_id].links.values():
            waiting[node_id] += 1
            readers[link.source].append(node_id)
    ready = [(position[node_id], node_id) for node_id, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        node_id = heapq.heappop(ready)[1]
        order.append(node_id)
        for reader in readers[node_id]:
            waiting[reader] -= 1
            if waiting[reader] == 0:
                heapq.heappush(ready, (position[reader], reader))
    if len(order) == len(needed):
        return order, []
    return [], _one_cycle({node_id for node_id in needed if waiting[node_id] > 0}, nodes, position)


def _one_cycle(stuck: set[str], nodes: Mapping[str, GraphNode], position: Mapping[str, int]) -> list[str]:
    """One loop among the nodes Kahn's algorithm could not order, in link order (each node feeds the
    next, the last feeds the first), starting at the one listed first in the file.

    Every stuck node waits on a source that is stuck too: on a loop, or downstream of one. So walking
    back from any of them, always to a stuck source, must come round to a node already walked; the
    nodes since its first visit are a loop. Each node is walked and its links read at most once.
    """
    walked: dict[str, int] = {}  # node id -> its place in `path`
    path: list[str] = []
    node_id = min(stuck, key=position.__getitem__)
    while node_id not in walked:
        walked[node_id] = len(path)
        path.append(node_id)
        node_id = next(link.source for link in nodes[node_id].links.values() if link.source in stuck)
    cycle = path[walked[node_id] :][::-1]  # walked against the links: reversed, it follows them
    first = min(range(len(cycle)), key=lambda index: position[cycle[index]])
    return cycle[first:] + cycle[:first]
