"""The result cache keeps results within a byte budget per device, dropping the least recently used."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from depthgraph.engine.core.cache import ResultCache
from depthgraph.engine.core.executor import Executor
from depthgraph.engine.core.files import FileStore
from depthgraph.engine.core.sizing import measure
from depthgraph.engine.core.validation import validate

from tests.engine import node_pack

KIB = 1024


def test_entries_past_the_budget_evict_the_least_recently_used() -> None:
    cache = ResultCache({"cpu": 10 * KIB})
    for name in ("a", "b", "c"):
        assert cache.put(name, (bytes(3 * KIB),))
    assert cache.get("a") is not None  # "a" is now the most recently used
    cache.put("d", (bytes(3 * KIB),))
    assert "b" not in cache
    assert all(name in cache for name in ("a", "c", "d"))
    assert cache.usage()["cpu"] <= 10 * KIB
    assert cache.evictions == 1


def test_a_result_larger_than_the_whole_budget_is_not_kept() -> None:
    cache = ResultCache({"cpu": 4 * KIB})
    cache.put("small", (bytes(KIB),))
    assert not cache.put("huge", (bytes(8 * KIB),))
    assert "huge" not in cache and "small" in cache


def test_replacing_an_entry_does_not_count_it_twice() -> None:
    cache = ResultCache({"cpu": 10 * KIB})
    cache.put("a", (bytes(4 * KIB),))
    cache.put("a", (bytes(4 * KIB),))
    assert len(cache) == 1
    assert 4 * KIB <= cache.usage()["cpu"] < 5 * KIB
    cache.discard("a")
    assert cache.usage() == {}


def test_sizes_count_nested_values_and_arrays() -> None:
    numpy = pytest.importorskip("numpy")
    sizes = measure(({"samples": numpy.zeros((4, 256), dtype=numpy.float32)}, [bytes(100)]))
    assert sizes["cpu"] >= 4 * 256 * 4 + 100


@dataclass(frozen=True)
class Encoded:
    """A typed socket value, as a node pack might pass one (the built-in LATENT is one)."""

    samples: Any
    parts: Any = None
    shared: Any = field(default=None, compare=False)


def test_sizes_look_into_dataclass_values_and_their_nested_parts() -> None:
    numpy = pytest.importorskip("numpy")
    inner = Encoded(numpy.zeros(1000, dtype=numpy.uint8))
    sizes = measure((Encoded(numpy.zeros(2000, dtype=numpy.uint8), parts={"inner": inner}),))
    assert 3000 <= sizes["cpu"] < 3000 + KIB


def test_a_dataclass_field_left_out_of_comparison_is_shared_and_not_counted() -> None:
    """What a model handle's manager is: the handle refers to it, the cached result does not own it."""
    held = Encoded(bytes(10), shared=[bytes(100 * KIB)])
    assert measure((held,))["cpu"] < KIB


def test_a_value_that_holds_itself_is_measured_once() -> None:
    loop: list[Any] = [bytes(KIB)]
    loop.append(Encoded(loop))
    assert KIB <= measure((loop, loop))["cpu"] < 2 * KIB


def test_tensors_count_on_their_device_and_shared_storage_once() -> None:
    torch = pytest.importorskip("torch")
    image = torch.zeros(1, 64, 64, 3)
    sizes = measure((image, image[:, :32], {"again": image}))
    assert sizes == {"cpu": 64 * 64 * 3 * 4}
    meta = torch.empty(1000, device="meta")
    assert measure((meta,)) == {"meta": 4000}
    in_dataclass = measure((Encoded(meta, parts=Encoded(meta[:10])),))
    assert in_dataclass["meta"] == 4000  # found inside, and once


def test_each_device_has_its_own_budget() -> None:
    torch = pytest.importorskip("torch")
    cache = ResultCache({"cpu": 10 * KIB, "meta": 8 * KIB})
    cache.put("on-meta", (torch.empty(1536, device="meta"),))  # 6 KiB on "meta"
    cache.put("on-cpu", (bytes(6 * KIB),))
    cache.put("more-cpu", (bytes(3 * KIB),))
    # CPU is at 9 KiB of 10: nothing evicted, and the meta entry is untouched by CPU pressure.
    assert all(key in cache for key in ("on-meta", "on-cpu", "more-cpu"))
    cache.put("meta-2", (torch.empty(1024, device="meta"),))  # 4 KiB more on meta: over 8 KiB
    assert "on-meta" not in cache
    assert "on-cpu" in cache and "more-cpu" in cache


def test_a_small_budget_reruns_evicted_nodes_but_still_finishes(files: FileStore) -> None:
    registry = node_pack.make_registry()
    prompt = {
        "1": {"class_type": "Blob", "inputs": {"size": 6 * KIB, "tag": 1}},
        "2": {"class_type": "Blob", "inputs": {"size": 6 * KIB, "tag": 2}},
        "3": {"class_type": "Show", "inputs": {"value": ["1", 0]}},
        "4": {"class_type": "Show", "inputs": {"value": ["2", 0]}},
    }
    executor = Executor(ResultCache({"cpu": 10 * KIB}), files)
    graph = validate(prompt, registry, files).graph
    assert graph is not None
    first = executor.run(graph)
    assert first.status == "success"
    assert node_pack.CALLS["Blob"] == 2
    second = executor.run(graph)
    # Only one 6 KiB blob fits in 10 KiB; but every output node's small result is still cached.
    assert second.status == "success" and second.executed == []
    assert executor.cache.usage()["cpu"] <= 10 * KIB
