"""The `depthgraph` command: run, validate and inspect graphs without a browser.

Exit codes: 0 done, 1 the graph is invalid or a node failed, 2 bad arguments, 130 interrupted,
141 the reader of stdout went away (`depthgraph nodes | head`; 128 + SIGPIPE, as for other tools).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

from engine.config import EXECUTORS, ConfigError, Settings, allowed, load_settings, parse_bytes
from engine.devices import DEVICE_CHOICES, DeviceError
from engine.events import Event, NodeExecuting, NodesCached, Progress
from engine.files import FileStore, saved_files
from engine.graph_file import GraphDocument, GraphFileError, load_graph
from engine.models.fetch import DEFAULT_REPO, fetch_model
from engine.models.importing import import_model
from engine.models.manager import ModelError, find_models
from engine.models.sd2_depth import convert_checkpoint
from engine.overrides import (
    UsageError,
    apply_overrides,
    check_override_inputs,
    store_typed_overrides,
)
from engine.registry import NodeDefinition
from engine.runtime import Engine
from engine.scheduler import RunResult
from engine.schema import object_info
from engine.validation import Validation

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_BROKEN_PIPE = 0, 1, 2, 130, 141


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

    check = commands.add_parser("validate", help="check a graph file and list every problem")
    check.add_argument("graph", type=Path)
    folders(check)
    check.add_argument("--json", action="store_true", help="print the problems as JSON")

    nodes = commands.add_parser("nodes", help="list the available nodes")
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
        if args.command == "nodes":
            return _nodes(args, build_engine(settings, settings.file_store()))
        if args.command == "models":
            return _models(args, settings)
        if args.command == "serve":
            return _serve(args, settings)
        if args.command == "store":
            return _store(args, settings)
        if args.command == "batch":
            from engine.batch_command import run_batch_command

            return run_batch_command(args, settings)
        document = load_document(args.graph)
        files = apply_overrides(document, args.overrides, settings)
        engine = build_engine(settings, files)
        check_override_inputs(document, args.overrides, engine)
        validation = engine.validate(document.prompt)
        store_typed_overrides(document, args.overrides, validation)
        if args.command == "validate":
            return _validate(args, document, validation)
        return _run(args, document, engine, validation)
    except UsageError as error:
        _fail(parser, str(error))
    except GraphFileError as error:
        if getattr(args, "json", False):
            print(json.dumps({"status": "invalid", "valid": False, "errors": [{"message": str(error)}]}))
        print(f"depthgraph: {error}", file=sys.stderr)
        return EXIT_FAILED


def _fail(parser: argparse.ArgumentParser, message: str) -> NoReturn:
    parser.exit(EXIT_USAGE, f"depthgraph: error: {message}\n")


def _settings(args: argparse.Namespace) -> Settings:
    try:
        settings = load_settings(args.config)
    except ConfigError as error:
        raise UsageError(str(error)) from None
    for name in ("models_dir", "input_dir", "output_dir", "data_dir", "device"):
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


def build_engine(settings: Settings, files: FileStore) -> Engine:
    try:
        engine = Engine(settings, files=files)
    except DeviceError as error:
        raise UsageError(str(error)) from None
    for problem in engine.pack_report.problems:
        print(f"depthgraph: warning: {problem}", file=sys.stderr)
    return engine


def load_document(path: Path) -> GraphDocument:
    if not path.exists():
        raise UsageError(f"graph file {path} does not exist")
    return load_graph(path)


def _validate(args: argparse.Namespace, document: GraphDocument, validation: Validation) -> int:
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


def _run(args: argparse.Namespace, document: GraphDocument, engine: Engine, validation: Validation) -> int:
    if validation.graph is None:
        if args.json:
            print(json.dumps({"status": "invalid", **_validation_json(validation)}, indent=2))
        _print_issues(args.graph, validation)
        return EXIT_FAILED
    progress = _ProgressBar(total=len(validation.graph.order))

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        print("\ndepthgraph: interrupting (Ctrl+C again to quit at once)", file=sys.stderr)
        engine.interrupt()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        result = engine.executor.run(validation.graph, on_event=progress.update, workflow=document.workflow())
    finally:
        signal.signal(signal.SIGINT, previous)
        progress.close()
    for warning in result.warnings:
        print(
            f"depthgraph: warning: node {warning.node_id} ({warning.class_type}): {warning.text}",
            file=sys.stderr,
        )
    if args.json:
        print(json.dumps(_result_json(result, engine.files), indent=2))
    if result.status == "interrupted":
        print("depthgraph: interrupted; finished nodes stay cached for this process", file=sys.stderr)
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
            shown = _shown(files.path_of(saved))
            paths.setdefault(node_id, {}).setdefault(saved.key, []).append(shown)
    return paths


def _shown(path: Path) -> str:
    """A path as the user would type it: relative to the current folder when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


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


class _ProgressBar:
    """A tqdm bar on stderr over the nodes to run, with the running node's steps beside it."""

    def __init__(self, total: int) -> None:
        from tqdm import tqdm

        self._bar = tqdm(total=total, unit="node", file=sys.stderr, dynamic_ncols=True, leave=False)
        self._current: str | None = None
        self._counted: set[str] = set()  # a comparison grid meets its chain's nodes once per cell

    def _count(self, node_ids: Sequence[str]) -> None:
        fresh = [node_id for node_id in node_ids if node_id not in self._counted]
        self._counted.update(fresh)
        self._bar.update(len(fresh))

    def update(self, event: Event) -> None:
        if isinstance(event, NodesCached):
            self._count(event.node_ids)
        elif isinstance(event, NodeExecuting):
            if self._current is not None:
                self._count([self._current])
            self._current = event.node_id
            if event.node_id is not None:
                self._bar.set_postfix_str(f"node {event.node_id}", refresh=False)
        elif isinstance(event, Progress):
            self._bar.set_postfix_str(f"node {event.node_id} step {event.value}/{event.max}")

    def close(self) -> None:
        self._bar.close()


def describe_nodes(definitions: Sequence[NodeDefinition]) -> str:
    """The node list as text, grouped by category."""
    lines: list[str] = []
    for category in sorted({definition.category for definition in definitions}):
        lines.append(category)
        for definition in sorted(definitions, key=lambda d: d.class_name):
            if definition.category != category:
                continue
            lines.append(f"  {definition.class_name} ({definition.display_name}): {definition.description}")
            inputs = ", ".join(
                f"{spec.name}: {spec.type}" + ("" if spec.required else "?") for spec in definition.inputs
            )
            outputs = ", ".join(output.label for output in definition.outputs) or "-"
            lines.append(textwrap.indent(f"in  {inputs or '-'}\nout {outputs}", "      "))
    return "\n".join(lines)


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from importlib.metadata import entry_points

    servers = [entry for entry in entry_points(group="depthgraph.server") if entry.name == "serve"]
    if not servers:
        raise UsageError("the server is not installed here (run `pip install -e .` in depthgraph's folder)")
    if not 0 < args.port < 65536:
        raise UsageError(f"--port {args.port} is not a port number (1-65535)")
    try:
        code: int = servers[0].load()(settings, host=args.host, port=args.port)
    except OSError as error:
        print(f"depthgraph: cannot serve on {args.host}:{args.port}: {error.strerror}", file=sys.stderr)
        return EXIT_FAILED
    return code


def _store(args: argparse.Namespace, settings: Settings) -> int:
    from engine.store import PromptStore, StoreError, store_path
    from engine.store_repair import repair_store

    path = store_path(settings.data_dir)
    if not (path.exists() or path.is_symlink()):
        print(f"there is no store at {path} yet; the server makes one when it starts")
        return EXIT_OK
    try:
        if args.action == "check":
            store = PromptStore(path)
            try:
                counts = store.counts()
            finally:
                store.close()
            held = "".join(f", {count} {status}" for status, count in sorted(counts.items()))
            print(f"{path} is sound; it holds {sum(counts.values())} prompt(s){held}")
            return EXIT_OK
        repair = repair_store(path)
    except StoreError as error:
        print(f"depthgraph: {error}", file=sys.stderr)
        return EXIT_FAILED
    if repair.problem is None:
        print(f"{path} is sound; nothing to repair")
        return EXIT_OK
    print(f"{path} was damaged: {repair.problem}")
    print(f"moved it aside, as it was, to {repair.moved_to}")
    print(f"the new store at {path} holds the {repair.kept} prompt(s) that could be read")
    if repair.damaged_parts or repair.unreadable_rows:
        print(
            f"skipped {repair.damaged_parts} damaged part(s) of the file and {repair.unreadable_rows} "
            "row(s) that could not be read"
        )
    return EXIT_OK


def _models(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "list":
        for source in find_models(settings.models_dir):
            print(source.describe())
        return EXIT_OK
    if args.action == "convert":
        if not args.checkpoint.is_file():
            raise UsageError(f"checkpoint {args.checkpoint} does not exist")
        try:
            folder = convert_checkpoint(args.checkpoint, args.folder)
        except ModelError as error:
            print(f"depthgraph: {error}", file=sys.stderr)
            return EXIT_FAILED
        print(f"{args.checkpoint} is now the diffusers folder {folder}")
        return EXIT_OK
    if args.action == "import" or (args.action == "fetch" and Path(args.repo).expanduser().exists()):
        return _import_model(args.path if args.action == "import" else Path(args.repo), args, settings)
    try:
        folder = fetch_model(settings.models_dir, args.repo, args.revision)
    except ModelError as error:
        print(f"depthgraph: {error}", file=sys.stderr)
        return EXIT_FAILED
    except Exception as error:  # network, authentication, disk: all end the same way for the user
        print(f"depthgraph: could not download {args.repo}: {type(error).__name__}: {error}", file=sys.stderr)
        return EXIT_FAILED
    print(f"{args.repo} is in {folder}; pick it with ckpt_name={folder.name}")
    return EXIT_OK


def _import_model(path: Path, args: argparse.Namespace, settings: Settings) -> int:
    try:
        report = import_model(
            path, settings.models_dir, getattr(args, "name", None), getattr(args, "link", False)
        )
    except ModelError as error:
        print(f"depthgraph: {error}", file=sys.stderr)
        return EXIT_FAILED
    how = "linked as" if report.linked else "copied to"
    print(f"{path} {how} {report.target}")
    for finding in report.findings:
        print(f"  {finding}")
    print(f"pick it with ckpt_name={report.name}")
    return EXIT_OK


def _nodes(args: argparse.Namespace, engine: Engine) -> int:
    if args.json:
        print(json.dumps(object_info(engine.registry, engine.files), indent=2))
    else:
        print(describe_nodes(list(engine.registry)))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
