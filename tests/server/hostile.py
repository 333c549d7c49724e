"""Bad input for the server: a catalogue of malformed, oversized and hostile requests for every route,
and Hypothesis strategies for `POST /prompt` and `POST /workflow/convert` bodies.

Each case says what a user must see: `REFUSED` is a 4xx answer with a JSON error; `ANSWERED` (input
a route may take, such as an unknown history id) is any answer short of a server failure.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from hypothesis import strategies as st

from tests.server.conftest import chain

REFUSED, ANSWERED = "refused", "answered"
JSON_TYPE = "application/json"
DEEP = 100_000  # far past any parser's stack
MEBIBYTE = 2**20
BOUNDARY = "hostile-boundary"


@dataclass(frozen=True)
class Case:
    """One request: `path` without the `/api` prefix (every case is sent both ways)."""

    name: str
    method: str
    path: str
    body: bytes | None = None
    content_type: str | None = JSON_TYPE
    params: tuple[tuple[str, str], ...] = ()
    expect: str = REFUSED


# --- JSON text that a JSON library would not write -----------------------------------------------
def text_of(value: Any) -> bytes:
    return json.dumps(value).encode()


def deep_list(depth: int) -> str:
    return "[" * depth + "]" * depth


def deep_object(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


def digits(count: int) -> str:
    return "1" + "0" * (count - 1)


def prompt_text(prompt: str, **fields: str) -> bytes:
    """A /prompt body whose prompt (and other fields) are raw JSON text."""
    members = [f'"prompt": {prompt}', *(f'"{name}": {value}' for name, value in fields.items())]
    return ("{" + ", ".join(members) + "}").encode()


def with_value(value_text: str) -> bytes:
    """The test chain with Number's `value` widget written as raw JSON text."""
    prompt = json.dumps(chain()).replace('{"value": 1}', '{"value": ' + value_text + "}", 1)
    return prompt_text(prompt)


def body(**fields: Any) -> bytes:
    """A /prompt body: the valid test chain, with `fields` added or replacing it."""
    return text_of({"prompt": chain(), "client_id": "hostile", **fields})


def prompt_with(node: str, **changes: Any) -> bytes:
    prompt = chain()
    prompt[node] = {**prompt[node], **changes}
    return text_of({"prompt": prompt})


def link_to(value: Any) -> bytes:
    """The test chain with Add's `a` (normally the link ["1", 0]) set to `value`."""
    prompt = chain()
    prompt["2"]["inputs"]["a"] = value
    return text_of({"prompt": prompt})


def valid_workflow() -> dict[str, Any]:
    """An editor workflow that converts: Number → Add → Show."""
    return {
        "nodes": [
            {"id": 1, "type": "Number", "widgets_values": [7, "randomize"], "inputs": []},
            {"id": 2, "type": "Add", "widgets_values": [0, 2], "inputs": [{"name": "a", "link": 1}]},
            {"id": 3, "type": "Show", "inputs": [{"name": "value", "link": 2}]},
        ],
        "links": [[1, 1, 0, 2, 0, "INT"], [2, 2, 0, 3, 0, "INT"]],
    }


def workflow_with(change: Callable[[dict[str, Any]], None]) -> bytes:
    workflow = valid_workflow()
    change(workflow)
    return text_of(workflow)


def set_at(path: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def change(document: dict[str, Any]) -> None:
        put(document, path, value)

    return change


def put(document: Any, path: tuple[Any, ...], value: Any) -> None:
    for key in path[:-1]:
        document = document[key]
    document[path[-1]] = value


def reroute_chain(length: int, loop: bool = False) -> dict[str, Any]:
    """Number → `length` reroutes → Show; with `loop`, the first reroute is fed by the last."""
    nodes: list[dict[str, Any]] = [{"id": 1, "type": "Number", "widgets_values": [7]}]
    links: list[list[Any]] = [[1, 1, 0, 100, 0, "INT"]]
    for index in range(length):
        nodes.append({"id": 100 + index, "type": "Reroute", "inputs": [{"name": "", "link": index + 1}]})
        links.append([index + 2, 100 + index, 0, 101 + index, 0, "*"])
    nodes.append({"id": 2, "type": "Show", "inputs": [{"name": "value", "link": length + 1}]})
    if loop:
        links[0] = [1, 100 + length - 1, 0, 100, 0, "*"]
    return {"nodes": nodes, "links": links}


def multipart(fields: dict[str, str], image: bytes | None = None) -> bytes:
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in fields.items()
    ]
    if image is not None:
        parts.append(
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="image"; filename="x.png"\r\n'
            f"Content-Type: image/png\r\n\r\n"
        )
    data = "".join(parts).encode() + (image + b"\r\n" if image is not None else b"")
    return data + f"--{BOUNDARY}--\r\n".encode()


MULTIPART_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


# --- the catalogue -----------------------------------------------------------------------------------
PLAIN_PATH_VALUES = {
    "{prompt_id}": "no-such-prompt",
    "{node_class}": "Number",
    "{name}": "depth2img.json",
    "{setting_id}": "Comfy.Test",
    "{file}": quote("workflows/x.json", safe=""),
    "{dest}": quote("workflows/y.json", safe=""),
    "{job_id}": "no-such-job",
    "{subgraph_id}": "no-such-subgraph",
    "{folder}": "checkpoints",
}
JSON_POST_ROUTES = ("/prompt", "/queue", "/history", "/interrupt", "/free", "/workflow/convert", "/settings")
# Routes whose body is any JSON value (a setting's value), or a user's file kept as sent (a .json name
# must hold JSON), or none at all: only what they cannot take is refused.
ANY_JSON_ROUTES = ("/settings/{setting_id}",)
FILE_BODY_ROUTES = ("/userdata/{file}",)
NO_BODY_ROUTES = ("/userdata/{file}/move/{dest}", "/jobs/{job_id}/cancel")
OPTIONAL_BODY_ROUTES = ("/interrupt", "/free")
UPLOAD_ROUTES = ("/upload/image", "/upload/mask")
WRONG_TYPED_JSON = {
    "list": "[]",
    "pair": "[1, 2]",
    "number": "5",
    "text": '"text"',
    "null": "null",
    "true": "true",
}


def fill(path: str) -> str:
    for placeholder, value in PLAIN_PATH_VALUES.items():
        path = path.replace(placeholder, value)
    return path


def method_cases(routes: Iterable[tuple[str, str, Any]]) -> list[Case]:
    """Every method a path does not take: 405 with a JSON error."""
    taken: dict[str, set[str]] = {}
    for method, path, _ in routes:
        taken.setdefault(path, set()).add(method)
    return [
        Case(f"{method} {path} is not allowed", method, fill(path), content_type=None)
        for path, methods in taken.items()
        for method in ("GET", "POST", "PUT", "DELETE", "PATCH")
        if method not in methods
    ]


def junk_body_cases(routes: Iterable[tuple[str, str, Any]]) -> list[Case]:
    """Bodies that are no JSON object at all, on every POST route."""
    cases: list[Case] = []
    for method, path, _ in routes:
        if method != "POST" or path in NO_BODY_ROUTES:
            continue
        junk: dict[str, bytes] = {"not JSON": b"{ nope", "not UTF-8": b"\xff\xfe\xfa{"}
        if path in FILE_BODY_ROUTES:
            junk["100,000-deep nesting"] = deep_list(DEEP).encode()
        elif path in UPLOAD_ROUTES:
            junk["JSON, no multipart"] = b'{"image": "x"}'
        else:
            junk["2 MiB of junk"] = b"x" * (2 * MEBIBYTE)
            junk["100,000-deep nesting"] = deep_list(DEEP).encode()
            junk["5,001-digit number"] = digits(5001).encode()
            if path not in ANY_JSON_ROUTES:
                junk.update({f"JSON {kind}": value.encode() for kind, value in WRONG_TYPED_JSON.items()})
        if path not in OPTIONAL_BODY_ROUTES:
            junk["empty"] = b""
        if path in JSON_POST_ROUTES:
            junk["NaN"] = b"NaN"
        for name, data in junk.items():
            cases.append(Case(f"POST {path} {name}", "POST", fill(path), data))
    return cases


def prompt_cases() -> list[Case]:
    """POST /prompt: the prompt, its nodes, widgets, links and the other fields, each wrong."""
    cases = [
        ("no prompt", text_of({"client_id": "x"})),
        ("empty object", b"{}"),
        *((f"prompt is JSON {kind}", prompt_text(value)) for kind, value in WRONG_TYPED_JSON.items()),
        ("prompt is empty", text_of({"prompt": {}})),
        *((f"node is {k}", text_of({"prompt": {"1": v}})) for k, v in (("5", 5), ("[]", []), ("text", "x"))),
        ("node is null", text_of({"prompt": {"1": None}})),
        ("class_type missing", text_of({"prompt": {**chain(), "1": {"inputs": {"value": 1}}}})),
        ("class_type is 5", prompt_with("1", class_type=5)),
        ("class_type is a list", prompt_with("1", class_type=["Number"])),
        ("class_type is an object", prompt_with("1", class_type={"a": 1})),
        ("class_type is null", prompt_with("1", class_type=None)),
        ("class_type is unknown", prompt_with("1", class_type="Mystery")),
        ("class_type is 5,000 characters", prompt_with("1", class_type="M" * 5000)),
        ("inputs are 5", prompt_with("3", inputs=5)),
        ("inputs are a list", prompt_with("3", inputs=[["1", 0]])),
        ("inputs are text", prompt_with("3", inputs="x")),
        ("inputs are null", prompt_with("3", inputs=None)),
        ("widget is text", with_value('"abc"')),
        ("widget is an object", with_value('{"a": 1}')),
        ("widget is [1]", with_value("[1]")),
        ("widget is []", with_value("[]")),
        ("widget is true", with_value("true")),
        ("widget is 2.5", with_value("2.5")),
        ("widget over its max", with_value("10000000")),
        ("widget under its min", with_value("-10000000")),
        ("widget is 10^100", with_value(digits(101))),
        ("widget has 5,001 digits", with_value(digits(5001))),
        ("widget is 5,000 digits of text", with_value(json.dumps("1" * 5000))),
        ("widget is '1e400'", with_value('"1e400"')),
        ("widget is NaN", with_value("NaN")),
        ("widget is Infinity", with_value("Infinity")),
        ("widget is -Infinity", with_value("-Infinity")),
        ("widget is 1e400", with_value("1e400")),
        ("widget is 100,000-deep nesting", with_value(deep_list(DEEP))),
        ("widget is 500-deep nesting", with_value(deep_list(500))),
        ("node is 100,000-deep nesting", prompt_text('{"1": ' + deep_object(DEEP) + "}")),
        ("prompt is 100,000-deep nesting", prompt_text(deep_list(DEEP))),
        ('link is ["1"]', link_to(["1"])),
        ("link slot is text", link_to(["1", "x"])),
        ("link slot is -1", link_to(["1", -1])),
        ("link slot is past the outputs", link_to(["1", 5])),
        ("link slot is 0.5", link_to(["1", 0.5])),
        ("link slot is true", link_to(["1", True])),
        ("link slot is 10^30", link_to(["1", 10**30])),
        ("link source is a list", link_to([["1"], 0])),
        ("link source is an object", link_to([{"a": 1}, 0])),
        ("link source is unknown", link_to(["9", 0])),
        ("link has three items", link_to(["1", 0, 0])),
        ("link is [null, null]", link_to([None, None])),
        ("link is to itself", link_to(["2", 0])),
        ("link is from a node without outputs", link_to(["3", 0])),
        ("prompt_id is a lone surrogate", body(prompt_id="\ud800")),
        ("prompt_id is 1 MiB", body(prompt_id="x" * MEBIBYTE)),
        ("prompt_id is a list", body(prompt_id=["x"])),
        ("prompt_id is an object", body(prompt_id={"a": 1})),
        ("client_id is a list", body(client_id=["x", "y"])),
        ("client_id is an object", body(client_id={"a": 1})),
        ("client_id is 1 MiB", body(client_id="x" * MEBIBYTE)),
        ("number is NaN", prompt_text(json.dumps(chain()), number="NaN")),
        ("number is 1e400", prompt_text(json.dumps(chain()), number="1e400")),
        ("number is Infinity", prompt_text(json.dumps(chain()), number="Infinity")),
        ("number is text", body(number="abc")),
        ("number is a list", body(number=[1])),
        ("number is an object", body(number={"a": 1})),
        ("extra_data is 5", body(extra_data=5)),
        ("extra_data is text", body(extra_data="x")),
        ("extra_data is a list", body(extra_data=[1])),
        ("extra_pnginfo is 5", body(extra_data={"extra_pnginfo": 5})),
        ("extra_pnginfo is a list", body(extra_data={"extra_pnginfo": [1]})),
        ("targets are 5", body(partial_execution_targets=5)),
        ("targets are text", body(partial_execution_targets="3")),
        ("targets are an object", body(partial_execution_targets={"a": 1})),
        ("a target is a list", body(partial_execution_targets=[[1]])),
        ("a target is an object", body(partial_execution_targets=[{"a": 1}])),
        ("a target is unknown", body(partial_execution_targets=["9"])),
        ("a target is null", body(partial_execution_targets=[None])),
        (
            "20,000 broken nodes",
            text_of({"prompt": {str(i): {"class_type": "Show", "inputs": {}} for i in range(20_000)}}),
        ),
    ]
    return [Case(f"POST /prompt {name}", "POST", "/prompt", data) for name, data in cases]


def workflow_cases() -> list[Case]:
    """POST /workflow/convert: every part of an editor workflow of the wrong shape."""
    objects = valid_workflow()
    objects["links"] = [
        {"id": 1, "origin_id": 1, "origin_slot": "x"},
        {"id": 2, "origin_id": 2, "origin_slot": 0},
    ]
    cases = [
        ("workflow is 5", text_of({"workflow": 5})),
        ("workflow is a list", text_of({"workflow": []})),
        ("nodes are 5", text_of({"nodes": 5, "links": []})),
        ("nodes are an object", text_of({"nodes": {}, "links": []})),
        ("a node is 5", workflow_with(set_at(("nodes", 0), 5))),
        ("a node is text", workflow_with(set_at(("nodes", 0), "x"))),
        ("a node is null", workflow_with(set_at(("nodes", 0), None))),
        ("a node is a list", workflow_with(set_at(("nodes", 0), [1]))),
        ("an id is an object", workflow_with(set_at(("nodes", 0, "id"), {"a": 1}))),
        ("an id is a list", workflow_with(set_at(("nodes", 0, "id"), [1]))),
        ("an id is null", workflow_with(set_at(("nodes", 0, "id"), None))),
        ("an id is true", workflow_with(set_at(("nodes", 0, "id"), True))),
        ("two nodes share an id", workflow_with(set_at(("nodes", 1, "id"), 1))),
        ("a type is 5", workflow_with(set_at(("nodes", 0, "type"), 5))),
        ("a type is a list", workflow_with(set_at(("nodes", 0, "type"), ["Number"]))),
        ("a type is unknown", workflow_with(set_at(("nodes", 0, "type"), "Mystery"))),
        ("links are 5", workflow_with(set_at(("links",), 5))),
        ("links are text", workflow_with(set_at(("links",), "x"))),
        ("links are an object", workflow_with(set_at(("links",), {"1": [1, 1, 0, 2, 0, "INT"]}))),
        ("a link is 5", workflow_with(set_at(("links", 0), 5))),
        ("a link is text", workflow_with(set_at(("links", 0), "x"))),
        ("a link is too short", workflow_with(set_at(("links", 0), [1, 2]))),
        ("a link slot is 'abc'", workflow_with(set_at(("links", 0, 2), "abc"))),
        ("a link slot is -1", workflow_with(set_at(("links", 0, 2), -1))),
        ("a link slot is 10^30", workflow_with(set_at(("links", 0, 2), 10**30))),
        ("a link id is [1]", workflow_with(set_at(("links", 0, 0), [1]))),
        ("a link origin is an object", workflow_with(set_at(("links", 0, 1), {"a": 1}))),
        ("an object link's origin_slot is 'x'", text_of(objects)),
        ("inputs are 5", workflow_with(set_at(("nodes", 1, "inputs"), 5))),
        ("inputs are text", workflow_with(set_at(("nodes", 1, "inputs"), "x"))),
        ("an input is 5", workflow_with(set_at(("nodes", 1, "inputs", 0), 5))),
        ("an input's name is 5", workflow_with(set_at(("nodes", 1, "inputs", 0, "name"), 5))),
        ("an input's link is [1]", workflow_with(set_at(("nodes", 1, "inputs", 0, "link"), [1]))),
        ("an input's link is an object", workflow_with(set_at(("nodes", 1, "inputs", 0, "link"), {"a": 1}))),
        ("widgets_values are 5", workflow_with(set_at(("nodes", 0, "widgets_values"), 5))),
        ("widgets_values are text", workflow_with(set_at(("nodes", 0, "widgets_values"), "abc"))),
        ("widgets_values are true", workflow_with(set_at(("nodes", 0, "widgets_values"), True))),
        ("a widget value is a list", workflow_with(set_at(("nodes", 0, "widgets_values", 0), [1, 2]))),
        ("a widget value is an object", workflow_with(set_at(("nodes", 0, "widgets_values", 0), {"a": 1}))),
        (
            "a widget value is a list before a control",
            workflow_with(set_at(("nodes", 0, "widgets_values"), [[1], "fixed"])),
        ),
        ("a widget value is NaN", json.dumps(valid_workflow()).replace("[7,", "[NaN,", 1).encode()),
        (
            "a widget value has 5,001 digits",
            json.dumps(valid_workflow()).replace("[7,", f"[{digits(5001)},", 1).encode(),
        ),
        (
            "a widget value is 100,000-deep",
            json.dumps(valid_workflow()).replace("[7,", f"[{deep_list(DEEP)},", 1).encode(),
        ),
        ("5,000 reroutes in a loop", text_of(reroute_chain(5000, loop=True))),
        (
            "a primitive's widgets_values are 5",
            text_of(
                {
                    "nodes": [
                        {"id": 1, "type": "PrimitiveNode", "widgets_values": 5},
                        {"id": 2, "type": "Show", "inputs": [{"name": "value", "link": 1}]},
                    ],
                    "links": [[1, 1, 0, 2, 0, "INT"]],
                }
            ),
        ),
        (
            "a primitive's value is a list",
            text_of(
                {
                    "nodes": [
                        {"id": 1, "type": "PrimitiveNode", "widgets_values": [[1, 0]]},
                        {"id": 2, "type": "Add", "inputs": [{"name": "a", "link": 1}]},
                    ],
                    "links": [[1, 1, 0, 2, 0, "INT"]],
                }
            ),
        ),
        (
            "a reroute's inputs are 5",
            text_of(
                {
                    "nodes": [
                        {"id": 1, "type": "Reroute", "inputs": 5},
                        {"id": 2, "type": "Show", "inputs": [{"name": "value", "link": 1}]},
                    ],
                    "links": [[1, 1, 0, 2, 0, "*"]],
                }
            ),
        ),
    ]
    return [Case(f"POST /workflow/convert {name}", "POST", "/workflow/convert", data) for name, data in cases]


def graph_read_cases() -> list[Case]:
    """POST /graph/read: dropped files that hold no graph the editor can open."""
    objects = valid_workflow()
    objects["links"] = [{"id": 1, "origin_id": 1, "origin_slot": "x"}]
    cases = [
        ("a workflow whose object link has origin_slot 'x'", text_of(objects)),
        ("a workflow whose link slot is 'abc'", workflow_with(set_at(("links", 0, 2), "abc"))),
        ("a workflow whose node is 5", workflow_with(set_at(("nodes", 0), 5))),
        ("a workflow whose inputs are 5", workflow_with(set_at(("nodes", 1, "inputs"), 5))),
        ("a workflow of 5,000 reroutes in a loop", text_of(reroute_chain(5000, loop=True))),
        ("a workflow 100,000 deep", ('{"nodes": [' + deep_list(DEEP) + "]}").encode()),
        ("a PNG with junk after its signature", b"\x89PNG\r\n\x1a\n" + b"\xff" * 64),
    ]
    result = [Case(f"POST /graph/read {name}", "POST", "/graph/read", data, None) for name, data in cases]
    result.append(
        Case(
            "POST /graph/read 5,000-character filename",
            "POST",
            "/graph/read",
            b"{ nope",
            None,
            (("filename", "a" * 5000 + ".json"),),
        )
    )
    return result


def query_cases() -> list[Case]:
    """Query values of the wrong kind: history paging, /view names and types."""
    refused = [
        ("/history", (("max_items", "-1"),)),
        ("/history", (("offset", "-2"),)),
        ("/history", (("max_items", "abc"),)),
        ("/history", (("offset", "abc"),)),
        ("/history", (("max_items", "1.5"),)),
        ("/history", (("max_items", "1" * 40),)),
        ("/view", (("filename", "a" * 5000),)),
        ("/view", (("filename", "example.jpg"), ("subfolder", "s" * 300), ("type", "input"))),
        ("/view", (("filename", "a\x00b.png"),)),
        ("/view", (("filename", "example.jpg"), ("subfolder", "\x00"), ("type", "input"))),
        ("/view", (("filename", "example.jpg"), ("type", "etc"))),
        ("/view", (("filename", "example.jpg"), ("type", ""))),
        ("/view", (("filename", ""),)),
        ("/view", ()),
        ("/view", (("filename", "../../etc/passwd"),)),
        ("/view", (("filename", "/etc/passwd"),)),
        ("/view", (("filename", "passwd"), ("subfolder", "../../../etc"))),
        ("/view", (("filename", "passwd"), ("subfolder", "/etc"))),
        ("/view", (("filename", "no-such-file.png"),)),
        ("/view", (("filename", ".."), ("type", "input"))),
        ("/view", (("filename", "."), ("type", "input"))),
        ("/userdata", ()),
        ("/userdata", (("dir", ""),)),
        ("/userdata", (("dir", "../.."),)),
        ("/userdata", (("dir", "/etc"),)),
        ("/userdata", (("dir", "workflows\x00"),)),
        ("/userdata", (("dir", "d" * 5000),)),
        ("/userdata", (("dir", quote("../../etc", safe="")),)),
        ("/jobs", (("status", "bogus"),)),
        ("/jobs", (("status", "pending,done"),)),
        ("/jobs", (("limit", "0"),)),
        ("/jobs", (("limit", "x"),)),
        ("/jobs", (("limit", "1" * 40),)),
        ("/jobs", (("offset", "1.5"),)),
        ("/jobs", (("sort_by", "name"),)),
        ("/jobs", (("sort_order", "up"),)),
    ]
    answered = [
        ("/jobs", (("offset", "-5"),)),
        ("/jobs", (("status", "completed,failed,cancelled"), ("limit", "64"), ("offset", "0"))),
        ("/userdata", (("dir", "workflows"), ("recurse", "true"), ("full_info", "true"))),
        ("/userdata", (("dir", "no-such-folder"), ("split", "true"))),
        ("/history", (("max_items", "99999999999999999999"),)),
        ("/history", (("offset", "99999999999999999999"),)),
        ("/prompt", (("x", "y" * 5000),)),
        ("/queue", (("x", "\x00"),)),
        ("/system_stats", (("x", "y" * 5000),)),
        ("/object_info", (("x", "\x00"),)),
        ("/graphs", (("x", "y" * 5000),)),
    ]
    cases = [
        Case(f"GET {path} {describe(params)}", "GET", path, None, None, params) for path, params in refused
    ]
    cases += [
        Case(f"GET {path} {describe(params)}", "GET", path, None, None, params, ANSWERED)
        for path, params in answered
    ]
    return cases


def path_cases() -> list[Case]:
    """Hostile values in the route's own path."""
    refused = [
        "/graphs/no-such-graph.json",
        "/graphs/" + quote("../secret.json", safe=""),
        "/graphs/" + "a" * 5000 + ".json",
        "/graphs/%00.json",
        "/graphs/.hidden.json",
        "/ws",
        "/ws?clientId=" + "c" * 5000,
        "/userdata/" + quote("../../etc/passwd", safe=""),
        "/userdata/" + quote("/etc/passwd", safe=""),
        "/userdata/" + quote("workflows/../../../x.json", safe=""),
        "/userdata/" + quote(quote("../../etc/passwd", safe=""), safe=""),  # encoded twice
        "/userdata/%00",
        "/userdata/" + "a" * 5000,
        "/userdata/" + quote("workflows/no-such.json", safe=""),
        "/userdata/" + quote("a//b.json", safe=""),
        "/jobs/no-such-job",
        "/experiment/models/no-such-folder",
        "/templates/no-such-graph.json",
        "/templates/" + quote("../graphs/depth2img.json", safe=""),
        "/templates/.hidden.json",
        "/templates/depth2img.exe",
    ]
    answered = [
        "/global_subgraphs/no-such-subgraph",
        "/settings/" + "s" * 300,
        "/templates/index.json",
        "/history/" + "x" * 5000,
        "/history/%00",
        "/history/%ED%A0%80",
        "/history/" + quote("../../etc", safe=""),
        "/object_info/" + "X" * 5000,
        "/object_info/%00",
    ]
    cases = [Case(f"GET {shorten(path)}", "GET", path, None, None) for path in refused]
    cases += [Case(f"GET {shorten(path)}", "GET", path, None, None, (), ANSWERED) for path in answered]
    return cases


def upload_cases() -> list[Case]:
    """A few uploads of the wrong form (the file routes have their own hostile suite)."""
    cases: list[Case] = []
    for path in UPLOAD_ROUTES:
        cases += [
            Case(
                f"POST {path} multipart without an image",
                "POST",
                path,
                multipart({"type": "input"}),
                MULTIPART_TYPE,
            ),
            Case(
                f"POST {path} an image that is not one",
                "POST",
                path,
                multipart({}, b"not an image"),
                MULTIPART_TYPE,
            ),
            Case(
                f"POST {path} multipart without a boundary", "POST", path, b"--x--\r\n", "multipart/form-data"
            ),
            Case(
                f"POST {path} to the output folder",
                "POST",
                path,
                multipart({"type": "output"}, b"x"),
                MULTIPART_TYPE,
            ),
        ]
    return cases


def body_field_cases() -> list[Case]:
    """JSON objects whose fields have the wrong type, on the routes that take a few fields."""
    fields = {
        "/queue": [{"delete": 5}, {"delete": "abc"}, {"delete": [[1]]}, {"delete": [{"a": 1}]}],
        "/history": [{"delete": 5}, {"delete": "abc"}, {"delete": [[1]]}, {"delete": [{"a": 1}]}],
        "/interrupt": [{"prompt_id": [1]}, {"prompt_id": {"a": 1}}],
        "/jobs/cancel": [{"job_ids": 5}, {"job_ids": ["x"]}, {"job_ids": [[1]]}, {}],
    }
    return [
        Case(f"POST {path} {json.dumps(value)}", "POST", path, text_of(value))
        for path, values in fields.items()
        for value in values
    ]


def userdata_cases() -> list[Case]:
    """Writes and moves that would leave the user's folder, or take a name no file may have."""
    outside = ["../x.json", "/tmp/x.json", "workflows/../../x.json", "a\x00.json", "", "workflows/"]
    cases = [
        Case(f"POST /userdata/{name!r}", "POST", "/userdata/" + quote(name, safe=""), b"{}")
        for name in outside
    ]
    source = "/userdata/" + quote("workflows/x.json", safe="")
    cases += [
        Case(f"POST move to {name!r}", "POST", f"{source}/move/" + quote(name, safe=""), None, None)
        for name in outside[:4]
    ]
    cases.append(Case("POST /settings/x a 5,001-digit value", "POST", "/settings/x", digits(5001).encode()))
    return cases


def catalogue(routes: Iterable[tuple[str, str, Any]]) -> list[Case]:
    routes = list(routes)
    return [
        *method_cases(routes),
        *junk_body_cases(routes),
        *body_field_cases(),
        *prompt_cases(),
        *workflow_cases(),
        *graph_read_cases(),
        *query_cases(),
        *path_cases(),
        *upload_cases(),
        *userdata_cases(),
    ]


def describe(params: tuple[tuple[str, str], ...]) -> str:
    return "&".join(f"{key}={shorten(value)!r}" for key, value in params) or "(no query)"


def shorten(text: str, limit: int = 30) -> str:
    return text if len(text) <= limit else f"{text[:limit]}…({len(text)} chars)"


# --- Hypothesis strategies ---------------------------------------------------------------------------
ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=12)  # lone surrogates too
NON_NUMERIC_TEXT = st.text(alphabet="xyzXYZ _#-", min_size=1, max_size=8)
UNKNOWN_TEXT = NON_NUMERIC_TEXT.map(lambda text: "Unknown" + text)
SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | ANY_TEXT
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ANY_TEXT, inner, max_size=4),
    max_leaves=12,
)
LISTS = st.lists(JSON_VALUES, max_size=3)
OBJECTS = st.dictionaries(ANY_TEXT, JSON_VALUES, max_size=3)
NOT_OBJECT = SCALARS | LISTS
NOT_LIST = SCALARS | OBJECTS
PROMPT_FIELDS = (
    "prompt",
    "client_id",
    "prompt_id",
    "number",
    "extra_data",
    "front",
    "partial_execution_targets",
)


def prompt_like_bodies() -> st.SearchStrategy[Any]:
    """Any JSON, and objects with /prompt's field names holding any JSON."""
    named = st.dictionaries(st.sampled_from(PROMPT_FIELDS), JSON_VALUES, min_size=1)
    return JSON_VALUES | named


def is_editor_workflow(body: Any) -> bool:
    """What /workflow/convert may rightly convert: an object with a list of nodes (or a depthgraph file)."""
    workflow = body.get("workflow", body) if isinstance(body, dict) else body
    return isinstance(workflow, dict) and (isinstance(workflow.get("nodes"), list) or "format" in workflow)


def workflow_like_bodies() -> st.SearchStrategy[Any]:
    named = st.dictionaries(
        st.sampled_from(("nodes", "links", "workflow", "format")), JSON_VALUES, min_size=1
    )
    return (JSON_VALUES | named).filter(lambda body: not is_editor_workflow(body))


# Wrong values per position of the test chain's /prompt body, each invalid however a server reads it.
# A widget's null is no wrong value: it is no value, and the input's default applies.
NOT_A_WHOLE_NUMBER_WIDGET = (
    OBJECTS
    | LISTS
    | st.booleans()
    | st.floats().filter(lambda number: not number.is_integer())
    | st.integers(min_value=1_000_001)
    | st.integers(max_value=-1001)
    | NON_NUMERIC_TEXT
    | st.integers(min_value=1_000_001).map(str)
)
NOT_A_NODE_REFERENCE = (
    LISTS
    | OBJECTS
    | st.none()
    | st.booleans()
    | st.floats()
    | st.integers().filter(lambda i: i != 1)
    | UNKNOWN_TEXT
)
NOT_AN_OUTPUT_INDEX = (
    st.integers().filter(lambda i: i != 0)
    | st.floats().filter(lambda number: number != 0)
    | st.just(True)
    | LISTS
    | OBJECTS
    | st.none()
    | NON_NUMERIC_TEXT
)
NOT_AN_ADD_INPUT = (
    st.lists(JSON_VALUES, max_size=1)
    | st.lists(JSON_VALUES, min_size=3, max_size=4)
    | st.tuples(NOT_A_NODE_REFERENCE, st.just(0)).map(list)
    | st.tuples(st.just("1"), NOT_AN_OUTPUT_INDEX).map(list)
    | OBJECTS
    | st.booleans()
    | NON_NUMERIC_TEXT
)
LONG_TEXT = st.integers(min_value=10_000, max_value=50_000).map(lambda size: "i" * size)
NOT_A_PROMPT_ID = LISTS | OBJECTS | LONG_TEXT | st.sampled_from(["\ud800", "a\udfffb"])
NOT_A_CLIENT_ID = LISTS | OBJECTS | LONG_TEXT
NOT_A_NUMBER = (
    LISTS | OBJECTS | NON_NUMERIC_TEXT | st.sampled_from([float("nan"), float("inf"), float("-inf")])
)
NOT_EXTRA_DATA = LISTS | NON_NUMERIC_TEXT | st.integers() | st.floats() | st.booleans()
NOT_A_TARGET = LISTS | OBJECTS | st.none() | UNKNOWN_TEXT | st.integers().filter(lambda i: i not in (1, 2, 3))
PROMPT_POSITIONS: list[tuple[tuple[Any, ...], st.SearchStrategy[Any]]] = [
    (("prompt",), NOT_OBJECT),
    (("prompt", "1"), NOT_OBJECT),
    (
        ("prompt", "1", "class_type"),
        st.integers() | LISTS | OBJECTS | st.none() | st.booleans() | UNKNOWN_TEXT,
    ),
    (("prompt", "3", "inputs"), NOT_OBJECT),
    (("prompt", "1", "inputs", "value"), NOT_A_WHOLE_NUMBER_WIDGET),
    (("prompt", "2", "inputs", "a"), NOT_AN_ADD_INPUT),
    (("prompt_id",), NOT_A_PROMPT_ID),
    (("client_id",), NOT_A_CLIENT_ID),
    (("number",), NOT_A_NUMBER),
    (("extra_data",), NOT_EXTRA_DATA),
    (("extra_data", "extra_pnginfo"), NOT_EXTRA_DATA),
    (("partial_execution_targets",), NOT_EXTRA_DATA | OBJECTS),
    (("partial_execution_targets", 0), NOT_A_TARGET),
]


@st.composite
def near_valid_prompt_bodies(draw: st.DrawFn) -> dict[str, Any]:
    """The valid test chain with one position (a node, a widget, a link, a field) of a wrong type."""
    request: dict[str, Any] = {
        "prompt": chain(),
        "client_id": "hostile",
        "extra_data": {},
        "partial_execution_targets": ["3"],
    }
    path, wrong = draw(st.sampled_from(PROMPT_POSITIONS))
    put(request, path, draw(wrong))
    return request


NOT_A_NODE_ID = LISTS | OBJECTS | st.none() | st.booleans() | st.floats() | st.just("")
NOT_A_LINK_ID = LISTS | OBJECTS | st.none() | st.booleans() | st.floats()
NOT_A_SLOT = (
    st.integers(max_value=-1)
    | st.integers(min_value=2**31)
    | st.floats()
    | st.booleans()
    | st.none()
    | LISTS
    | OBJECTS
    | NON_NUMERIC_TEXT
)
NOT_A_TYPE = st.integers() | LISTS | OBJECTS | st.none() | st.booleans() | st.floats() | UNKNOWN_TEXT
NOT_SLOTS = st.integers() | st.floats() | NON_NUMERIC_TEXT | OBJECTS | st.booleans()
NOT_WIDGET_VALUES = st.integers() | st.floats() | NON_NUMERIC_TEXT | st.booleans()
NOT_A_WIDGET_VALUE = LISTS | OBJECTS | st.sampled_from([float("nan"), float("inf"), float("-inf")])
NODES = st.sampled_from([0, 1, 2])
WORKFLOW_POSITIONS: list[tuple[st.SearchStrategy[tuple[Any, ...]], st.SearchStrategy[Any]]] = [
    (st.just(("nodes",)), NOT_LIST),
    (NODES.map(lambda node: ("nodes", node)), NOT_OBJECT),
    (NODES.map(lambda node: ("nodes", node, "id")), NOT_A_NODE_ID),
    (NODES.map(lambda node: ("nodes", node, "type")), NOT_A_TYPE),
    (NODES.map(lambda node: ("nodes", node, "inputs")), NOT_SLOTS),
    (st.just(("nodes", 1, "inputs", 0)), NOT_OBJECT),
    (st.just(("nodes", 1, "inputs", 0, "link")), NOT_A_LINK_ID.filter(lambda value: value is not None)),
    (st.just(("nodes", 1, "inputs", 0, "name")), st.integers() | LISTS | OBJECTS | st.none() | st.booleans()),
    (st.sampled_from([0, 1]).map(lambda node: ("nodes", node, "widgets_values")), NOT_WIDGET_VALUES),
    (
        st.sampled_from([("nodes", 0, "widgets_values", 0), ("nodes", 1, "widgets_values", 1)]),
        NOT_A_WIDGET_VALUE,
    ),
    (st.just(("links",)), NOT_LIST.filter(lambda value: value is not None)),
    (
        st.sampled_from([0, 1]).map(lambda link: ("links", link)),
        (SCALARS.filter(lambda value: value is not None)) | st.lists(JSON_VALUES, max_size=4),
    ),
    (st.sampled_from([0, 1]).map(lambda link: ("links", link, 0)), NOT_A_LINK_ID),
    (st.sampled_from([0, 1]).map(lambda link: ("links", link, 1)), NOT_A_NODE_ID),
    (st.sampled_from([0, 1]).map(lambda link: ("links", link, 2)), NOT_A_SLOT),
]


@st.composite
def near_valid_workflows(draw: st.DrawFn) -> dict[str, Any]:
    """The valid test workflow with one position of a wrong type; links sometimes in object form."""
    workflow = valid_workflow()
    paths, wrong = draw(st.sampled_from(WORKFLOW_POSITIONS))
    path = draw(paths)
    if path[0] == "links" and len(path) == 3 and draw(st.booleans()):
        keys = ("id", "origin_id", "origin_slot")
        workflow["links"] = [dict(zip(keys, link[:3], strict=True)) for link in workflow["links"]]
        path = ("links", path[1], keys[path[2]])
    put(workflow, path, draw(wrong))
    return workflow
