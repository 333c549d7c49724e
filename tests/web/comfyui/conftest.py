"""ComfyUI's official front end (the comfyui-frontend-package wheel, unchanged) in Chromium against a
real depthgraph server started with `frontend="comfyui"`.

Each page records what went wrong on it: uncaught exceptions, and every request to the server that got
an error status or failed. A test fails on any it did not expect. Requests that leave 127.0.0.1 (the
front end asks api.comfy.org for release notes) are blocked and are no failure of the server.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from depthgraph.engine.app.config import Settings

from tests.live_server import Server, start_server
from tests.web.conftest import ARTIFACTS, ROOT

pytest.importorskip("comfyui_frontend_package", reason="pip install 'depthgraph[comfyui]'")

# ComfyUI answers 404 for a user file that does not exist yet, and the front end asks for these at
# start to learn there are none; every other error status from the server is a failure.
ABSENT_USER_FILES = ("/api/userdata/comfy.templates.json", "/api/userdata/workflows%2F.index.json")
BOOTED = """() => window.app && window.app.graph && window.app.canvas
    && Object.keys(window.LiteGraph?.registered_node_types ?? {}).length > 0"""


def comfy_settings(workspace: Path) -> Settings:
    if not (workspace / "input").exists():
        shutil.copytree(ROOT / "input", workspace / "input")
    return Settings.under(workspace, device="cpu", graphs_dir=ROOT / "graphs", frontend="comfyui")


@pytest.fixture(scope="module")
def comfy_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("comfyui")


@pytest.fixture(scope="module")
def comfy_server(comfy_workspace: Path) -> Iterator[Server]:
    running = start_server(comfy_settings(comfy_workspace))
    yield running
    running.stop()


@dataclass
class FrontEnd:
    """One browser page on the official front end, with what went wrong on it."""

    page: Any
    server: Server
    name: str
    problems: list[str] = field(default_factory=list)
    shots: int = 0

    def open(self, url: str | None = None) -> None:
        self.page.goto((url or self.server.url) + "/")
        self.page.wait_for_function(BOOTED, timeout=60_000)

    def close_dialogs(self) -> None:
        """The first start shows the template browser; Escape closes it as a user would."""
        for _ in range(3):
            if not self.page.locator(".p-dialog-mask").count():
                return
            self.page.keyboard.press("Escape")
            self.page.wait_for_timeout(300)

    def evaluate(self, script: str, argument: Any = None) -> Any:
        return self.page.evaluate(script, argument)

    def screenshot(self, state: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.shots += 1
        path = ARTIFACTS / f"comfyui-{self.name}-{self.shots:02d}-{state}.png"
        self.page.screenshot(path=path)
        return path

    def prompt(self) -> dict[str, Any]:
        """What the front end would queue now: its own graphToPrompt, in API form."""
        return dict(self.evaluate("async () => (await window.app.graphToPrompt()).output"))


def watch(page: Any, server_url: str, problems: list[str]) -> None:
    def on_response(response: Any) -> None:
        if response.url.startswith(server_url) and response.status >= 400:
            path = response.url[len(server_url) :]
            if not (response.status == 404 and path in ABSENT_USER_FILES):
                problems.append(f"HTTP {response.status}: {response.request.method} {path}")

    def on_failed(request: Any) -> None:
        # ERR_ABORTED after the answer arrived is the front end dropping a body it does not read.
        if request.url.startswith(server_url) and request.response() is None:
            problems.append(f"request failed: {request.method} {request.url} {request.failure}")

    page.route(
        "**/*", lambda route: route.continue_() if route.request.url.startswith(server_url) else route.abort()
    )
    page.on("response", on_response)
    page.on("requestfailed", on_failed)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    # Failed loads are judged above by their URL (the blocked outside ones are no failure here).
    page.on(
        "console",
        lambda message: (
            message.type == "error"
            and not message.text.startswith("Failed to load resource")
            and problems.append(f"console error: {message.text[:500]}")
        ),
    )


@pytest.fixture
def frontend(browser: Any, comfy_server: Server, request: pytest.FixtureRequest) -> Iterator[FrontEnd]:
    context = browser.new_context(viewport={"width": 1400, "height": 850}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(30_000)
    opened = FrontEnd(page, comfy_server, request.node.name)
    watch(page, comfy_server.url, opened.problems)
    opened.open()
    yield opened
    context.close()
    assert not opened.problems, opened.problems
