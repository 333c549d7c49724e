"""What survives a restart, what uploads and /view refuse, and many clients at once."""

from __future__ import annotations

import asyncio
import io
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp import FormData
from depthgraph.engine.app.config import Settings
from depthgraph.engine.app.store import PromptStore, StoredPrompt
from PIL import Image

from tests.server.conftest import StartServer, chain, collect


async def wait_for_history(client: Any, count: int, timeout: float = 30) -> dict[str, Any]:
    async def poll() -> dict[str, Any]:
        while True:
            history = await (await client.get("/history")).json()
            if len(history) >= count:
                return history
            await asyncio.sleep(0.05)

    return await asyncio.wait_for(poll(), timeout)


async def test_pending_prompts_run_after_a_restart(start_server: StartServer) -> None:
    stopped = await start_server(start_worker=False)  # accepts prompts but never runs them
    ids = []
    for value in (1, 2, 3):
        response = await stopped.post("/prompt", json={"prompt": chain(value)})
        ids.append((await response.json())["prompt_id"])
    queue = await (await stopped.get("/queue")).json()
    assert [item[1] for item in queue["queue_pending"]] == ids
    await stopped.close()

    restarted = await start_server()
    history = await wait_for_history(restarted, 3)
    assert set(history) == set(ids)
    assert all(entry["status"]["status_str"] == "success" for entry in history.values())
    assert [history[prompt_id]["outputs"]["3"]["text"] for prompt_id in ids] == [["2"], ["3"], ["4"]]


async def test_a_prompt_running_when_the_server_died_is_marked_failed(
    start_server: StartServer, settings: Settings
) -> None:
    store = PromptStore(settings.data_dir / "depthgraph.sqlite3")
    store.add(StoredPrompt("lost-one", 1, "running", chain(1), {"client_id": None}))
    store.close()
    client = await start_server()
    entry = (await (await client.get("/history/lost-one")).json())["lost-one"]
    assert entry["status"]["status_str"] == "error" and not entry["status"]["completed"]
    assert "stopped while this prompt was running" in json_text(entry["status"]["messages"])


def json_text(value: Any) -> str:
    import json

    return json.dumps(value)


async def test_a_store_from_a_newer_version_is_refused(settings: Settings) -> None:
    import sqlite3

    from depthgraph.engine.app.store import StoreError

    settings.data_dir.mkdir(parents=True)
    database = sqlite3.connect(settings.data_dir / "depthgraph.sqlite3")
    database.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    database.execute("INSERT INTO schema_version VALUES (99)")
    database.commit()
    database.close()
    with pytest.raises(StoreError, match="newer depthgraph"):
        PromptStore(settings.data_dir / "depthgraph.sqlite3")


@pytest.mark.parametrize(
    "params",
    [
        {"filename": "../secret.txt"},
        {"filename": "secret.txt", "subfolder": ".."},
        {"filename": "/etc/passwd"},
        {"filename": "..\\secret.txt"},
        {"filename": "secret.txt", "type": "secrets"},
        {"filename": "a\x00b.png"},
        {"filename": "link.txt"},
    ],
)
async def test_view_never_serves_a_file_outside_its_folder(
    client: Any, settings: Settings, params: dict[str, str]
) -> None:
    secret = settings.output_dir.parent / "secret.txt"
    secret.write_text("top secret")
    settings.output_dir.mkdir(exist_ok=True)
    link = settings.output_dir / "link.txt"
    if not link.exists():
        link.symlink_to(secret)
    response = await client.get("/view", params=params)
    assert response.status in (400, 404)
    assert b"top secret" not in await response.read()


async def test_encoded_separators_in_view_are_refused(client: Any, settings: Settings) -> None:
    (settings.output_dir.parent / "secret.txt").write_text("top secret")
    response = await client.get("/view?filename=..%2Fsecret.txt&type=output")
    assert response.status == 400
    assert b"top secret" not in await response.read()


def png_bytes(color: str = "red", size: tuple[int, int] = (8, 8)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def upload_form(data: bytes, filename: str = "photo.png", **fields: str) -> FormData:
    form = FormData()
    form.add_field("image", data, filename=filename, content_type="image/png")
    for key, value in fields.items():
        form.add_field(key, value)
    return form


async def test_uploads_are_deduplicated_by_content_and_never_overwrite(
    client: Any, settings: Settings
) -> None:
    first = await (await client.post("/upload/image", data=upload_form(png_bytes("red")))).json()
    assert first == {"name": "photo.png", "subfolder": "", "type": "input"}
    same = await (await client.post("/upload/image", data=upload_form(png_bytes("red")))).json()
    assert same["name"] == "photo.png"
    other = await (await client.post("/upload/image", data=upload_form(png_bytes("blue")))).json()
    assert other["name"] == "photo (1).png"
    with Image.open(settings.input_dir / "photo.png") as kept:
        assert kept.getpixel((0, 0)) == (255, 0, 0)
    nested = await (
        await client.post("/api/upload/image", data=upload_form(png_bytes(), subfolder="shots"))
    ).json()
    assert (settings.input_dir / "shots" / nested["name"]).is_file()


@pytest.mark.parametrize(
    ("filename", "fields"),
    [
        ("../../evil.png", {}),
        ("photo.png", {"subfolder": "../.."}),
        ("photo.png", {"subfolder": "/tmp"}),
        ("photo.png", {"type": "output"}),
    ],
)
async def test_uploads_never_write_outside_their_folder(
    client: Any, settings: Settings, filename: str, fields: dict[str, str]
) -> None:
    before = {path for path in settings.input_dir.parent.rglob("*")}
    response = await client.post("/upload/image", data=upload_form(png_bytes(), filename=filename, **fields))
    after = {path for path in settings.input_dir.parent.rglob("*")} - before
    assert all(settings.input_dir in path.parents or path == settings.input_dir for path in after)
    if response.status == 200:  # a path in the file name is dropped, the name is kept
        assert (await response.json())["name"] == "evil.png"
    else:
        assert response.status == 400


async def test_oversized_and_non_image_uploads_are_refused(client: Any, settings: Settings) -> None:
    huge = await client.post("/upload/image", data=upload_form(os.urandom(300_000)))
    assert huge.status == 413
    text = await client.post("/upload/image", data=upload_form(b"just some text", filename="notes.png"))
    assert text.status == 400 and "not an image" in (await text.json())["error"]["message"]
    missing = await client.post("/upload/image", data=FormData({"subfolder": "x"}))
    assert missing.status == 400
    assert sorted(path.name for path in settings.input_dir.iterdir()) == ["example.jpg"]


async def test_a_mask_upload_becomes_the_alpha_of_its_image(client: Any, settings: Settings) -> None:
    await client.post("/upload/image", data=upload_form(png_bytes("green")))
    mask = io.BytesIO()
    Image.new("RGBA", (8, 8), (0, 0, 0, 0)).save(mask, format="PNG")
    reference = '{"filename": "photo.png", "subfolder": "", "type": "input"}'
    form = upload_form(mask.getvalue(), filename="photo-mask.png", original_ref=reference)
    result = await (await client.post("/upload/mask", data=form)).json()
    with Image.open(settings.input_dir / result["name"]) as masked:
        assert masked.mode == "RGBA" and masked.getpixel((3, 3)) == (0, 128, 0, 0)


async def test_a_mask_on_a_photo_taken_sideways_lines_up_with_the_upright_photo(
    client: Any, settings: Settings
) -> None:
    """A phone JPEG stored sideways with an orientation tag: the browser shows it upright and the mask
    is painted on that, so the masked copy is upright too (as LoadImage reads the original)."""
    stored = Image.new("RGB", (12, 6), (200, 0, 0))  # 12 wide as stored, 6 wide shown
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to show
    stored.save(settings.input_dir / "phone.jpg", exif=exif)
    mask = Image.new("RGBA", (6, 12), (0, 0, 0, 255))
    mask.putpixel((0, 0), (0, 0, 0, 0))  # painted: the top-left corner of the upright photo
    buffer = io.BytesIO()
    mask.save(buffer, format="PNG")
    reference = '{"filename": "phone.jpg", "subfolder": "", "type": "input"}'
    form = upload_form(buffer.getvalue(), filename="phone-mask.png", original_ref=reference)
    result = await (await client.post("/upload/mask", data=form)).json()
    with Image.open(settings.input_dir / result["name"]) as masked:
        assert masked.size == (6, 12)
        assert masked.getpixel((0, 0))[3] == 0 and masked.getpixel((5, 11))[3] == 255


async def test_twenty_clients_with_ten_prompts_each_lose_nothing_and_see_only_their_own(client: Any) -> None:
    sockets = {
        f"client-{index}": await client.ws_connect(f"/ws?clientId=client-{index}") for index in range(20)
    }
    mine: dict[str, list[str]] = {name: [] for name in sockets}
    for round_number in range(10):
        for index, name in enumerate(sockets):
            body = {"prompt": chain(index * 100 + round_number), "client_id": name}
            mine[name].append((await (await client.post("/prompt", json=body)).json())["prompt_id"])

    async def watch(name: str) -> set[str]:
        seen: set[str] = set()
        finished: set[str] = set()
        async for message in sockets[name]:
            if message.type.name != "TEXT":
                continue
            data = message.json()
            if data["type"] == "status":
                continue
            seen.add(data["data"]["prompt_id"])
            if data["type"] == "executing" and data["data"]["node"] is None:
                finished.add(data["data"]["prompt_id"])
                if finished == set(mine[name]):
                    break
        return seen

    results = await asyncio.wait_for(asyncio.gather(*(watch(name) for name in sockets)), 120)
    for name, seen in zip(sockets, results, strict=True):
        assert seen == set(mine[name])
    history = await (await client.get("/history")).json()
    assert len(history) == 200 and all(
        entry["status"]["status_str"] == "success" for entry in history.values()
    )
    for socket in sockets.values():
        await socket.close()


async def test_a_reconnecting_client_gets_its_later_events(client: Any) -> None:
    import time

    from tests.engine import node_pack

    node_pack.ON_STEP.append(lambda step: time.sleep(0.01))
    first = await client.ws_connect("/ws?clientId=phone")
    slow = {
        "1": {"class_type": "Steps", "inputs": {"steps": 40}},
        "2": {"class_type": "Show", "inputs": {"value": ["1", 0]}},
    }
    prompt_id = (await (await client.post("/prompt", json={"prompt": slow, "client_id": "phone"})).json())[
        "prompt_id"
    ]
    await first.close()
    second = await client.ws_connect("/ws?clientId=phone")
    messages = await collect(second, prompt_id)
    assert messages[-2]["type"] == "execution_success"
    await second.close()


async def test_front_jumps_the_queue_and_targets_limit_what_runs(start_server: StartServer) -> None:
    stopped = await start_server(start_worker=False)
    first = await (await stopped.post("/prompt", json={"prompt": chain(1)})).json()
    urgent = await (await stopped.post("/prompt", json={"prompt": chain(2), "front": True})).json()
    pending = (await (await stopped.get("/queue")).json())["queue_pending"]
    assert [item[1] for item in pending] == [urgent["prompt_id"], first["prompt_id"]]
    await stopped.close()

    client = await start_server()
    two_outputs = {**chain(3), "4": {"class_type": "Show", "inputs": {"value": ["1", 0]}}}
    body = {"prompt": two_outputs, "partial_execution_targets": ["4"], "prompt_id": "only-four"}
    await client.post("/prompt", json=body)
    history = await wait_for_history(client, 3)
    assert set(history["only-four"]["outputs"]) == {"4"}


def test_depthgraph_serve_starts_a_server_on_loopback(tmp_path: Path) -> None:
    import json
    import shutil
    import socket
    import subprocess
    import time
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (tmp_path / "input").mkdir()
    shutil.copy(Path(__file__).resolve().parents[2] / "input" / "example.jpg", tmp_path / "input")
    server = subprocess.Popen(
        [sys.executable, "-m", "depthgraph.engine", "serve", "--port", str(port), "--data-dir", "data"],
        cwd=tmp_path,
        env={**os.environ, "DEPTHGRAPH_HOME": str(tmp_path)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                urllib.request.urlopen(base + "/prompt", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        graph = json.loads(
            (Path(__file__).resolve().parents[2] / "graphs" / "invert_and_scale.json").read_text()
        )
        request = urllib.request.Request(
            base + "/prompt", data=json.dumps({"prompt": graph["nodes"]}).encode()
        )
        prompt_id = json.loads(urllib.request.urlopen(request, timeout=10).read())["prompt_id"]
        for _ in range(200):
            history = json.loads(urllib.request.urlopen(f"{base}/history/{prompt_id}", timeout=5).read())
            if history:
                break
            time.sleep(0.1)
        assert history[prompt_id]["status"]["status_str"] == "success"
        assert (tmp_path / "data" / "depthgraph.sqlite3").is_file()

        # The example client: queue with an override, follow the events, download the result.
        root = Path(__file__).resolve().parents[2]
        command = [
            sys.executable,
            str(root / "examples" / "api_client.py"),
            str(root / "graphs" / "invert_and_scale.json"),
        ]
        command += ["--server", base, "--set", "2.width=128", "--out", str(tmp_path / "downloads")]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        (saved,) = done.stdout.split()
        with Image.open(saved) as picture:
            assert picture.size == (128, 384)
    finally:
        server.terminate()
        server.wait(timeout=30)
