"""The editor in a real browser: Debian's Chromium driven by Playwright, against a real depthgraph server
on an ephemeral loopback port with the built-in nodes and the tiny model.

Every page records its console errors, uncaught exceptions and failed requests; a test fails on any it
did not expect. Pages reach only the test server: any other request is blocked, and so fails the test.
Screenshots of each state go to `test-artifacts/web/` (or `$DEPTHGRAPH_ARTIFACTS`).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from depthgraph.engine.app.config import Settings

from tests.live_server import Server, start_server

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("DEPTHGRAPH_ARTIFACTS", ROOT / "test-artifacts")) / "web"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-sync",
    "--no-first-run",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",  # software WebGL for the 3-D depth view
]


# Any request that is not to the test server's loopback address: the page must need nothing else.
LEAVES_LOOPBACK = re.compile(r"^(?!(https?|wss?)://127\.0\.0\.1[:/])[a-z-]+://")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "browser" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workspace = tmp_path_factory.mktemp("editor")
    shutil.copytree(ROOT / "input", workspace / "input")  # the files the library graphs name
    settings = Settings.under(workspace, device="cpu", graphs_dir=ROOT / "graphs")
    running = start_server(settings)
    yield running
    running.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing; .ci/run installs Debian's chromium package")
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


@dataclass
class Editor:
    """One browser page on the editor, with what went wrong on it."""

    page: Any
    server: Server
    name: str
    problems: list[str] = field(default_factory=list)
    expected: list[str] = field(default_factory=list)
    shots: int = 0

    def open(self) -> None:
        self.page.goto(self.server.url + "/")
        self.page.wait_for_selector("body[data-ready=true]", timeout=30_000)

    def testid(self, name: str) -> Any:
        return self.page.get_by_test_id(name)

    def screenshot(self, state: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.shots += 1
        path = ARTIFACTS / f"{self.name}-{self.shots:02d}-{state}.png"
        self.page.screenshot(path=path)
        return path

    def evaluate(self, script: str, argument: Any = None) -> Any:
        return self.page.evaluate(script, argument)

    def prompt(self) -> dict[str, Any]:
        """The API form the editor would queue now (what Export API writes)."""
        with self.page.expect_download() as download:
            self.testid("export-button").click()
        return dict(json.loads(Path(download.value.path()).read_text()))

    def open_library_graph(self, name: str) -> None:
        self.testid("graph-menu-button").click()
        self.page.locator(f'[data-testid=graph-item][data-name="{name}"]').click()
        self.page.wait_for_function(
            "n => window.depthgraph.graph._nodes.length === n", arg=self.library_size(name)
        )

    def library_size(self, name: str) -> int:
        return len(json.loads((ROOT / "graphs" / name).read_text())["nodes"])

    def set_widget(self, node_id: int, name: str, value: Any) -> None:
        self.evaluate(
            """([id, name, value]) => {
                const node = window.depthgraph.graph.getNodeById(id);
                node.widgets.find((w) => w.name === name).value = value;
            }""",
            [node_id, name, value],
        )

    def drop_file(self, data: bytes, filename: str, mime: str, selector: str = ".canvas-area") -> None:
        """Drop a file on the page as a user dragging it from their desktop would."""
        transfer = self.page.evaluate_handle(
            """([encoded, name, type]) => {
                const bytes = Uint8Array.from(atob(encoded), (c) => c.charCodeAt(0));
                const transfer = new DataTransfer();
                transfer.items.add(new File([bytes], name, { type }));
                return transfer;
            }""",
            [base64.b64encode(data).decode(), filename, mime],
        )
        box = self.page.locator(selector).bounding_box()
        self.page.dispatch_event(
            selector,
            "drop",
            {"dataTransfer": transfer, "clientX": box["x"] + 200, "clientY": box["y"] + 150},
        )

    def expect_problem(self, fragment: str) -> None:
        """A console message or failed request containing `fragment` is part of the test."""
        self.expected.append(fragment)

    def unexpected_problems(self) -> list[str]:
        return [p for p in self.problems if not any(fragment in p for fragment in self.expected)]


@pytest.fixture
def editor(browser: Any, server: Server, request: pytest.FixtureRequest) -> Iterator[Editor]:
    context = browser.new_context(viewport={"width": 1400, "height": 850}, accept_downloads=True)
    # A blocked request fails, and the test with it (see `requestfailed` below).
    context.route(LEAVES_LOOPBACK, lambda route: route.abort("blockedbyclient"))
    page = context.new_page()
    page.set_default_timeout(30_000)
    opened = Editor(page, server, request.node.name)
    page.on(
        "console",
        lambda m: m.type in ("error", "warning") and opened.problems.append(f"console {m.type}: {m.text}"),
    )
    page.on("pageerror", lambda error: opened.problems.append(f"page error: {error}"))
    page.on("requestfailed", lambda r: opened.problems.append(f"request failed: {r.url} {r.failure}"))
    page.on(
        "response",
        lambda r: r.status >= 400 and opened.problems.append(f"HTTP {r.status}: {r.request.method} {r.url}"),
    )
    opened.open()
    yield opened
    context.close()
    assert not opened.unexpected_problems(), opened.unexpected_problems()
