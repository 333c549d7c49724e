"""Throughput on 1 and 2 Ray workers, and what cache-aware routing saves on repeated prompts.

    python benchmarks/scale.py [--prompts 12] [--steps 20] [--size 256] [--workers 1,2] [--gpu]

Runs graphs/depth2img.json (embedded tiny model) over `--prompts` seeds through the Ray executor,
as `depthgraph batch --executor ray` does: once per worker count, on a private local Ray cluster.
Each worker is one CPU slot (one torch thread), or one GPU with `--gpu`. Every worker first runs one
prompt of its own so model loading is not timed. Then, for each worker count:

- cold: the seeds, all new to the workers: prompts per second;
- repeated, routed: the same seeds again; each should go to the worker that holds it and be served
  from its cache;
- repeated, least loaded: the same again on fresh caches after one cold pass, with routing told to
  ignore what workers hold (seeds land on a worker without them about half the time with 2 workers).

Prints the figures and the ratios: 2 workers over 1 (target >= 1.7 where the work is compute-bound)
and cold over repeated-routed time per prompt (target >= 5).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from depthgraph.engine.app.config import Cluster, Settings
from depthgraph.engine.app.engine import Engine
from depthgraph.engine.app.jobs import Job
from depthgraph.engine.cluster.ray_backend import RayBackend, import_ray
from depthgraph.engine.core.graph import ExecutableGraph
from depthgraph.engine.formats.graph_file import load_graph

ROOT = Path(__file__).resolve().parent.parent


def prompts(count: int, steps: int, size: int, first_seed: int) -> list[dict[str, Any]]:
    base = json.loads(json.dumps(load_graph(ROOT / "graphs" / "depth2img.json").prompt))
    base["8"]["inputs"]["steps"] = steps
    base["3"] = {
        "class_type": "ImageScale",
        "inputs": {
            "image": ["2", 0],
            "upscale_method": "bicubic",
            "width": size,
            "height": size,
            "crop": "center",
        },
    }
    made = []
    for seed in range(first_seed, first_seed + count):
        prompt = json.loads(json.dumps(base))
        prompt["8"]["inputs"]["seed"] = seed
        made.append(prompt)
    return made


def run_all(backend: RayBackend, graphs: list[tuple[dict[str, Any], ExecutableGraph]], tag: str) -> float:
    """Run every prompt, `backend.concurrency` at a time; return the wall time in seconds."""
    import threading

    pending = list(enumerate(graphs))
    lock = threading.Lock()
    failures: list[str] = []

    def take() -> None:
        while True:
            with lock:
                if not pending:
                    return
                index, (prompt, graph) = pending.pop(0)
            outcome = backend.run(
                Job(f"{tag}-{index}-{time.monotonic_ns()}", prompt, previews=False), graph, lambda event: None
            )
            if outcome.status != "success":
                failures.append(f"{index}: {outcome.status} {outcome.error}")

    started = time.perf_counter()
    threads = [threading.Thread(target=take) for _ in range(backend.concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise SystemExit(f"{tag}: prompts failed: {failures}")
    return time.perf_counter() - started


def measure(workers: int, args: argparse.Namespace, engine: Engine, settings: Settings) -> dict[str, float]:
    cluster = Cluster("ray", workers=workers)
    backend = RayBackend(settings, engine.files, cluster, prefix=f"scale{workers}")
    try:

        def validated(batch: list[dict[str, Any]]) -> list[tuple[dict[str, Any], ExecutableGraph]]:
            graphs = []
            for prompt in batch:
                graph = engine.validate(prompt).graph
                assert graph is not None
                graphs.append((prompt, graph))
            return graphs

        # Warm-up: one prompt per worker (models load, kernels warm), with seeds not used below.
        warm = validated(prompts(workers, args.steps, args.size, 10_000))
        run_all(backend, warm, "warm")
        backend.free(cache=True, models=False)
        work = validated(prompts(args.prompts, args.steps, args.size, 1))
        cold = run_all(backend, work, "cold")
        routed = run_all(backend, work, "routed")
        backend.free(cache=True, models=False)
        run_all(backend, work, "cold-again")
        backend.router.use_cache = False
        unrouted = run_all(backend, work, "unrouted")
        return {"cold": cold, "routed": routed, "unrouted": unrouted}
    finally:
        backend.close()
        for name in list(backend.actors):  # the benchmark's workers end with it
            backend.ray.kill(backend.actors[name], no_restart=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", type=int, default=12)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--workers", default="1,2", help="worker counts to compare, e.g. 1,2 or 1,2,4")
    parser.add_argument("--gpu", action="store_true", help="one worker per GPU (needs a CUDA machine)")
    args = parser.parse_args()
    counts = [int(part) for part in args.workers.split(",")]
    ray = import_ray()
    ray.init(
        include_dashboard=False,
        logging_level="ERROR",
        log_to_driver=False,
        num_cpus=None if args.gpu else max(counts),
    )
    device = "cuda" if args.gpu else "cpu"
    print(
        f"depth2img.json, tiny model, {args.size}², {args.steps} steps, {args.prompts} prompts, "
        f"workers on {device} ({'one GPU' if args.gpu else 'one CPU thread'} each)"
    )
    print(f"{'workers':>7} {'cold p/s':>9} {'routed repeat p/s':>18} {'least-loaded repeat p/s':>24}")
    figures: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        workspace = Path(folder)
        shutil.copytree(ROOT / "input", workspace / "input")
        settings = Settings.under(workspace, device=device)
        engine = Engine(settings)
        for workers in counts:
            figures[workers] = measure(workers, args, engine, settings)
            rates = {name: args.prompts / value for name, value in figures[workers].items()}
            print(f"{workers:>7} {rates['cold']:>9.2f} {rates['routed']:>18.2f} {rates['unrouted']:>24.2f}")
    ray.shutdown()
    base = figures[counts[0]]["cold"]
    for workers in counts[1:]:
        ratio = base / figures[workers]["cold"]
        print(f"throughput, {workers} workers over {counts[0]}: {ratio:.2f}× (target >= 1.7)")
    for workers in counts:
        seconds = figures[workers]
        routed, unrouted = seconds["cold"] / seconds["routed"], seconds["cold"] / seconds["unrouted"]
        print(
            f"{workers} worker(s): repeated prompts {routed:.1f}× faster than cold with routing "
            f"(target >= 5), {unrouted:.1f}× by least load alone"
        )


if __name__ == "__main__":
    main()
