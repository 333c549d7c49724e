"""The server is safe to leave running: malformed, oversized and hostile requests to any route (and to
the same route under /api) get a 4xx answer with a JSON error, never a server failure, never a
traceback, and the server goes on answering. One server serves the whole module."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from depthgraph.engine.app.config import Settings
from depthgraph.server import API_ROUTES, create_app
from depthgraph.server_security import INTERNAL_ERRORS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.server import hostile
from tests.server.conftest import ROOT, make_engine

pytestmark = pytest.mark.asyncio(loop_scope="module")
PREFIXES = ("", "/api")
CASES = hostile.catalogue(API_ROUTES)
TIMEOUT = aiohttp.ClientTimeout(total=30)
EXAMPLES = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    root: Path = tmp_path_factory.mktemp("hostile")
    (root / "input").mkdir()
    (root / "input" / "example.jpg").write_bytes((ROOT / "input" / "example.jpg").read_bytes())
    config = Settings.under(root, device="cpu", max_upload_bytes=200_000)
    # No prompt threads: nothing sent here should ever be queued, let alone run.
    app = create_app(config, make_engine(config), start_worker=False)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def send(client: TestClient, case: hostile.Case, prefix: str = "") -> tuple[int, str]:  # type: ignore[type-arg]
    headers = {"Content-Type": case.content_type} if case.content_type else {}
    async with client.request(
        case.method,
        prefix + case.path,
        data=case.body,
        headers=headers,
        params=list(case.params),
        timeout=TIMEOUT,
    ) as response:
        return response.status, await response.text(errors="replace")


async def post_json_text(client: TestClient, path: str, data: bytes) -> tuple[int, str]:  # type: ignore[type-arg]
    case = hostile.Case(path, "POST", path, data)
    return await send(client, case)


def error_of(status: int, text: str) -> dict[str, Any]:
    """The JSON error of an answer, checked for the shape every client may rely on."""
    assert "Traceback" not in text and 'File "' not in text, text[:500]
    try:
        body = json.loads(text)
    except json.JSONDecodeError:
        raise AssertionError(f"{status} answer is not JSON: {text[:300]!r}") from None
    assert isinstance(body, dict) and isinstance(body.get("error"), dict), f"{status}: {text[:300]}"
    error = body["error"]
    assert isinstance(error.get("type"), str) and error["type"], f"{status}: {text[:300]}"
    assert isinstance(error.get("message"), str) and error["message"], f"{status}: {text[:300]}"
    return error


async def assert_still_up(client: TestClient) -> None:  # type: ignore[type-arg]
    async with client.get("/prompt", timeout=TIMEOUT) as response:
        assert response.status == 200
        assert "queue_remaining" in (await response.json())["exec_info"]


def assert_refused(status: int, text: str) -> None:
    assert 400 <= status < 500, f"expected a 4xx answer, got {status}: {text[:300]}"
    error_of(status, text)


@pytest.mark.parametrize("prefix", PREFIXES, ids=["plain", "api"])
@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
async def test_a_bad_request_gets_a_json_error_and_the_server_keeps_answering(
    client: TestClient,  # type: ignore[type-arg]
    case: hostile.Case,
    prefix: str,
) -> None:
    status, text = await send(client, case, prefix)
    if case.expect == hostile.REFUSED:
        assert_refused(status, text)
    else:
        assert status < 500, f"{status}: {text[:300]}"
        assert "Traceback" not in text and 'File "' not in text
        if status >= 400:
            error_of(status, text)
    await assert_still_up(client)


async def test_the_catalogue_walks_every_route_with_enough_cases() -> None:
    assert {hostile.fill(path) for _, path, _ in API_ROUTES} <= {case.path for case in CASES}
    assert len(CASES) * len(PREFIXES) >= 150


@EXAMPLES
@given(body=hostile.prompt_like_bodies(), prefix=st.sampled_from(PREFIXES))
async def test_any_json_that_is_no_runnable_prompt_is_refused(
    client: TestClient,  # type: ignore[type-arg]
    body: Any,
    prefix: str,
) -> None:
    assert_refused(*await post_json_text(client, prefix + "/prompt", json.dumps(body).encode()))
    await assert_still_up(client)


@EXAMPLES
@given(data=st.binary(max_size=200), prefix=st.sampled_from(PREFIXES))
async def test_any_bytes_that_are_no_prompt_are_refused(
    client: TestClient,  # type: ignore[type-arg]
    data: bytes,
    prefix: str,
) -> None:
    assert_refused(*await post_json_text(client, prefix + "/prompt", data))
    await assert_still_up(client)


@EXAMPLES
@given(body=hostile.near_valid_prompt_bodies(), prefix=st.sampled_from(PREFIXES))
async def test_a_prompt_with_a_wrong_type_in_any_position_is_refused(
    client: TestClient,  # type: ignore[type-arg]
    body: dict[str, Any],
    prefix: str,
) -> None:
    assert_refused(*await post_json_text(client, prefix + "/prompt", json.dumps(body).encode()))
    await assert_still_up(client)


@EXAMPLES
@given(body=hostile.workflow_like_bodies(), prefix=st.sampled_from(PREFIXES))
async def test_any_json_that_is_no_workflow_is_refused_by_the_converter(
    client: TestClient,  # type: ignore[type-arg]
    body: Any,
    prefix: str,
) -> None:
    assert_refused(*await post_json_text(client, prefix + "/workflow/convert", json.dumps(body).encode()))
    await assert_still_up(client)


@EXAMPLES
@given(workflow=hostile.near_valid_workflows(), prefix=st.sampled_from(PREFIXES))
async def test_a_workflow_with_a_wrong_type_in_any_position_is_refused_with_a_message(
    client: TestClient,  # type: ignore[type-arg]
    workflow: dict[str, Any],
    prefix: str,
) -> None:
    status, text = await post_json_text(client, prefix + "/workflow/convert", json.dumps(workflow).encode())
    assert_refused(status, text)
    error = error_of(status, text)
    if error["type"] == "invalid_workflow":  # not refused earlier, as a body that is no JSON we read
        assert "node" in error["message"] or "link" in error["message"], error["message"]
    await assert_still_up(client)


async def test_the_valid_workflow_of_the_strategies_converts(client: TestClient) -> None:  # type: ignore[type-arg]
    """The near-valid workflows are refused for their one wrong part, not for the rest."""
    status, text = await post_json_text(
        client, "/workflow/convert", hostile.text_of(hostile.valid_workflow())
    )
    assert status == 200, text[:300]
    assert json.loads(text)["3"]["inputs"] == {"value": ["2", 0]}


async def test_the_valid_prompt_of_the_strategies_passes_validation(client: TestClient) -> None:  # type: ignore[type-arg]
    """The near-valid prompts are refused for their one wrong part (checked on a copy that is queued)."""
    body = {
        "prompt": hostile.chain(),
        "client_id": "hostile",
        "extra_data": {},
        "partial_execution_targets": ["3"],
    }
    status, text = await post_json_text(client, "/prompt", json.dumps(body).encode())
    assert status == 200, text[:300]
    async with client.post("/queue", json={"clear": True}, timeout=TIMEOUT) as response:
        assert response.status == 200


async def test_a_chain_of_5000_reroutes_converts_to_its_source(client: TestClient) -> None:  # type: ignore[type-arg]
    status, text = await post_json_text(
        client, "/workflow/convert", hostile.text_of(hostile.reroute_chain(5000))
    )
    assert status == 200, text[:300]
    assert json.loads(text)["2"]["inputs"] == {"value": ["1", 0]}


async def test_a_dropped_workflow_with_impossible_positions_opens_without_them(
    client: TestClient,  # type: ignore[type-arg]
) -> None:
    workflow = hostile.valid_workflow()
    workflow["nodes"][0]["pos"] = [10**400, 0]  # a whole number past any float
    workflow["nodes"][1]["pos"] = [True, 5]
    workflow["nodes"][2]["pos"] = [30, 40]
    text = json.dumps(workflow).replace("[true, 5]", "[NaN, 5]")
    async with client.post("/graph/read?filename=w.json", data=text.encode(), timeout=TIMEOUT) as response:
        assert response.status == 200, (await response.text())[:300]
        document = await response.json()
    assert document["layout"]["nodes"] == {"3": {"pos": [30.0, 40.0]}}
    assert document["nodes"]["2"]["inputs"] == {"a": ["1", 0], "b": 2}


async def test_no_bad_request_reached_the_servers_catch_all(client: TestClient) -> None:  # type: ignore[type-arg]
    """Runs last: every refusal above came from a check, none from an unexpected exception."""
    assert client.app is not None
    assert client.app[INTERNAL_ERRORS].count == 0
