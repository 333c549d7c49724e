"""The `batch` command of the `depthgraph` CLI: the command-line side of `engine.app.batch` (progress
bar, Ctrl+C, summary, exit codes)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import sys
import time

from tqdm import tqdm

from ..backends import make_backend
from ..batch import (
    BatchItem,
    BatchRun,
    parse_over,
    summary,
    sweep_prompts,
    validate_all,
    write_manifest,
)
from ..config import Settings
from ..engine import Engine
from ..jobs import Backend
from ..overrides import UsageError, apply_overrides, check_override_inputs
from .common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, build_engine, load_document


def run_batch_command(args: argparse.Namespace, settings: Settings) -> int:
    """`depthgraph batch`: parse, validate every prompt, run them all, print the summary."""
    document = load_document(args.graph, settings)
    sweep = parse_over(args.over)
    files = apply_overrides(document, args.overrides, settings)
    files = dataclasses.replace(files, extra_inputs={**files.extra_inputs, **sweep.files})
    engine = build_engine(settings, files)
    prompts = sweep_prompts(document.prompt, sweep)  # first: it checks the node is there
    check_override_inputs(document, [*args.overrides, f"{sweep.node_id}.{sweep.input_name}="], engine)
    items = [BatchItem(label, value) for label, value in zip(sweep.labels, sweep.values, strict=True)]
    graphs = validate_all(engine, prompts, items)
    if all(graph is None for graph in graphs):
        print(f"depthgraph: {args.graph} is not valid for any input: {items[0].error}", file=sys.stderr)
        return EXIT_FAILED
    backend = _backend(settings, engine)
    runner = BatchRun(backend, files)
    bar = tqdm(total=len(items), unit="prompt", file=sys.stderr, dynamic_ncols=True, disable=args.json)
    failed = 0

    def advance(item: BatchItem) -> None:
        nonlocal failed
        failed += item.status != "success"
        bar.set_postfix_str(
            f"{item.label} on {item.worker or backend.name}" + (f", {failed} failed" if failed else "")
        )
        bar.update(1)

    previous = signal.signal(signal.SIGINT, lambda signum, frame: runner.stop())
    started = time.perf_counter()
    try:
        runner.run(prompts, items, graphs, advance)
    finally:
        signal.signal(signal.SIGINT, previous)
        bar.close()
        backend.close()
    seconds = time.perf_counter() - started
    manifest = write_manifest(files, str(args.graph), sweep, items)
    if args.json:
        record = json.loads(manifest.read_text(encoding="utf-8"))
        print(json.dumps({**record, "seconds": round(seconds, 3), "manifest": str(manifest)}, indent=2))
    else:
        print(summary(items, seconds), file=sys.stderr)
        print(
            f"results in {files.output_dir}; each input and its outputs are listed in {manifest}",
            file=sys.stderr,
        )
    if runner.stopped.is_set():
        return EXIT_INTERRUPTED
    return EXIT_OK if all(item.status == "success" for item in items) else EXIT_FAILED


def _backend(settings: Settings, engine: Engine) -> Backend:
    try:
        return make_backend(settings, engine)
    except RuntimeError as error:  # the cluster cannot be reached, or Ray is not installed
        raise UsageError(str(error)) from None
