"""Cyclic collection paused around large bookkeeping and large requests, and resumed after."""

import asyncio
import gc
import threading

import pytest
from depthgraph.engine.core.gc_pause import gc_paused, in_thread_paused, thaw


@pytest.fixture(autouse=True)
def nothing_left_frozen():
    yield
    thaw()
    assert gc.isenabled()


def test_collection_is_paused_inside_and_resumes_after():
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0, "a plain pause freezes nothing"


def test_collection_resumes_only_when_the_last_of_overlapping_pauses_ends():
    inside = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with gc_paused():
            inside.set()
            release.wait(5)

    other = threading.Thread(target=hold)
    other.start()
    assert inside.wait(5)
    with gc_paused():
        pass
    assert not gc.isenabled(), "the other thread's pause has not ended"
    release.set()
    other.join(5)
    assert gc.isenabled()


def test_a_freezing_pause_leaves_what_it_built_out_of_the_next_passes_until_thawed():
    with gc_paused(freeze=True):
        built = [{"inputs": {"value": [str(index), 0]}} for index in range(1000)]
    assert gc.get_freeze_count() >= len(built)
    thaw()
    assert gc.get_freeze_count() == 0


def test_a_failing_call_in_a_thread_still_resumes_collection():
    def fail() -> None:
        raise ValueError("bad body")

    with pytest.raises(ValueError, match="bad body"):
        asyncio.run(in_thread_paused(fail))
    assert gc.isenabled()
    assert asyncio.run(in_thread_paused(sum, [1, 2, 3])) == 6


def test_collection_switched_off_by_the_caller_stays_off_and_nothing_is_frozen():
    gc.disable()
    try:
        with gc_paused(freeze=True):
            pass
        assert not gc.isenabled()
        assert gc.get_freeze_count() == 0
    finally:
        gc.enable()
