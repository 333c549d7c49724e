"""Run a graph on a depthgraph (or ComfyUI) server and download its images.

    python examples/api_client.py GRAPH [--server http://127.0.0.1:8188]
                                        [--set NODE_ID.INPUT=VALUE ...] [--out DIR]

    python examples/api_client.py graphs/invert_and_scale.json --set 2.width=128 --out downloads

GRAPH is a depthgraph file, a graph in ComfyUI's API form, or (with depthgraph importable) a PNG
saved by SaveImage. A --set value is read as JSON when it parses (`128`, `true`, `"text"`) and as
text otherwise. The client opens the WebSocket first, queues the prompt with `POST /prompt`, shows
progress on stderr until `executing` with `node: null` ends its prompt, then fetches
`/history/{prompt_id}` and saves every image of the outputs into --out (default `downloads/`),
printing each saved path on stdout.

Exit codes: 0 done, 1 the graph was refused or a node failed, 2 a bad --set or no server there.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from pathlib import Path
from typing import Any

import aiohttp

EXIT_OK, EXIT_FAILED, EXIT_UNREACHABLE, EXIT_USAGE = 0, 1, 2, 2
Json = dict[str, Any]


class ClientError(Exception):
    """A failure to report on one line; `code` is the exit status."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def load_document(path: Path) -> tuple[Json, Json | None]:
    """The prompt (API form) and, for a depthgraph file, the whole document (embedded as the workflow)."""
    sys.path.append(str(Path(__file__).resolve().parent.parent))  # a checkout not installed
    try:
        from depthgraph.engine.formats.graph_file import GraphFileError, load_graph
    except ImportError:  # this script copied elsewhere: plain JSON only
        return load_plain_json(path)
    try:
        document = load_graph(path)
    except GraphFileError as error:
        raise ClientError(str(error)) from None
    return document.prompt, document.workflow()


def load_plain_json(path: Path) -> tuple[Json, Json | None]:
    """A depthgraph file (its "nodes" are the API form) or an API-form graph, as plain JSON."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ClientError(f"{path} cannot be read as a JSON graph: {error}") from None
    if not isinstance(data, dict):
        raise ClientError(f"{path} is not a graph (a JSON object)")
    if isinstance(data.get("nodes"), dict):
        return data["nodes"], data
    return data, None


def apply_override(prompt: Json, text: str) -> None:
    """`NODE_ID.INPUT=VALUE`, as `depthgraph run --set` takes it, with VALUE parsed as JSON if it can be."""
    target, equals, raw = text.partition("=")
    node_id, dot, input_name = target.rpartition(".")
    if not (equals and dot and node_id and input_name):
        raise ClientError(f"--set {text!r}: write NODE_ID.INPUT=VALUE, e.g. --set 3.seed=42", EXIT_USAGE)
    if not isinstance(prompt.get(node_id), dict):
        raise ClientError(f"--set {text!r}: the graph has no node {node_id!r}", EXIT_USAGE)
    try:
        value: Any = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    prompt[node_id].setdefault("inputs", {})[input_name] = value


def describe_node_errors(body: Json) -> str:
    """The 400 answer of /prompt as lines: the general message, then one line per node error."""
    error = body.get("error") or {}
    lines = [f"the server refused the graph: {error.get('message', 'no reason given')}"]
    for node_id, entry in (body.get("node_errors") or {}).items():
        for issue in entry.get("errors", []):
            input_name = (issue.get("extra_info") or {}).get("input_name")
            where = f"node {node_id} ({entry.get('class_type')})"
            where += f", input {input_name!r}" if input_name else ""
            lines.append(f"  - {where}: {issue.get('message')} [{issue.get('type')}]")
    return "\n".join(lines)


def describe_event(kind: str, data: Json, prompt: Json) -> str | None:
    """A progress line for one WebSocket message of our prompt, or None for those not worth a line."""
    if kind == "executing" and data.get("node") is not None:
        node_id = str(data["node"])
        return f"node {node_id} ({prompt.get(node_id, {}).get('class_type', '?')}) executing"
    if kind == "progress":
        return f"node {data.get('node')} step {data.get('value')}/{data.get('max')}"
    if kind == "execution_cached" and data.get("nodes"):
        return f"cached: {', '.join(str(node) for node in data['nodes'])}"
    return None


async def wait_for_end(socket: aiohttp.ClientWebSocketResponse[bool], prompt_id: str, prompt: Json) -> None:
    """Follow our prompt's events until `executing` with `node: null`; raise on an error."""
    async for message in socket:
        if message.type == aiohttp.WSMsgType.BINARY:  # preview frames
            continue
        if message.type != aiohttp.WSMsgType.TEXT:
            break
        event = json.loads(message.data)
        kind, data = event.get("type"), event.get("data") or {}
        if data.get("prompt_id") != prompt_id:
            continue
        if kind == "execution_error":
            raise ClientError(
                f"node {data.get('node_id') or '?'} ({data.get('node_type') or '?'}) failed: "
                f"{data.get('exception_type')}: {data.get('exception_message')}"
            )
        if kind == "execution_interrupted":
            raise ClientError(f"the prompt was interrupted at node {data.get('node_id')}")
        if kind == "executing" and data.get("node") is None:
            return
        if (line := describe_event(kind, data, prompt)) is not None:
            print(line, file=sys.stderr)
    raise ClientError("the server closed the WebSocket before the prompt finished")


async def fetch_history(session: aiohttp.ClientSession, server: str, prompt_id: str) -> Json:
    """The history entry; retried briefly, since a server may send the end before storing it."""
    for _ in range(50):
        async with session.get(f"{server}/history/{prompt_id}") as response:
            response.raise_for_status()
            history = await response.json()
        if prompt_id in history:
            return dict(history[prompt_id])
        await asyncio.sleep(0.1)
    raise ClientError(f"the server has no history for prompt {prompt_id}")


async def download(session: aiohttp.ClientSession, server: str, image: Json, out: Path) -> Path:
    """Save one output image under `out`, keeping its subfolder (but never leaving `out`)."""
    params = {key: str(image.get(key, "")) for key in ("filename", "subfolder", "type")}
    async with session.get(f"{server}/view", params=params) as response:
        response.raise_for_status()
        data = await response.read()
    parts = [part for part in Path(params["subfolder"]).parts if part not in ("..", "/", "\\")]
    path = out.joinpath(*parts, Path(params["filename"]).name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


async def run(server: str, prompt: Json, workflow: Json | None, out: Path) -> list[Path]:
    client_id, prompt_id = str(uuid.uuid4()), str(uuid.uuid4())
    body: Json = {"prompt": prompt, "client_id": client_id, "prompt_id": prompt_id}
    if workflow is not None:
        body["extra_data"] = {"extra_pnginfo": {"workflow": workflow}}
    async with aiohttp.ClientSession() as session:
        # The socket opens first, so no event of the prompt can be missed.
        async with session.ws_connect(f"{server}/ws", params={"clientId": client_id}) as socket:
            async with session.post(f"{server}/prompt", json=body) as response:
                answer = await response.json(content_type=None)
                if response.status == 400:
                    raise ClientError(describe_node_errors(answer))
                response.raise_for_status()
            prompt_id = answer.get("prompt_id", prompt_id)
            print(f"queued prompt {prompt_id}", file=sys.stderr)
            await wait_for_end(socket, prompt_id, prompt)
        entry = await fetch_history(session, server, prompt_id)
        if entry.get("status", {}).get("status_str") == "error":
            raise ClientError(f"prompt {prompt_id} failed: {entry['status'].get('messages')}")
        images = [image for output in entry.get("outputs", {}).values() for image in output.get("images", [])]
        return [await download(session, server, image, out) for image in images]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("graph", type=Path, help="depthgraph file, API-form JSON or a PNG saved by SaveImage")
    parser.add_argument("--server", default="http://127.0.0.1:8188", help="the server's address")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="NODE_ID.INPUT=VALUE")
    parser.add_argument("--out", type=Path, default=Path("downloads"), help="where images are saved")
    args = parser.parse_args(argv)
    server = args.server.rstrip("/")
    try:
        prompt, workflow = load_document(args.graph)
        for text in args.overrides:
            apply_override(prompt, text)
        paths = asyncio.run(run(server, prompt, workflow, args.out))
    except ClientError as error:
        print(f"api_client: {error}", file=sys.stderr)
        return error.code
    except aiohttp.ClientConnectorError as error:
        print(f"api_client: cannot reach the server at {server} ({error.os_error})", file=sys.stderr)
        return EXIT_UNREACHABLE
    except (aiohttp.ClientError, ValueError) as error:  # an HTTP error status, or an answer not JSON
        print(f"api_client: talking to {server} failed: {error}", file=sys.stderr)
        return EXIT_FAILED
    for path in paths:
        print(path)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
