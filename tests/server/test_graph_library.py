"""The editor's graph routes: the library in the graphs folder, and files a user drops or picks."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from depthgraph.engine.app.config import Settings
from depthgraph.nodes.image_tensors import png_metadata
from PIL import Image

DOCUMENT = {
    "format": "depthgraph",
    "version": 1,
    "title": "Add two numbers",
    "description": "Adds 2 to 7.",
    "nodes": {
        "1": {"class_type": "Number", "inputs": {"value": 7}},
        "2": {"class_type": "Add", "inputs": {"a": ["1", 0], "b": 2}},
    },
    "layout": {"nodes": {"1": {"pos": [0, 0], "size": [200, 80]}}, "groups": []},
}


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    library = tmp_path / "graphs"
    library.mkdir()
    (library / "add.json").write_text(json.dumps(DOCUMENT))
    (library / "bare_api.json").write_text(json.dumps(DOCUMENT["nodes"]))
    (library / "broken.json").write_text("{ not json")
    (library / ".hidden.json").write_text(json.dumps(DOCUMENT))
    (library / "notes.txt").write_text("not a graph")
    (tmp_path / "secret.json").write_text(json.dumps(DOCUMENT))
    settings.graphs_dir = library
    return settings


async def test_the_library_lists_every_graph_file_with_its_title_and_description(client: Any) -> None:
    response = await client.get("/graphs")
    assert response.status == 200
    entries = {entry["name"]: entry for entry in await response.json()}
    assert sorted(entries) == ["add.json", "bare_api.json", "broken.json"]
    assert entries["add.json"] == {
        "name": "add.json",
        "title": "Add two numbers",
        "description": "Adds 2 to 7.",
    }
    assert entries["bare_api.json"]["title"] == "bare_api"
    assert "not valid JSON" in entries["broken.json"]["error"]


async def test_a_library_graph_opens_as_a_depthgraph_document(client: Any) -> None:
    document = await (await client.get("/graphs/add.json")).json()
    assert document == DOCUMENT
    wrapped = await (await client.get("/api/graphs/bare_api.json")).json()
    assert wrapped["format"] == "depthgraph" and wrapped["nodes"] == DOCUMENT["nodes"]
    assert wrapped["title"] == "bare_api" and wrapped["layout"] == {}


@pytest.mark.parametrize("name", ["..%2Fsecret.json", ".hidden.json", "missing.json", "notes.txt"])
async def test_names_outside_the_library_are_not_found(client: Any, name: str) -> None:
    response = await client.get(f"/graphs/{name}")
    assert response.status == 404
    assert "/graphs lists" in (await response.json())["error"]["message"]


async def test_a_dropped_png_saved_by_save_image_gives_back_its_graph(client: Any) -> None:
    buffer = io.BytesIO()
    metadata = png_metadata({"prompt": DOCUMENT["nodes"], "workflow": DOCUMENT})
    Image.new("RGB", (8, 8)).save(buffer, "PNG", pnginfo=metadata)
    response = await client.post("/graph/read?filename=result_00001_.png", data=buffer.getvalue())
    assert response.status == 200
    assert await response.json() == DOCUMENT


async def test_a_dropped_editor_workflow_is_converted_keeping_node_positions(client: Any) -> None:
    workflow = {
        "nodes": [
            {"id": 1, "type": "Number", "pos": [10, 20], "size": {"0": 200, "1": 60}, "widgets_values": [7]},
            {
                "id": 2,
                "type": "Add",
                "pos": [300, 20],
                "widgets_values": [0, 2],
                "inputs": [{"name": "a", "link": 1}],
            },
        ],
        "links": [[1, 1, 0, 2, 0, "INT"]],
    }
    response = await client.post("/graph/read?filename=comfy.json", data=json.dumps(workflow).encode())
    document = await response.json()
    assert document["format"] == "depthgraph" and document["title"] == "comfy"
    assert document["nodes"]["2"]["inputs"] == {"a": ["1", 0], "b": 2}
    assert document["layout"]["nodes"] == {"1": {"pos": [10, 20], "size": [200, 60]}, "2": {"pos": [300, 20]}}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"{ nope", "drop.json is not valid JSON"),
        (b"\xff\xfe\x00garbage", "neither a PNG nor UTF-8 JSON"),
        (b"[1, 2]", "a graph is a JSON object"),
        (b'{"nodes": [{"id": 1, "type": "Mystery"}], "links": []}', "Mystery"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 20, "drop.json is a PNG without an embedded graph"),
    ],
)
async def test_a_dropped_file_that_holds_no_graph_gets_a_clear_error(
    client: Any, data: bytes, message: str
) -> None:
    response = await client.post("/graph/read?filename=../../drop.json", data=data)
    assert response.status == 400
    assert message in (await response.json())["error"]["message"]
    assert (await client.get("/queue")).status == 200  # the server is still up
