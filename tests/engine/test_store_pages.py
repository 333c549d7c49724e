"""Pages of the prompt store, as the jobs list asks for them: in the order prompts were queued, counted
in all, read a page at a time, and still right while results wait in memory on a full disk."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from depthgraph.engine.app import store as store_module
from depthgraph.engine.app.store import PromptStore, StoredPrompt, store_path

from tests.engine.test_store import fill_disk, free_disk

FINISHED = ("success", "error", "interrupted")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[PromptStore]:
    store = PromptStore(store_path(tmp_path / "data"))
    # 30 prompts queued in turn: every third still pending, the others finished one way or another.
    for index in range(30):
        prompt_id = f"prompt-{index:02d}"
        store.add(StoredPrompt(prompt_id, index, "pending", {"1": {"class_type": "Number", "inputs": {}}}))
        if index % 3:
            store.finish(prompt_id, FINISHED[index % 3], {"9": {"text": [f"result {index}"]}}, [])
    yield store
    store.close()


def ids(items: list[StoredPrompt]) -> list[str]:
    return [item.prompt_id for item in items]


@pytest.mark.parametrize("newest_first", [True, False])
@pytest.mark.parametrize(("limit", "offset"), [(5, 0), (5, 15), (7, 18), (None, 4), (50, 0)])
def test_a_page_is_that_slice_of_the_prompts_in_the_order_they_were_queued(
    store: PromptStore, newest_first: bool, limit: int | None, offset: int
) -> None:
    every = sorted(store.with_status(FINISHED), key=lambda item: item.created, reverse=newest_first)
    assert len(every) == 20
    page, total = store.page(FINISHED, newest_first, limit, offset)
    end = None if limit is None else offset + limit
    assert ids(page) == ids(every)[offset:end]
    assert total == 20
    if newest_first and offset == 0 and limit:
        assert page[0].prompt_id == "prompt-29" and page[0].outputs == {"9": {"text": ["result 29"]}}


def test_a_page_of_a_long_history_reads_only_its_own_prompts(
    store: PromptStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    read: list[Any] = []
    original = store_module.row_to_prompt
    monkeypatch.setattr(store_module, "row_to_prompt", lambda row: read.append(row[0]) or original(row))
    page, total = store.page(("pending", *FINISHED), True, 3, 0)
    assert ids(page) == ["prompt-29", "prompt-28", "prompt-27"] and total == 30
    assert read == ids(page)  # not the other 27 prompts' JSON


def test_results_waiting_in_memory_are_paged_with_their_new_status(store: PromptStore) -> None:
    fill_disk(store)
    store.set_status("prompt-27", "running")
    store.finish("prompt-27", "success", {"9": {"text": ["finished on a full disk " * 2000]}}, [])
    assert store.backlog_size == 1
    pending, pending_total = store.page(("pending",), True, 2, 0)
    assert ids(pending) == ["prompt-24", "prompt-21"] and pending_total == 9  # 27 is pending no more
    done, done_total = store.page(("success",), True, 1, 0)
    assert ids(done) == ["prompt-27"] and done_total == 1  # the others ended in error or interrupted
    free_disk(store)
    assert store.retry_backlog()
    assert ids(store.page(("success",), True, 1, 0)[0]) == ["prompt-27"]
