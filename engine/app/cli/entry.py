"""The `depthgraph` command: run, validate and inspect graphs without a browser.

Exit codes: 0 done, 1 the graph is invalid or a node failed, 2 bad arguments, 130 interrupted,
141 the reader of stdout went away (`depthgraph nodes | head`; 128 + SIGPIPE, as for other tools)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from ...formats.graph_file import GraphFileError
from ...models.devices import DEVICE_CHOICES
from ...models.fetch import DEFAULT_REPO
from ..config import EXECUTORS, FRONTENDS, ConfigError, Settings, allowed, load_settings, parse_bytes
from ..example_inputs import provide_example_inputs
from ..overrides import (
    UsageError,
    apply_overrides,
    check_override_inputs,
    store_typed_overrides,
)
from .common import EXIT_BROKEN_PIPE, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, build_engine, load_document
from .models import models_command
from .nodes import nodes_command
from .run import run_command, validate_command
from .serve import serve_command
from .store import store_command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="depthgraph",
        description="Node-graph engine for Stable Diffusion 2 depth-to-image.",
    )
    parser.add_argument("--config", type=Path, help="YAML settings file (default: ./depthgraph.yaml)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def folders(command: argparse.ArgumentParser) -> None:
        command.add_argument("--models-dir", type=Path, help="where model folders and checkpoints are")
        command.add_argument("--input-dir", type=Path, help="where input images are (default: input/)")
        command.add_argument("--output-dir", type=Path, help="where results are saved (default: output/)")
        command.add_argument(
            "--set",
            dest="overrides",
            action="append",
            default=[],
            metavar="NODE_ID.INPUT=VALUE",
            help="change one constant input before running (repeatable)",
        )

    def speed(command: argparse.ArgumentParser) -> None:
        command.add_argument(
            "--compile",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="torch.compile the UNet and VAE decoder on CUDA; pays off over many images, so on by "
            "default for serve and off for run",
        )
        command.add_argument(
            "--low-memory",
            action="store_true",
            help="keep only the model part in use on the GPU and tile the VAE (slower, fits small GPUs)",
        )
        command.add_argument(
            "--vram-budget", metavar="SIZE", help="GPU memory for weights and cached results, e.g. 10GiB"
        )

    def cluster(command: argparse.ArgumentParser) -> None:
        command.add_argument(
            "--executor",
            choices=EXECUTORS,
            help="where prompts run: local (this process, the default) or ray (one worker per GPU)",
        )
        command.add_argument(
            "--ray-address",
            metavar="ADDRESS",
            help="local (start Ray here, the default), auto (the cluster `ray start` made) or ray://HOST:10001",
        )
        command.add_argument(
            "--workers", type=int, metavar="N", help="Ray workers (default: one per GPU, or 1)"
        )
        command.add_argument(
            "--max-attempts", type=int, metavar="K", help="runs of a prompt whose worker died (default 3)"
        )

    run = commands.add_parser("run", help="run a graph file headlessly")
    run.add_argument("graph", type=Path, help="graph file (depthgraph or ComfyUI API form)")
    folders(run)
    run.add_argument("--device", choices=DEVICE_CHOICES, help="where to compute (default: auto)")
    speed(run)
    run.add_argument("--json", action="store_true", help="print one JSON object with the results")
    run.add_argument("--traceback", action="store_true", help="show the full traceback of a failing node")
    run.add_argument(
        "--quiet",
        "-q",
        action="store_true",
        help="no progress bar or summary: only the saved files and errors",
    )

    check = commands.add_parser("validate", help="check a graph file and list every problem")
    check.add_argument("graph", type=Path)
    folders(check)
    check.add_argument("--json", action="store_true", help="print the problems as JSON")

    nodes = commands.add_parser("nodes", help="list the available nodes, or show one in full")
    nodes.add_argument(
        "name", nargs="?", help="a node type (or its display name): its inputs with types, defaults, ranges"
    )
    nodes.add_argument("--json", action="store_true", help="the schema in the shape of /object_info")

    serve = commands.add_parser("serve", help="run the HTTP/WebSocket server (ComfyUI's API)")
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)"
    )
    serve.add_argument("--port", type=int, default=8188)
    serve.add_argument(
        "--allow-origin",
        dest="allow_origins",
        action="append",
        default=[],
        metavar="URL",
        help="let web pages from this origin use the server (repeatable), e.g. http://localhost:5173; "
        "'*' lets every page on the web drive it: dangerous",
    )
    serve.add_argument(
        "--allow-host",
        dest="allow_hosts",
        action="append",
        default=[],
        metavar="NAME",
        help="answer requests sent to this host name besides IP addresses and localhost (repeatable)",
    )
    serve.add_argument(
        "--frontend",
        choices=FRONTENDS,
        help="the editor at /: depthgraph (default, built in) or comfyui, ComfyUI's official front end "
        "(pip install 'depthgraph[comfyui]'), with depthgraph's editor at /depthgraph/",
    )
    serve.add_argument("--models-dir", type=Path)
    serve.add_argument("--input-dir", type=Path)
    serve.add_argument("--output-dir", type=Path)
    serve.add_argument(
        "--data-dir",
        type=Path,
        help="where the queue and history are kept (default: data/ in the home folder)",
    )
    serve.add_argument("--device", choices=DEVICE_CHOICES)
    speed(serve)
    cluster(serve)

    batch = commands.add_parser("batch", help="run one graph over a folder of images or a list of values")
    batch.add_argument("graph", type=Path, help="graph file (depthgraph or ComfyUI API form)")
    batch.add_argument(
        "--over",
        required=True,
        metavar="NODE_ID.INPUT=FOLDER_OR_LIST",
        help="the input that changes: a folder of images (1.image=frames/) or a list (8.seed=1..100, 1,5,9)",
    )
    folders(batch)
    batch.add_argument("--device", choices=DEVICE_CHOICES, help="where to compute (default: auto)")
    batch.add_argument("--json", action="store_true", help="print one JSON object with every result")
    speed(batch)
    cluster(batch)

    store = commands.add_parser("store", help="check or repair the server's queue and history")
    store_actions = store.add_subparsers(dest="action", required=True, metavar="ACTION")
    store_actions.add_parser("check", help="say whether the store can be used and what it holds")
    store_actions.add_parser(
        "repair",
        help="move a damaged store aside (it is kept) and start a new one with every prompt still readable",
    )
    for action in store_actions.choices.values():
        action.add_argument(
            "--data-dir",
            type=Path,
            help="where the queue and history are (default: data/ in the home folder)",
        )

    models = commands.add_parser("models", help="list, download, import or convert depth models")
    models.add_argument("--models-dir", type=Path, help="the models folder (default: models/)")
    actions = models.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("list", help="the models the loader can pick")
    fetch = actions.add_parser("fetch", help="download a model in diffusers layout (needs internet)")
    fetch.add_argument(
        "repo",
        nargs="?",
        default=DEFAULT_REPO,
        help=f"Hugging Face repo (default {DEFAULT_REPO}), or a local folder or file to import",
    )
    fetch.add_argument("--revision", help="a branch, tag or commit of the repo")
    bring = actions.add_parser(
        "import",
        help="check a model folder or checkpoint you have and copy (or link) it into the models folder",
    )
    bring.add_argument("path", type=Path, help="a diffusers model folder, or a .ckpt/.safetensors file")
    bring.add_argument("--name", help="the name to give it in the models folder (default: its own)")
    bring.add_argument(
        "--link", action="store_true", help="link to it instead of copying (it must stay there)"
    )
    convert = actions.add_parser("convert", help="write a single-file checkpoint as a diffusers folder")
    convert.add_argument("checkpoint", type=Path, help="512-depth-ema.ckpt or .safetensors")
    convert.add_argument("folder", type=Path, help="the new model folder to write")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = _command(parser, args)
        sys.stdout.flush()  # so that a closed pipe shows here, not as a traceback at interpreter exit
    except BrokenPipeError:
        # Python's documented recipe: point stdout at devnull so the final flush at exit is quiet too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:  # a second Ctrl+C, or one outside a run
        print("\ndepthgraph: stopped", file=sys.stderr)
        return EXIT_INTERRUPTED
    return code


def _command(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    try:
        settings = _settings(args)
        if args.command in ("run", "validate", "batch", "serve", "nodes"):
            _provide_example_inputs(settings.input_dir)
        if args.command == "nodes":
            return nodes_command(args, build_engine(settings, settings.file_store()))
        if args.command == "models":
            return models_command(args, settings)
        if args.command == "serve":
            return serve_command(args, settings)
        if args.command == "store":
            return store_command(args, settings)
        if args.command == "batch":
            from .batch import run_batch_command

            return run_batch_command(args, settings)
        document = load_document(args.graph, settings)
        files = apply_overrides(document, args.overrides, settings)
        engine = build_engine(settings, files)
        check_override_inputs(document, args.overrides, engine)
        validation = engine.validate(document.prompt)
        store_typed_overrides(document, args.overrides, validation)
        if args.command == "validate":
            return validate_command(args, document, validation)
        return run_command(args, document, engine, validation)
    except UsageError as error:
        _fail(parser, str(error))
    except GraphFileError as error:
        if getattr(args, "json", False):
            print(json.dumps({"status": "invalid", "valid": False, "errors": [{"message": str(error)}]}))
        print(f"depthgraph: {error}", file=sys.stderr)
        return EXIT_FAILED


def _provide_example_inputs(input_dir: Path) -> None:
    """A first run makes the input folder, with the example inputs the library graphs load."""
    try:
        copied = provide_example_inputs(input_dir)
    except OSError as error:  # a folder that cannot be made is reported where a file is read or saved
        print(f"depthgraph: warning: could not make the input folder {input_dir}: {error}", file=sys.stderr)
        return
    if copied:
        print(
            f"depthgraph: made the input folder {input_dir}, with the {len(copied)} example inputs the "
            "library graphs load",
            file=sys.stderr,
        )


def _fail(parser: argparse.ArgumentParser, message: str) -> NoReturn:
    parser.exit(EXIT_USAGE, f"depthgraph: error: {message}\n")


def _settings(args: argparse.Namespace) -> Settings:
    try:
        settings = load_settings(args.config)
    except ConfigError as error:
        raise UsageError(str(error)) from None
    for name in ("models_dir", "input_dir", "output_dir", "data_dir", "device", "frontend"):
        value = getattr(args, name, None)
        if value is not None:
            setattr(settings, name, value)
    for key in ("allow_origins", "allow_hosts"):
        try:
            setattr(settings, key, [*getattr(settings, key), *allowed(key, getattr(args, key, None) or [])])
        except ValueError as error:
            raise UsageError(f"--allow-origin: {error}") from None
    changes: dict[str, Any] = {}
    choice = getattr(args, "compile", None)
    if choice is not None:
        changes["compile"] = "on" if choice else "off"
    elif args.command == "run" and settings.acceleration.compile == "auto":
        changes["compile"] = "off"  # one run: compiling would cost more than it saves
    if getattr(args, "low_memory", False):
        changes["low_memory"] = True
    if getattr(args, "vram_budget", None) is not None:
        try:
            changes["vram_budget"] = parse_bytes(args.vram_budget, "--vram-budget")
        except ConfigError as error:
            raise UsageError(str(error)) from None
    settings.acceleration = dataclasses.replace(settings.acceleration, **changes)
    chosen = {
        name: getattr(args, name)
        for name in ("executor", "ray_address", "workers", "max_attempts")
        if getattr(args, name, None) is not None
    }
    try:
        settings.cluster = dataclasses.replace(settings.cluster, **chosen)
    except ConfigError as error:
        raise UsageError(f"--{str(error).replace('_', '-')}") from None
    return settings


if __name__ == "__main__":
    sys.exit(main())
