"""The routes ComfyUI's front end uses besides the prompt API: its user, settings and files (kept in the
data folder, traversal-proof and size-limited), the jobs list its queue panel reads, `progress_state`,
the graph library as templates, and the scripts it loads as extensions."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from depthgraph.engine.app.config import ConfigError, Settings, load_settings
from depthgraph.engine.app.store import StoredPrompt
from depthgraph.engine.formats.graph_library import list_library, read_library_graph
from depthgraph.engine.formats.workflow_convert import workflow_to_prompt
from depthgraph.server import create_app
from depthgraph.server_frontend import FrontendMissing
from depthgraph.server_jobs import job_entry
from PIL import Image

from tests.server.conftest import ROOT, StartServer, chain, collect, make_engine, run_prompt


def user_file(name: str) -> str:
    return "/api/userdata/" + quote(name, safe="")


# --- users and settings ----------------------------------------------------------------------------
async def test_one_user_so_the_front_end_shows_no_login(client: Any) -> None:
    users = await (await client.get("/api/users")).json()
    assert "users" not in users and users["storage"] == "server"


async def test_settings_persist_in_the_data_folder_across_a_restart(
    start_server: StartServer, aiohttp_client: Any, settings: Settings
) -> None:
    client = await start_server(start_worker=False)
    assert await (await client.get("/api/settings")).json() == {}
    # The front end sends settings without a Content-Type header.
    response = await client.post("/api/settings", data=json.dumps({"Comfy.ColorPalette": "light"}))
    assert response.status == 200
    await client.post("/api/settings/Comfy.Locale", data=json.dumps("fr"))
    await client.post("/api/settings/Comfy.Sidebar.Size", data="0.25")
    await client.close()

    again = await aiohttp_client(create_app(settings, make_engine(settings), start_worker=False))
    stored = await (await again.get("/api/settings")).json()
    assert stored == {"Comfy.ColorPalette": "light", "Comfy.Locale": "fr", "Comfy.Sidebar.Size": 0.25}
    assert await (await again.get("/api/settings/Comfy.Locale")).json() == "fr"
    assert await (await again.get("/api/settings/Comfy.Unset")).json() is None
    saved = settings.data_dir / "users" / "default" / "comfy.settings.json"
    assert json.loads(saved.read_text())["Comfy.Locale"] == "fr"


async def test_settings_written_at_once_all_arrive(client: Any) -> None:
    await asyncio.gather(*(client.post(f"/api/settings/k{index}", data=str(index)) for index in range(25)))
    stored = await (await client.get("/api/settings")).json()
    assert stored == {f"k{index}": index for index in range(25)}


async def test_a_settings_body_that_is_no_object_is_refused_and_nothing_changes(client: Any) -> None:
    await client.post("/api/settings", data=json.dumps({"a": 1}))
    for body in ("[1, 2]", '"text"', "{nope"):
        response = await client.post("/api/settings", data=body)
        assert response.status == 400
        assert (await response.json())["error"]["message"]
    assert await (await client.get("/api/settings")).json() == {"a": 1}


# --- user files ------------------------------------------------------------------------------------
async def test_a_saved_workflow_is_listed_read_moved_and_deleted(client: Any, settings: Settings) -> None:
    workflow = json.dumps({"nodes": [], "links": [], "version": 0.4})
    saved = await client.post(
        user_file("workflows/knight.json") + "?overwrite=false&full_info=true", data=workflow
    )
    assert saved.status == 200
    info = await saved.json()
    assert info["path"] == "workflows/knight.json" and info["size"] == len(workflow)
    assert isinstance(info["modified"], int) and info["modified"] > 1_600_000_000_000  # milliseconds

    again = await client.post(user_file("workflows/knight.json") + "?overwrite=false", data="{}")
    assert again.status == 409, "overwrite=false keeps the file that is there"
    assert await (await client.get(user_file("workflows/knight.json"))).text() == workflow

    listing = await client.get(
        "/api/userdata", params={"dir": "workflows", "recurse": "true", "full_info": "true"}
    )
    assert [entry["path"] for entry in await listing.json()] == ["knight.json"]
    names = await (await client.get("/api/userdata", params={"dir": "workflows", "split": "true"})).json()
    assert names == [["knight.json", "knight.json"]]

    moved = await client.post(
        user_file("workflows/knight.json") + "/move/" + quote("workflows/old/knight.json", safe="")
    )
    assert moved.status == 200 and await moved.json() == "workflows/old/knight.json"
    assert (await client.get(user_file("workflows/knight.json"))).status == 404
    deleted = await client.delete(user_file("workflows/old/knight.json"))
    assert deleted.status == 204, "the front end requires exactly 204"
    assert not any((settings.data_dir / "users" / "default" / "workflows").rglob("*.json"))


async def test_a_folder_with_nothing_saved_yet_lists_empty(client: Any) -> None:
    listing = await client.get(
        "/api/userdata", params={"dir": "subgraphs", "recurse": "true", "full_info": "true"}
    )
    assert listing.status == 200 and await listing.json() == []


async def test_user_css_is_empty_until_the_user_writes_one(client: Any) -> None:
    response = await client.get("/api/userdata/user.css")
    assert response.status == 200 and response.content_type == "text/css" and await response.text() == ""
    await client.post("/api/userdata/user.css", data="body { color: red }")
    assert await (await client.get("/api/userdata/user.css")).text() == "body { color: red }"


@pytest.mark.parametrize(
    "name",
    [
        "../escape.json",
        "workflows/../../escape.json",
        "/tmp/escape.json",
        "%2e%2e%2fescape.json",
        "a\x00.json",
    ],
)
async def test_no_name_writes_outside_the_users_folder(client: Any, settings: Settings, name: str) -> None:
    response = await client.post(user_file(name), data="{}")
    assert 400 <= response.status < 500
    assert (await response.json())["error"]["message"]
    assert not (settings.data_dir / "users" / "escape.json").exists()
    assert not (settings.data_dir / "escape.json").exists()


async def test_a_symlink_out_of_the_users_folder_is_not_followed(
    client: Any, settings: Settings, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.json"
    secret.write_text('{"secret": true}')
    root = settings.data_dir / "users" / "default"
    root.mkdir(parents=True)
    (root / "link.json").symlink_to(secret)
    assert (await client.get("/api/userdata/link.json")).status == 403
    assert (await client.post("/api/userdata/link.json", data="{}")).status == 403
    assert secret.read_text() == '{"secret": true}'


async def test_a_user_file_over_the_limit_is_refused_and_nothing_is_written(
    start_server: StartServer, settings: Settings
) -> None:
    settings.max_userdata_bytes = 1000
    client = await start_server(start_worker=False)
    response = await client.post(user_file("workflows/big.json"), data=json.dumps({"x": "y" * 2000}))
    assert response.status == 413
    assert "max_userdata_bytes" in (await response.json())["error"]["message"]
    assert not (settings.data_dir / "users" / "default" / "workflows" / "big.json").exists()
    ok = await client.post(user_file("workflows/small.json"), data=json.dumps({"x": "y"}))
    assert ok.status == 200


async def test_a_json_file_that_is_not_json_is_refused(client: Any) -> None:
    response = await client.post(user_file("workflows/broken.json"), data="{ not json")
    assert response.status == 400
    assert "not JSON" in (await response.json())["error"]["message"]


# --- jobs ------------------------------------------------------------------------------------------
async def test_jobs_list_finished_prompts_as_the_queue_panel_reads_them(client: Any) -> None:
    done, _ = await run_prompt(client, chain(3))
    failed, _ = await run_prompt(
        client,
        {
            "1": {"class_type": "Fail", "inputs": {"value": -1}},
            "2": {"class_type": "Show", "inputs": {"value": ["1", 0]}},
        },
    )
    listing = await (
        await client.get(
            "/api/jobs", params={"status": "completed,failed,cancelled", "limit": "64", "offset": "0"}
        )
    ).json()
    jobs = {job["id"]: job for job in listing["jobs"]}
    assert set(jobs) == {done, failed}
    assert listing["pagination"] == {"offset": 0, "limit": 64, "total": 2, "has_more": False}
    assert jobs[done]["status"] == "completed" and jobs[failed]["status"] == "failed"
    for job in jobs.values():
        assert isinstance(job["create_time"], int) and job["create_time"] > 1_600_000_000_000
        assert job["create_time"] <= job["execution_start_time"] <= job["execution_end_time"]
        assert None not in job.values(), "ComfyUI leaves out keys it has no value for"
    error = jobs[failed]["execution_error"]
    assert error["node_type"] == "Fail" and "negative value -1" in error["exception_message"]
    assert all(isinstance(line, str) for line in error["traceback"])
    newest_first = [job["id"] for job in listing["jobs"]]
    assert newest_first == [failed, done]

    page = await (
        await client.get("/api/jobs", params={"limit": "1", "offset": "1", "sort_order": "asc"})
    ).json()
    assert [job["id"] for job in page["jobs"]] == [failed] and page["pagination"]["has_more"] is False
    assert (await (await client.get("/api/jobs", params={"status": "pending"})).json())["jobs"] == []

    detail = await (await client.get(f"/api/jobs/{done}")).json()
    assert detail["workflow"]["prompt"]["3"]["class_type"] == "Show"
    assert detail["execution_status"]["status_str"] == "success"
    assert (await client.get("/api/jobs/no-such-job")).status == 404


async def test_a_waiting_job_is_listed_and_can_be_cancelled(client: Any) -> None:
    socket = await client.ws_connect("/ws?clientId=canceller")
    slow = {
        "1": {"class_type": "Steps", "inputs": {"steps": 400, "delay": 0.02}},
        "2": {"class_type": "Show", "inputs": {"value": ["1", 0]}},
    }
    running = (await (await client.post("/prompt", json={"prompt": slow, "client_id": "canceller"})).json())[
        "prompt_id"
    ]
    waiting = (await (await client.post("/prompt", json={"prompt": chain(41)})).json())["prompt_id"]
    queue = await (await client.get("/api/jobs", params={"status": "in_progress,pending"})).json()
    assert {job["id"]: job["status"] for job in queue["jobs"]}.get(waiting) == "pending"

    cancelled = await client.post(f"/api/jobs/{waiting}/cancel")
    assert await cancelled.json() == {"cancelled": True}
    assert await (await client.post(f"/api/jobs/{waiting}/cancel")).json() == {"cancelled": False}
    stopped = await client.post("/api/jobs/cancel", json={"job_ids": [running]})
    assert await stopped.json() == {"cancelled": True}
    await collect(socket, running)
    await socket.close()
    finished = await (await client.get(f"/api/jobs/{running}")).json()
    assert finished["status"] == "cancelled"
    assert (await client.get(f"/api/jobs/{waiting}")).status == 404, "a cancelled waiting job is gone"


def test_a_job_shows_its_first_saved_image_as_its_preview() -> None:
    outputs = {
        "4": {"images": [{"filename": "step.png", "subfolder": "", "type": "temp"}]},
        "9": {"images": [{"filename": "out_00001.png", "subfolder": "", "type": "output"}], "text": ["hi"]},
    }
    item = StoredPrompt("p", 3.0, "success", {}, {}, outputs, [], created=1000.0, finished=1002.5)
    entry = job_entry(item)
    assert entry["outputs_count"] == 2 and entry["previewable_outputs_count"] == 2
    assert entry["preview_output"] == {
        "filename": "out_00001.png",
        "subfolder": "",
        "type": "output",
        "nodeId": "9",
        "mediaType": "images",
    }
    assert entry["create_time"] == 1_000_000 and entry["execution_end_time"] == 1_002_500


# --- progress_state --------------------------------------------------------------------------------
async def test_progress_state_lists_every_started_node_until_all_are_finished(client: Any) -> None:
    prompt = {
        "1": {"class_type": "Steps", "inputs": {"steps": 3}},
        "2": {"class_type": "Show", "inputs": {"value": ["1", 0]}},
    }
    prompt_id, messages = await run_prompt(client, prompt)
    states = [m["data"] for m in messages if m["type"] == "progress_state"]
    assert states and all(state["prompt_id"] == prompt_id for state in states)
    running = [
        state["nodes"]["1"] for state in states if state["nodes"].get("1", {}).get("state") == "running"
    ]
    assert [(node["value"], node["max"]) for node in running] == [(0, 1), (1, 3), (2, 3), (3, 3)]
    last = states[-1]["nodes"]
    assert {node_id: node["state"] for node_id, node in last.items()} == {"1": "finished", "2": "finished"}
    assert last["1"]["display_node_id"] == "1" and last["1"]["parent_node_id"] is None

    _, again = await run_prompt(client, prompt)  # all cached now
    cached = [m["data"]["nodes"] for m in again if m["type"] == "progress_state"]
    assert cached and {node["state"] for node in cached[-1].values()} == {"finished"} and len(cached[-1]) == 2


# --- templates, extensions, features ---------------------------------------------------------------
async def test_the_graph_library_is_offered_as_templates_with_titles_and_pictures(
    client: Any, start_server: StartServer, settings: Settings
) -> None:
    settings.graphs_dir = ROOT / "graphs"
    client = await start_server(start_worker=False)
    (category,) = await (await client.get("/templates/index.json")).json()
    entries = list_library(ROOT / "graphs")
    assert [(t["name"], t["title"]) for t in category["templates"]] == [
        (e.name.removesuffix(".json"), e.title) for e in entries
    ]
    for template in category["templates"]:
        workflow = await (await client.get(f"/templates/{template['name']}.json")).json()
        prompt = read_library_graph(ROOT / "graphs", template["name"] + ".json").prompt
        converted = workflow_to_prompt(workflow, make_engine(settings).registry)
        assert {k: (v["class_type"], v["inputs"]) for k, v in converted.items()} == {
            k: (v["class_type"], v["inputs"]) for k, v in prompt.items()
        }
        picture = await client.get(f"/templates/{template['name']}-1.png")
        assert Image.open(io.BytesIO(await picture.read())).size == (400, 300)
    assert (await client.get("/templates/no-such-graph.json")).status == 404


async def test_extensions_list_depthgraphs_scripts_for_the_front_end(client: Any) -> None:
    listed = await (await client.get("/api/extensions")).json()
    ours = sorted(f"/extensions/depthgraph/{path.name}" for path in (ROOT / "web" / "comfyui").glob("*.js"))
    assert ours and [url for url in listed if url.startswith("/extensions/depthgraph/")] == ours
    for url in ours:
        response = await client.get(url)
        assert response.status == 200 and "javascript" in response.content_type


async def test_features_tell_the_front_end_what_this_server_does(client: Any, settings: Settings) -> None:
    features = await (await client.get("/api/features")).json()
    assert features["assets"] is False and features["supports_preview_metadata"] is False
    assert features["max_upload_size"] == settings.max_upload_bytes
    assert (await (await client.get("/api/i18n")).json())["en"]["commands"]  # the extension's words
    assert await (await client.get("/api/global_subgraphs")).json() == {}
    (folder,) = await (await client.get("/api/experiment/models")).json()
    assert folder["name"] == "checkpoints" and ".safetensors" in folder["extensions"]


# --- choosing the front end ------------------------------------------------------------------------
async def test_the_official_front_end_is_served_at_the_root_with_ours_beside_it(
    aiohttp_client: Any, settings: Settings
) -> None:
    pytest.importorskip("comfyui_frontend_package")
    settings.frontend = "comfyui"
    client = await aiohttp_client(create_app(settings, make_engine(settings), start_worker=False))
    page = await (await client.get("/")).text()
    assert "<title>ComfyUI</title>" in page
    assert "depthgraph" in await (await client.get("/depthgraph/")).text()
    listed = await (await client.get("/api/extensions")).json()
    assert any(url.startswith("/extensions/core/") for url in listed)
    assert (await client.get(listed[0])).status == 200


def test_without_the_package_the_server_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "comfyui_frontend_package" else real(name, *a),
    )
    settings.frontend = "comfyui"
    with pytest.raises(FrontendMissing, match=r"pip install 'depthgraph\[comfyui\]'"):
        create_app(settings, make_engine(settings), start_worker=False)


def test_the_front_end_is_chosen_in_the_settings_file(tmp_path: Path) -> None:
    config = tmp_path / "depthgraph.yaml"
    config.write_text("frontend: comfyui\n")
    assert load_settings(config).frontend == "comfyui"
    config.write_text("frontend: litegraph\n")
    with pytest.raises(ConfigError, match="frontend must be one of depthgraph, comfyui"):
        load_settings(config)
