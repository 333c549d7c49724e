"""How many bytes a node's result holds, and on which device.

Tensors count on the device they live on (their whole storage, once per storage); everything else
counts on the CPU. torch is never imported here: if it is not loaded, no tensor can exist.

Containers are looked into: tuples, lists, sets, mappings, and dataclass instances (a node's typed
value, such as a latent with its parts). A dataclass field left out of comparison
(`field(compare=False)`) refers to something the value does not own, such as a model handle's
manager, and is not counted.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator, Mapping
from typing import Any

# Values that hold no other values: counted by their own size, without further checks.
_LEAVES = frozenset({int, float, bool, str, bytes, type(None)})


def measure(value: Any) -> dict[str, int]:
    """Bytes held by `value` per device type ("cpu", "cuda", "mps")."""
    torch = sys.modules.get("torch")
    tensor_type = getattr(torch, "Tensor", None) if torch is not None else None
    totals: dict[str, int] = {}
    seen_storages: set[tuple[str, int]] = set()
    seen_containers: set[int] = set()  # each container once: a value may hold one twice, or itself
    stack = [value]
    while stack:
        item = stack.pop()
        if type(item) in _LEAVES:
            totals["cpu"] = totals.get("cpu", 0) + sys.getsizeof(item)
        elif tensor_type is not None and isinstance(item, tensor_type):
            device = item.device.type
            storage = item.untyped_storage()
            key = (device, storage.data_ptr())
            if key not in seen_storages:
                seen_storages.add(key)
                totals[device] = totals.get(device, 0) + storage.nbytes()
        elif id(item) in seen_containers:
            continue  # a container met before: counted once
        elif isinstance(item, tuple | list | set | frozenset):
            seen_containers.add(id(item))
            stack.extend(item)
        elif isinstance(item, Mapping):
            seen_containers.add(id(item))
            stack.extend(item.values())
        elif hasattr(type(item), "__dataclass_fields__"):  # a dataclass instance (a class is not one)
            seen_containers.add(id(item))
            stack.extend(_owned_fields(item))
        elif hasattr(item, "nbytes") and isinstance(item.nbytes, int):  # numpy arrays
            totals["cpu"] = totals.get("cpu", 0) + item.nbytes
        else:
            totals["cpu"] = totals.get("cpu", 0) + sys.getsizeof(item)
    return totals


def _owned_fields(instance: Any) -> Iterator[Any]:
    """The values of a dataclass instance's fields, but those left out of its comparison."""
    for field in dataclasses.fields(instance):
        if field.compare:
            yield getattr(instance, field.name)
