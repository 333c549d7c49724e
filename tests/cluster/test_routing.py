"""How the router picks a worker for a prompt: free slots first, then load (a worker holding the
prompt's outputs counting as two prompts less loaded, one saving half the work as one), then what is
left to run and the model, then the worker given a prompt longest ago."""

from __future__ import annotations

import threading
import time

from depthgraph.engine.cluster.routing import DEFAULT_SLOTS, MODEL_WEIGHT, Decision, Router, Work

PROMPT = ("s1", "s2", "s3", "s4")  # the result signatures of a prompt with four nodes


def loaded(router: Router, **loads: int) -> Router:
    """`router` with these workers running (or waiting on) that many prompts."""
    for name, load in loads.items():
        router.workers[name].load = load
    return router


def chosen(router: Router, signatures: tuple[str, ...] = PROMPT, models: tuple[str, ...] = ()) -> str:
    decision = router.choose(signatures, models)
    assert decision is not None
    return decision.worker


def test_with_no_overlap_anywhere_the_least_loaded_worker_is_chosen() -> None:
    router = loaded(Router(["a", "b", "c"]), a=1, b=0, c=1)
    decision = router.choose(PROMPT, ())
    assert decision is not None
    assert decision.worker == "b"
    assert decision.held == 0 and decision.results == 4 and not decision.model and decision.load == 0
    assert decision.reason.startswith("least loaded")


def test_two_idle_workers_take_turns_because_ties_go_to_the_one_given_a_prompt_longest_ago() -> None:
    router = Router(["a", "b"])
    given = []
    for _ in range(4):
        decision = router.acquire(PROMPT, ())
        assert decision is not None
        given.append(decision.worker)
        router.release(decision.worker)
    assert given == ["a", "b", "a", "b"]
    assert router.workers["a"].prompts == router.workers["b"].prompts == 2


def test_a_prompt_goes_to_the_worker_holding_most_of_its_results_at_equal_load() -> None:
    router = Router(["a", "b", "c"])
    router.update("b", held={"s1", "s2", "s3"}, models=())
    router.update("c", held={"s1"}, models=())
    decision = router.choose(PROMPT, ())
    assert decision is not None
    assert decision.worker == "b"
    assert (decision.held, decision.results) == (3, 4)
    assert "holds 3 of 4 results" in decision.reason


def test_a_worker_holding_half_the_results_wins_over_an_idle_cold_one_despite_a_running_prompt() -> None:
    router = loaded(Router(["warm", "cold"]), warm=1)
    router.update("warm", held={"s1", "s2", "unrelated"}, models=())
    decision = router.choose(PROMPT, ())
    assert decision is not None
    assert decision.worker == "warm"
    assert decision.load == 1
    assert decision.reason.endswith("(load 1)")


def test_a_warm_worker_with_no_free_slot_is_never_chosen() -> None:
    router = loaded(Router(["warm", "cold"], slots=2), warm=2)
    router.workers["warm"].owed = 10  # its prompts have real work to do
    router.update("warm", held=set(PROMPT), models=())
    assert chosen(router) == "cold"
    loaded(router, cold=2)
    assert router.choose(PROMPT, ()) is None


def test_a_warm_worker_counts_as_only_one_prompt_less_loaded() -> None:
    router = loaded(Router(["warm", "cold"], slots=3), warm=2)
    router.update("warm", held={"s1", "s2"}, models=())
    assert chosen(router) == "cold"


def test_a_worker_holding_every_output_waits_for_it_behind_two_prompts_rather_than_run_it_cold() -> None:
    router = loaded(Router(["warm", "cold"], slots=3), warm=2)
    router.update("warm", held=set(PROMPT), models=())
    decision = router.choose(PROMPT, ())
    assert decision is not None and decision.worker == "warm" and decision.to_run == 0
    loaded(router, warm=3)  # but never past its slots
    router.workers["warm"].owed = 10
    assert chosen(router) == "cold"


def test_a_prompt_waits_for_a_full_worker_holding_it_when_that_worker_has_only_cached_work() -> None:
    router = Router(["warm", "cold"], slots=1)
    router.update("warm", held=set(PROMPT), models=())
    first = router.acquire(PROMPT, ())
    assert first is not None and first.worker == "warm" and router.workers["warm"].owed == 0
    assert router.choose(PROMPT, ()) is None  # a repeat: wait the few ms rather than run it cold
    router.release("warm", first.to_run)
    again = router.choose(PROMPT, ())
    assert again is not None and again.worker == "warm"


def test_what_is_left_to_run_follows_the_graph_a_held_result_hides_what_it_was_made_from() -> None:
    # load -> depth -> sample(seed) -> save; two prompts differ only in their seed.
    work = Work(
        {"load": (), "depth": ("load",), "sample": ("depth",), "save": ("sample",)}, frozenset({"save"})
    )
    assert work.to_run(()) == 4
    assert work.to_run({"depth"}) == 2  # sample and save; the loader behind the depth map is not needed
    assert work.to_run({"save"}) == 0
    router = loaded(Router(["a", "b"]), a=1)
    router.update("a", held={"load", "depth"}, models=())  # another seed of the same image ran here
    decision = router.choose(work, ())
    assert decision is not None and decision.worker == "a" and decision.to_run == 2
    assert decision.reason.startswith("cache: holds 2 of 4 results, 2 to run")


def test_with_routing_blind_to_caches_the_least_loaded_worker_is_chosen() -> None:
    router = loaded(Router(["warm", "cold"]), warm=1)
    router.update("warm", held=set(PROMPT), models=())
    router.use_cache = False
    decision = router.choose(PROMPT, ())
    assert decision is not None and decision.worker == "cold" and decision.reason.startswith("least loaded")


def test_a_worker_holding_only_a_small_share_does_not_win_over_a_less_loaded_one() -> None:
    router = loaded(Router(["a", "b"]), a=1)
    router.update("a", held={"s1"}, models=())
    decision = router.choose(PROMPT, ())
    assert decision is not None
    assert decision.worker == "b"
    assert decision.held == 0


def test_the_worker_with_the_model_loaded_is_preferred_at_equal_load() -> None:
    router = Router(["a", "b"])
    router.update("b", held=(), models={"depth.safetensors"})
    decision = router.choose(PROMPT, ("depth.safetensors",))
    assert decision is not None
    assert decision.worker == "b"
    assert decision.model
    assert "model loaded" in decision.reason
    assert decision.to_json()["model_loaded"] is True


def test_the_worker_with_the_model_loaded_is_preferred_even_with_one_more_prompt() -> None:
    router = loaded(Router(["a", "b"]), b=1)
    router.update("b", held=(), models={"depth.safetensors", "other.safetensors"})
    decision = router.choose(PROMPT, ("depth.safetensors",))
    assert decision is not None
    assert decision.worker == "b"
    assert "model loaded" in decision.reason


def test_the_model_does_not_outweigh_load_when_every_worker_has_it() -> None:
    router = loaded(Router(["a", "b"]), a=1)
    router.update("a", held=(), models={"depth.safetensors"})
    router.update("b", held=(), models={"depth.safetensors"})
    decision = router.choose(PROMPT, ("depth.safetensors",))
    assert decision is not None
    assert decision.worker == "b"
    assert decision.model


def test_the_model_counts_as_model_weight_results_among_equally_loaded_workers() -> None:
    signatures = tuple(f"s{i}" for i in range(2 * MODEL_WEIGHT))
    router = Router(["results", "model"])
    router.update("model", held={"s0"}, models={"depth.safetensors"})  # worth 1 + MODEL_WEIGHT results
    # Both are warm (half the results, or the only one with the model), so what they hold decides.
    router.update("results", held=set(signatures[:MODEL_WEIGHT]), models=())
    assert chosen(router, signatures, ("depth.safetensors",)) == "model"
    router.update("results", held=set(signatures[: MODEL_WEIGHT + 2]), models=())
    assert chosen(router, signatures, ("depth.safetensors",)) == "results"


def test_a_lost_worker_is_never_chosen_and_its_holdings_are_forgotten() -> None:
    router = Router(["a", "b"])
    router.update("a", held=set(PROMPT), models={"depth.safetensors"})
    loaded(router, b=1)
    router.lost("a")
    assert router.down() == ["a"]
    assert router.workers["a"].held == set() and router.workers["a"].models == set()
    assert chosen(router) == "b"
    loaded(router, b=2)
    assert router.choose(PROMPT, ()) is None


def test_a_restored_worker_takes_prompts_again_but_holds_nothing() -> None:
    router = Router(["a", "b"])
    router.update("a", held=set(PROMPT), models=())
    router.lost("a")
    router.update("a", held=(), models=())  # what a restarted worker reports
    assert router.down() == []
    loaded(router, b=1)
    decision = router.choose(PROMPT, ())
    assert decision is not None
    assert decision.worker == "a"
    assert decision.held == 0


def test_an_update_from_a_lost_worker_brings_it_back_with_what_it_reports() -> None:
    router = loaded(Router(["a", "b"]), a=1)
    router.lost("a")
    router.update("a", held={"s1", "s2"}, models=())
    assert router.down() == []
    decision = router.choose(PROMPT, ())
    assert decision is not None
    assert decision.worker == "a"
    assert decision.held == 2


def test_forget_drops_every_workers_holdings() -> None:
    router = Router(["a", "b"])
    router.update("b", held=set(PROMPT), models={"depth.safetensors"})
    router.forget()
    assert router.workers["b"].held == set() and router.workers["b"].models == set()
    assert chosen(router, models=("depth.safetensors",)) == "a"


def test_an_avoided_worker_is_passed_over_while_another_can_take_the_prompt() -> None:
    router = Router(["a", "b"])
    router.update("a", held=set(PROMPT), models=())
    loaded(router, b=1)
    decision = router.choose(PROMPT, (), avoid=["a"])
    assert decision is not None
    assert decision.worker == "b"
    assert "only worker left" not in decision.reason


def test_an_avoided_worker_is_chosen_when_it_is_the_only_one_open() -> None:
    router = loaded(Router(["a", "b"]), b=2)
    decision = router.choose(PROMPT, (), avoid=["a"])
    assert decision is not None
    assert decision.worker == "a"
    assert "the only worker left after a loss" in decision.reason
    router.lost("b")
    loaded(router, b=0)
    decision = router.choose(PROMPT, (), avoid=["a"])
    assert decision is not None
    assert decision.worker == "a"


def test_acquire_takes_a_slot_and_release_gives_it_back() -> None:
    router = Router(["a"])
    first = router.acquire(PROMPT, ())
    second = router.acquire(PROMPT, ())
    assert first is not None and second is not None
    assert (first.load, second.load) == (0, 1)
    assert router.workers["a"].load == DEFAULT_SLOTS == 2
    assert router.choose(PROMPT, ()) is None
    router.release("a")
    assert router.workers["a"].load == 1
    assert chosen(router) == "a"
    router.release("a")
    router.release("a")  # one release too many does not make room for a third prompt
    assert router.workers["a"].load == 0


def test_acquire_gives_up_when_cancelled_while_every_worker_is_full() -> None:
    router = loaded(Router(["a", "b"], slots=1), a=1, b=1)
    asked = 0

    def cancelled() -> bool:
        nonlocal asked
        asked += 1
        return asked >= 2

    started = time.monotonic()
    assert router.acquire(PROMPT, (), cancelled=cancelled) is None
    assert asked == 2
    assert time.monotonic() - started < 2
    assert router.workers["a"].load == router.workers["b"].load == 1


def test_a_thread_waiting_in_acquire_gets_the_worker_another_thread_releases() -> None:
    router = Router(["a"], slots=1)
    assert router.acquire(PROMPT, ()) is not None
    waiting = threading.Event()
    stop = threading.Event()
    got: list[Decision | None] = []

    def cancelled() -> bool:
        waiting.set()  # it found no free worker and is about to wait
        return stop.is_set()

    thread = threading.Thread(target=lambda: got.append(router.acquire(PROMPT, (), cancelled=cancelled)))
    thread.start()
    try:
        assert waiting.wait(5)
        assert got == []
        router.release("a")
        thread.join(5)
    finally:
        stop.set()
        thread.join(5)
    assert len(got) == 1 and got[0] is not None
    assert got[0].worker == "a"
    assert got[0].load == 0
    assert router.workers["a"].load == 1


def test_a_decision_as_json_names_the_worker_the_reason_and_what_it_held() -> None:
    router = Router(["a"])
    router.update("a", held={"s1"}, models={"depth.safetensors"})
    decision = router.choose(PROMPT, ("depth.safetensors",))
    assert decision is not None
    assert decision.to_json() == {
        "worker": "a",
        "reason": decision.reason,
        "held": 1,
        "results": 4,
        "to_run": 3,
        "model_loaded": True,
        "load": 0,
    }
    assert decision.reason == "cache: holds 1 of 4 results, 3 to run; model loaded (load 0)"
