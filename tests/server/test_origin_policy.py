"""Pages on other origins cannot drive the server; the server's own pages and scripts can."""

from __future__ import annotations

import io
from typing import Any

import aiohttp
import pytest
from depthgraph.engine.app.cli import main
from depthgraph.engine.app.config import ConfigError, Settings, load_settings
from depthgraph.server_security import OriginPolicy
from PIL import Image

from tests.server.conftest import StartServer, chain, collect

EVIL = "http://evil.example"


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buffer, format="PNG")
    return buffer.getvalue()


def own_origin(client: Any) -> str:
    return f"http://127.0.0.1:{client.port}"


async def queue_remaining(client: Any) -> int:
    return (await (await client.get("/prompt")).json())["exec_info"]["queue_remaining"]


async def test_a_foreign_page_cannot_queue_a_prompt_with_a_simple_text_plain_request(client: Any) -> None:
    # text/plain needs no CORS preflight: the browser sends it, only the server can refuse it.
    body = '{"prompt": {"1": {"class_type": "Number", "inputs": {}}}}'
    response = await client.post("/prompt", data=body, headers={"Origin": EVIL, "Content-Type": "text/plain"})
    assert response.status == 403
    error = (await response.json())["error"]
    assert error["type"] == "forbidden_origin"
    assert "--allow-origin http://evil.example" in error["message"]
    assert await (await client.get("/history")).json() == {}


async def test_a_foreign_page_cannot_upload_interrupt_free_or_clear_history(client: Any) -> None:
    form = aiohttp.FormData()
    form.add_field("image", png(), filename="x.png", content_type="image/png")
    upload = await client.post("/upload/image", data=form, headers={"Origin": EVIL})
    assert upload.status == 403
    for path in ("/interrupt", "/free", "/history", "/queue", "/api/prompt"):
        response = await client.post(path, data="{}", headers={"Origin": EVIL, "Content-Type": "text/plain"})
        assert response.status == 403, path
    for path in ("/history", "/object_info", "/view?filename=example.jpg&type=input"):
        assert (await client.get(path, headers={"Origin": EVIL})).status == 403, path


async def test_a_sandboxed_page_with_a_null_origin_is_refused(client: Any) -> None:
    response = await client.post("/interrupt", headers={"Origin": "null"})
    assert response.status == 403


async def test_a_page_on_another_port_of_this_machine_is_another_origin(client: Any) -> None:
    response = await client.post("/free", headers={"Origin": f"http://127.0.0.1:{client.port + 1}"})
    assert response.status == 403


async def test_a_renamed_host_is_refused_even_without_an_origin(client: Any) -> None:
    # DNS rebinding: the page's own name, re-pointed at 127.0.0.1, arrives as the Host.
    response = await client.get("/history", headers={"Host": f"evil.example:{client.port}"})
    assert response.status == 403
    error = (await response.json())["error"]
    assert error["type"] == "forbidden_host" and "--allow-host evil.example" in error["message"]
    page = await client.get("/", headers={"Host": "evil.example"})
    assert page.status == 403


async def test_the_servers_own_pages_and_scripts_keep_working(client: Any) -> None:
    port = client.port
    for origin in (own_origin(client), f"http://localhost:{port}", f"http://[::1]:{port}"):
        response = await client.post(
            "/prompt", json={"prompt": chain(1)}, headers={"Origin": origin, "Host": f"localhost:{port}"}
        )
        assert response.status == 200, (origin, await response.text())
    scripted = await client.post("/prompt", json={"prompt": chain(2)})  # no Origin: a script
    assert scripted.status == 200
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", "192.168.1.20"):
        assert (await client.get("/prompt", headers={"Host": host})).status == 200, host


async def test_a_websocket_from_a_foreign_page_is_refused(client: Any) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect("/ws?clientId=victim", headers={"Origin": EVIL})
    assert refused.value.status == 403
    socket = await client.ws_connect("/ws?clientId=me", headers={"Origin": own_origin(client)})
    greeting = await socket.receive_json()
    assert greeting["type"] == "status" and greeting["data"]["sid"] == "me"
    await socket.close()


async def test_a_connected_client_id_cannot_be_taken_over_from_another_origin(
    start_server: StartServer, settings: Settings
) -> None:
    settings.allow_origins = ["http://localhost:5173"]
    client = await start_server()
    victim = await client.ws_connect("/ws?clientId=victim", headers={"Origin": own_origin(client)})
    await victim.receive_json()
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect("/ws?clientId=victim", headers={"Origin": "http://localhost:5173"})
    assert refused.value.status == 409
    with pytest.raises(aiohttp.WSServerHandshakeError):
        await client.ws_connect("/ws?clientId=victim")  # a script cannot take it either
    # The victim still gets its own events.
    response = await client.post("/prompt", json={"prompt": chain(4), "client_id": "victim"})
    prompt_id = (await response.json())["prompt_id"]
    messages = await collect(victim, prompt_id, timeout=20)
    assert any(m["type"] == "executed" for m in messages)
    # The same page (a reload) takes its own id over; the old socket is closed.
    again = await client.ws_connect("/ws?clientId=victim", headers={"Origin": own_origin(client)})
    assert (await again.receive_json())["data"]["sid"] == "victim"
    async for _ in victim:  # status messages sent before the takeover, then the end
        pass
    assert victim.closed
    await again.close()


async def test_an_allowed_origin_may_use_the_api_and_read_its_answers(
    start_server: StartServer, settings: Settings
) -> None:
    settings.allow_origins = ["http://localhost:5173"]
    client = await start_server()
    allowed = {"Origin": "http://localhost:5173"}
    preflight = await client.options(
        "/prompt",
        headers={
            **allowed,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert preflight.status == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "http://localhost:5173"
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    response = await client.post("/prompt", json={"prompt": chain(1)}, headers=allowed)
    assert response.status == 200
    assert response.headers["Access-Control-Allow-Origin"] == "http://localhost:5173"
    socket = await client.ws_connect("/ws?clientId=dev", headers=allowed)
    assert (await socket.receive_json())["type"] == "status"
    await socket.close()
    other = await client.post("/free", headers={"Origin": "http://localhost:5174"})
    assert other.status == 403


async def test_allowing_every_origin_and_an_extra_host_name(
    start_server: StartServer, settings: Settings
) -> None:
    settings.allow_origins, settings.allow_hosts = ["*"], ["studio.lan"]
    client = await start_server()
    response = await client.get("/prompt", headers={"Origin": EVIL, "Host": "studio.lan:8188"})
    assert response.status == 200 and response.headers["Access-Control-Allow-Origin"] == EVIL
    assert (await client.get("/prompt", headers={"Host": "other.lan"})).status == 403


def test_allowed_origins_are_checked_when_the_settings_are_read(tmp_path: Any) -> None:
    config = tmp_path / "depthgraph.yaml"
    config.write_text("allow_origins: [http://LocalHost:5173/, '*']\nallow_hosts: [Studio.lan]\n")
    settings = load_settings(config)
    assert settings.allow_origins == ["http://localhost:5173", "*"] and settings.allow_hosts == ["studio.lan"]
    policy = OriginPolicy.from_settings(settings.allow_origins, settings.allow_hosts)
    assert policy.allowed_origins == {"http://localhost:5173", "*"}
    config.write_text("allow_origins: [localhost:5173/app]\n")
    with pytest.raises(ConfigError, match="scheme://host"):
        load_settings(config)
    config.write_text("allow_origins: http://localhost\n")
    with pytest.raises(ConfigError, match="allow_origins must be a list"):
        load_settings(config)


def test_serve_refuses_an_allowed_origin_that_is_not_one(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit:
        main(["serve", "--allow-origin", "example.com/page"])
    assert exit.value.code == 2
    assert "scheme://host" in capsys.readouterr().err
