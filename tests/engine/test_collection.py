"""Cyclic collection held off while a large request is worked on, and resumed after."""

import asyncio
import gc
import threading

import pytest

from engine import collection
from engine.collection import collection_deferred, in_thread_deferred, thaw


def test_collection_is_held_off_inside_and_resumes_after():
    assert gc.isenabled()
    with collection_deferred():
        assert not gc.isenabled()
    assert gc.isenabled()
    thaw()
    assert gc.get_freeze_count() == 0


def test_collection_resumes_only_when_the_last_of_overlapping_holders_is_done():
    inside = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with collection_deferred():
            inside.set()
            release.wait(5)

    other = threading.Thread(target=hold)
    other.start()
    assert inside.wait(5)
    with collection_deferred():
        pass
    assert not gc.isenabled(), "the other holder is still working"
    release.set()
    other.join(5)
    assert gc.isenabled()
    thaw()


def test_what_was_alive_is_frozen_until_thawed_so_no_pass_walks_it_at_once():
    with collection_deferred():
        built = [{"inputs": {"value": [str(index), 0]}} for index in range(1000)]
    assert gc.get_freeze_count() >= len(built)
    thaw()
    assert gc.get_freeze_count() == 0
    assert not collection._frozen


def test_a_failing_call_in_a_thread_still_resumes_collection():
    def fail() -> None:
        raise ValueError("bad body")

    with pytest.raises(ValueError, match="bad body"):
        asyncio.run(in_thread_deferred(fail))
    assert gc.isenabled()
    assert asyncio.run(in_thread_deferred(sum, [1, 2, 3])) == 6
    thaw()


def test_collection_left_off_by_the_caller_is_not_switched_on():
    gc.disable()
    try:
        with collection_deferred():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
    thaw()
