"""`depthgraph run` and `depthgraph validate`: check a graph, run it with a progress bar, list its files."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

from ...core.executor import RunResult
from ...core.files import FileStore, saved_files
from ...core.validation import Validation
from ...formats.graph_file import GraphDocument
from ..engine import Engine
from .common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, shown_path
from .progress import RunProgress


def validate_command(args: argparse.Namespace, document: GraphDocument, validation: Validation) -> int:
    if args.json:
        print(json.dumps(_validation_json(validation), indent=2))
    elif validation.ok:
        assert validation.graph is not None
        targets = ", ".join(
            f"{node_id} ({validation.graph.nodes[node_id].class_type})"
            for node_id in validation.graph.targets
        )
        print(f"{args.graph}: valid; {len(validation.graph.order)} node(s) to run, outputs: {targets}")
    else:
        _print_issues(args.graph, validation)
    return EXIT_OK if validation.ok else EXIT_FAILED


def _validation_json(validation: Validation) -> dict[str, Any]:
    return {
        "valid": validation.ok,
        "errors": [
            {
                "node_id": issue.node_id,
                "class_type": issue.class_type,
                "input_name": issue.input_name,
                "code": issue.code.value,
                "message": issue.message,
            }
            for issue in validation.issues
        ],
    }


def _print_issues(graph: Path, validation: Validation) -> None:
    print(f"depthgraph: {graph} is not valid ({len(validation.issues)} problem(s)):", file=sys.stderr)
    for issue in validation.issues:
        print(f"  - {issue}", file=sys.stderr)


def run_command(
    args: argparse.Namespace, document: GraphDocument, engine: Engine, validation: Validation
) -> int:
    if validation.graph is None:
        if args.json:
            print(json.dumps({"status": "invalid", **_validation_json(validation)}, indent=2))
        _print_issues(args.graph, validation)
        return EXIT_FAILED
    graph = validation.graph
    progress = None
    if not args.quiet:
        titles = {
            node_id: node.title or node.definition.display_name for node_id, node in graph.nodes.items()
        }
        nodes = graph.nodes.items()
        samplers = frozenset(
            node_id for node_id, node in nodes if node.definition.category.startswith("sampling")
        )
        outer = frozenset(node_id for node_id, node in nodes if node.definition.lazy_inputs)
        progress = RunProgress(titles, samplers, outer, nodes=len(graph.order))

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        print("\ndepthgraph: interrupting (Ctrl+C again to quit at once)", file=sys.stderr)
        engine.interrupt()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        listener = progress.update if progress is not None else None
        result = engine.executor.run(graph, on_event=listener, workflow=document.workflow())
    finally:
        signal.signal(signal.SIGINT, previous)
        if progress is not None:
            progress.close()
    for warning in result.warnings:
        print(
            f"depthgraph: warning: node {warning.node_id} ({warning.class_type}): {warning.text}",
            file=sys.stderr,
        )
    if args.json:
        print(json.dumps(_result_json(result, engine.files), indent=2))
    if result.status == "interrupted":
        ran = f"{len(result.executed)} of {len(graph.order)} node(s) ran"
        print(f"depthgraph: interrupted ({ran}); images saved before it are kept", file=sys.stderr)
        return EXIT_INTERRUPTED
    if result.error is not None:
        error = result.error
        print(
            f"depthgraph: node {error.node_id} ({error.class_type}) failed: "
            f"{error.exception_type}: {error.exception_message}",
            file=sys.stderr,
        )
        if args.traceback:
            print("".join(error.traceback), file=sys.stderr, end="")
        return EXIT_FAILED
    if not args.json:
        for node_id, by_key in _saved_paths(result, engine.files).items():
            for paths in by_key.values():
                for path in paths:
                    print(f"{node_id}: {path}")
        if args.quiet:
            return EXIT_OK
        print(
            f"done in {result.seconds:.2f} s: {len(result.executed)} node(s) ran, "
            f"{len(result.cached)} cached",
            file=sys.stderr,
        )
    return EXIT_OK


def _saved_paths(result: RunResult, files: FileStore) -> dict[str, dict[str, list[str]]]:
    """The paths of every file each node saved (images, depth maps, ...), by the UI key listing them."""
    paths: dict[str, dict[str, list[str]]] = {}
    for node_id, ui in result.outputs.items():
        for saved in saved_files(ui):
            shown = shown_path(files.path_of(saved))
            paths.setdefault(node_id, {}).setdefault(saved.key, []).append(shown)
    return paths


def _result_json(result: RunResult, files: FileStore) -> dict[str, Any]:
    # What each node showed, with its lists of saved files ("images", "depth_files") as paths.
    paths = _saved_paths(result, files)
    outputs = {node_id: {**ui, **paths.get(node_id, {})} for node_id, ui in result.outputs.items()}
    payload: dict[str, Any] = {
        "status": result.status,
        "prompt_id": result.prompt_id,
        "outputs": outputs,
        "executed": result.executed,
        "cached": result.cached,
        "warnings": [{"node_id": item.node_id, "message": item.text} for item in result.warnings],
        "seconds": round(result.seconds, 4),
    }
    if result.error is not None:
        payload["error"] = {
            "node_id": result.error.node_id,
            "node_type": result.error.class_type,
            "exception_type": result.error.exception_type,
            "exception_message": result.error.exception_message,
        }
    return payload
