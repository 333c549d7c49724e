"""Engine overhead per node: validation + execution of chains of trivial nodes, cold and fully cached.

    python benchmarks/engine_overhead.py [--lengths 100 1000 10000 100000] [--repeats 3]

Each chain is `Number -> Add -> Add -> ... -> Show` (a torch-free test node pack), so the figures are
the engine's own cost: validation (structure, coercion, cycle check), signatures, cache look-ups,
scheduling and events. "cold" runs on an empty cache; "cached" runs the same prompt again, which
executes nothing. Target on a 2-core machine: <= 20 us/node cold, <= 5 us/node cached, linear growth.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from depthgraph.engine.core.cache import ResultCache
from depthgraph.engine.core.executor import Executor
from depthgraph.engine.core.files import FileStore
from depthgraph.engine.core.validation import validate

from tests.engine import node_pack


def chain(length: int) -> dict[str, Any]:
    prompt: dict[str, Any] = {"0": {"class_type": "Number", "inputs": {"value": 0}}}
    for index in range(1, length):
        prompt[str(index)] = {"class_type": "Add", "inputs": {"a": [str(index - 1), 0], "b": 1}}
    prompt["out"] = {"class_type": "Show", "inputs": {"value": [str(length - 1), 0]}}
    return prompt


def timed_run(executor: Executor, prompt: dict[str, Any], files: FileStore) -> tuple[float, float, int]:
    registry = node_pack.make_registry()
    started = time.perf_counter()
    validation = validate(prompt, registry, files)
    validated = time.perf_counter()
    assert validation.graph is not None
    result = executor.run(validation.graph, on_event=lambda event: None)
    finished = time.perf_counter()
    assert result.status == "success", result.error
    return validated - started, finished - started, len(result.executed)


def per_node(samples: list[float], nodes: int) -> float:
    return min(samples) / nodes * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lengths", type=int, nargs="+", default=[100, 1_000, 10_000, 100_000])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    files = FileStore(Path("input"), Path("output"), Path("temp"))
    print(f"{'nodes':>8} {'cold us/node':>13} {'(validate)':>11} {'cached us/node':>15} {'(validate)':>11}")
    for length in args.lengths:
        prompt = chain(length)
        nodes = length + 1
        cold, cold_validation, cached, cached_validation = [], [], [], []
        for _ in range(args.repeats):
            executor = Executor(ResultCache(), files)
            gc.collect()
            validation_seconds, seconds, executed = timed_run(executor, prompt, files)
            assert executed == nodes
            cold.append(seconds)
            cold_validation.append(validation_seconds)
            validation_seconds, seconds, executed = timed_run(executor, prompt, files)
            assert executed == 0
            cached.append(seconds)
            cached_validation.append(validation_seconds)

        print(
            f"{nodes:>8} {per_node(cold, nodes):>13.2f} {per_node(cold_validation, nodes):>11.2f} "
            f"{per_node(cached, nodes):>15.2f} {per_node(cached_validation, nodes):>11.2f}"
        )


if __name__ == "__main__":
    main()
