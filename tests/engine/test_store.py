"""The prompt store on a damaged file and on a full disk: refused with what to do, repaired without
losing what can be read, and never losing a finished result.

A full disk is emulated with sqlite's own limit, `PRAGMA max_page_count`, on the store's connection:
the next write that needs a new page fails with a genuine SQLITE_FULL ("database or disk is full"),
and raising the limit again is space coming back. Results here are large enough to need new pages.
One test also fills a real (small tmpfs) disk, where mounting one is allowed.
"""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import sqlite3
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from depthgraph.engine.app.cli import main
from depthgraph.engine.app.store import (
    PromptStore,
    StoreDamaged,
    StoredPrompt,
    StoreError,
    StoreUnavailable,
    store_path,
)
from depthgraph.engine.app.store_repair import repair_store

LARGE = "depth " * 4000  # 24 kB: needs new pages, as a full disk refuses them
NOISE = random.Random(8188)  # the same damage on every run


def fill_disk(store: PromptStore) -> None:
    """From now on the store's file cannot grow: sqlite answers SQLITE_FULL."""
    with store._lock:
        pages = store._connection.execute("PRAGMA page_count").fetchone()[0]
        store._connection.execute(f"PRAGMA max_page_count = {pages}")


def free_disk(store: PromptStore) -> None:
    with store._lock:
        store._connection.execute("PRAGMA max_page_count = 1073741823")


def stored_on_disk(path: Path, prompt_id: str) -> tuple[str, dict[str, Any]] | None:
    """A prompt's status and outputs as the file holds them, read by another connection."""
    connection = sqlite3.connect(path)
    try:
        row = connection.execute(
            "SELECT status, outputs FROM prompts WHERE prompt_id = ?", (prompt_id,)
        ).fetchone()
    finally:
        connection.close()
    return None if row is None else (row[0], json.loads(row[1]))


def prompt(prompt_id: str, number: float = 1, status: str = "pending") -> StoredPrompt:
    return StoredPrompt(prompt_id, number, status, {"1": {"class_type": "Number", "inputs": {"value": 1}}})


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return store_path(tmp_path / "data")


@pytest.fixture
def store(path: Path) -> Iterator[PromptStore]:
    store = PromptStore(path)
    yield store
    store.close()


def filled_store(path: Path, count: int = 200) -> bytes:
    """A closed store holding `count` prompts (about 5 a page); its bytes."""
    store = PromptStore(path)
    for index in range(count):
        store.add(prompt(f"prompt-{index}", index))
        store.finish(f"prompt-{index}", "success", {"3": {"text": [f"result {index}" * 40]}}, [])
    store.close()
    return path.read_bytes()


# --- a damaged file -----------------------------------------------------------------------------------
def cut_in_half(data: bytes) -> bytes:
    return data[: len(data) // 2]


def garbage(data: bytes) -> bytes:
    return NOISE.randbytes(len(data))


def garbage_after_the_header(data: bytes) -> bytes:
    return data[:100] + NOISE.randbytes(8192) + data[8292:]


def cut_inside_the_header(data: bytes) -> bytes:
    return data[:60]


DAMAGES = [cut_in_half, garbage, garbage_after_the_header, cut_inside_the_header]


@pytest.mark.parametrize("damage", DAMAGES, ids=lambda damage: damage.__name__)
def test_a_damaged_store_is_refused_with_what_to_do_and_left_as_it_was(path: Path, damage: Any) -> None:
    broken = damage(filled_store(path))
    path.write_bytes(broken)
    with pytest.raises(StoreDamaged) as refused:
        PromptStore(path)
    message = str(refused.value)
    assert str(path) in message
    assert f"depthgraph store repair --data-dir {path.parent}" in message
    assert f"mv {path} {path}.broken" in message
    assert "--data-dir elsewhere" in message
    assert path.read_bytes() == broken


def test_a_folder_where_the_store_should_be_is_refused(path: Path) -> None:
    path.mkdir(parents=True)
    with pytest.raises(StoreDamaged, match="is a folder") as refused:
        PromptStore(path)
    assert f"mv {path} {path}.broken" in str(refused.value)


def test_a_sqlite_file_of_another_program_is_refused(path: Path) -> None:
    path.parent.mkdir()
    other = sqlite3.connect(path)
    other.execute("CREATE TABLE prompts (id INTEGER, words TEXT)")
    other.commit()
    other.close()
    with pytest.raises(StoreDamaged, match="not depthgraph's store"):
        PromptStore(path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_a_store_this_user_cannot_read_is_refused_with_the_fix(path: Path) -> None:
    filled_store(path, 1)
    path.chmod(0)
    try:
        with pytest.raises(StoreError, match=r"cannot be read and written by this user.*chmod u\+rw"):
            PromptStore(path)
    finally:
        path.chmod(0o644)


def test_a_store_that_cannot_be_opened_at_all_is_refused(path: Path) -> None:
    path.parent.mkdir()
    path.symlink_to(path)  # a loop: no one, not even root, can open it
    with pytest.raises(StoreError, match="cannot be opened") as refused:
        PromptStore(path)
    assert "--data-dir elsewhere" in str(refused.value)


def test_a_data_folder_on_a_full_disk_is_refused_with_the_reason(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_space(self: Path, *args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))

    monkeypatch.setattr(Path, "mkdir", no_space)
    with pytest.raises(StoreError, match="cannot create its data folder") as refused:
        PromptStore(path)
    assert "is full" in str(refused.value) and "free some space" in str(refused.value)


# --- repairing it -------------------------------------------------------------------------------------
def test_repair_keeps_the_damaged_file_and_every_prompt_that_can_be_read(path: Path) -> None:
    filled_store(path)
    original = PromptStore(path)
    before = {item.prompt_id: item for item in original.history()}
    original.close()
    broken = cut_in_half(path.read_bytes())
    path.write_bytes(broken)

    repair = repair_store(path)

    assert repair.moved_to is not None and repair.moved_to.read_bytes() == broken
    assert repair.moved_to.parent == path.parent and "broken" in repair.moved_to.name
    repaired = PromptStore(path)
    kept = {item.prompt_id: item for item in repaired.history()}
    repaired.close()
    assert 0 < len(kept) == repair.kept < len(before)
    for prompt_id, item in kept.items():
        assert (item.status, item.outputs, item.prompt) == (
            before[prompt_id].status,
            before[prompt_id].outputs,
            before[prompt_id].prompt,
        )


def test_a_damaged_store_keeps_its_journal_and_repair_reads_the_prompts_in_it(
    path: Path, tmp_path: Path
) -> None:
    filled_store(path)
    running = PromptStore(path)
    for index in range(200, 210):  # newer prompts, only in the journal (-wal) while it runs
        running.add(prompt(f"prompt-{index}", index))
    copy = store_path(tmp_path / "copy")  # the files as a crash would leave them
    copy.parent.mkdir()
    for companion in ("", "-wal"):
        shutil.copyfile(f"{path}{companion}", f"{copy}{companion}")
    running.close()
    data = copy.read_bytes()
    # Pages 9 and 10 (of 4 kB): prompts' rows (pages 3-7 are the tables' and indexes' roots).
    copy.write_bytes(data[: 8 * 4096] + NOISE.randbytes(8192) + data[10 * 4096 :])
    files = {companion: Path(f"{copy}{companion}").read_bytes() for companion in ("", "-wal")}

    with pytest.raises(StoreDamaged):
        PromptStore(copy)
    assert {companion: Path(f"{copy}{companion}").read_bytes() for companion in files} == files

    repair = repair_store(copy)
    assert repair.moved_to is not None and Path(f"{repair.moved_to}-wal").read_bytes() == files["-wal"]
    repaired = PromptStore(copy)
    assert repaired.get("prompt-209") is not None  # only ever in the journal
    assert 10 < repair.kept < 210  # and what the main file still holds
    repaired.close()


def test_repair_moves_the_journal_files_aside_with_the_damaged_file(path: Path) -> None:
    filled_store(path, 3)
    path.write_bytes(garbage(path.read_bytes()))
    Path(f"{path}-wal").write_bytes(b"an old journal")
    repair = repair_store(path)
    assert repair.moved_to is not None
    assert Path(f"{repair.moved_to}-wal").read_bytes() == b"an old journal"
    assert not Path(f"{path}-wal").exists() or Path(f"{path}-wal").read_bytes() != b"an old journal"
    assert PromptStore(path).history() == []


def test_repair_of_a_sound_store_changes_nothing(path: Path) -> None:
    data = filled_store(path, 5)
    assert repair_store(path).problem is None
    assert path.read_bytes() == data
    assert [entry.name for entry in path.parent.iterdir()] == [path.name]


def test_the_store_commands_check_and_repair(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    filled_store(path, 40)
    assert main(["store", "check", "--data-dir", str(path.parent)]) == 0
    assert "is sound; it holds 40 prompt(s), 40 success" in capsys.readouterr().out

    path.write_bytes(garbage_after_the_header(path.read_bytes()))
    assert main(["store", "check", "--data-dir", str(path.parent)]) == 1
    assert "depthgraph store repair" in capsys.readouterr().err

    assert main(["store", "repair", "--data-dir", str(path.parent)]) == 0
    said = capsys.readouterr().out
    assert "was damaged" in said and "moved it aside, as it was" in said
    assert main(["store", "check", "--data-dir", str(path.parent)]) == 0
    assert "is sound" in capsys.readouterr().out


# --- a full disk ----------------------------------------------------------------------------------------
def test_a_result_finished_while_the_disk_is_full_is_shown_and_written_when_space_returns(
    store: PromptStore, path: Path
) -> None:
    store.add(prompt("done"))
    store.set_status("done", "running")
    fill_disk(store)

    store.finish("done", "success", {"3": {"text": [LARGE]}}, [["execution_success", {}]])

    assert stored_on_disk(path, "done") == ("running", {})  # the disk really refused it
    shown = store.get("done")
    assert shown is not None and shown.status == "success" and shown.outputs["3"]["text"] == [LARGE]
    assert [item.prompt_id for item in store.history()] == ["done"]
    assert store.problem is not None and "is full" in store.problem and str(path) in store.problem
    assert store.backlog_size == 1
    assert not store.retry_backlog()  # still full

    free_disk(store)
    assert store.retry_backlog()
    assert store.problem is None and store.backlog_size == 0
    store.close()
    restarted = PromptStore(path)
    assert restarted.recover() == []
    again = restarted.get("done")
    restarted.close()
    assert again is not None and again.status == "success" and again.outputs["3"]["text"] == [LARGE]


def test_closing_the_store_writes_what_waits_once_there_is_space(path: Path) -> None:
    store = PromptStore(path)
    store.add(prompt("done"))
    fill_disk(store)
    store.finish("done", "error", {"3": {"text": [LARGE]}}, [])
    free_disk(store)
    store.close()
    assert stored_on_disk(path, "done") == ("error", {"3": {"text": [LARGE]}})


def test_new_prompts_are_refused_while_results_wait_and_taken_once_space_returns(
    store: PromptStore, path: Path
) -> None:
    store.add(prompt("done"))
    fill_disk(store)
    store.finish("done", "success", {"3": {"text": [LARGE]}}, [])
    with pytest.raises(StoreUnavailable) as refused:
        store.add(prompt("next", 2))  # small enough to fit: refused, the older result goes first
    assert "is full" in refused.value.reason
    assert store.get("next") is None

    free_disk(store)
    store.add(prompt("next", 2))
    assert stored_on_disk(path, "done") == ("success", {"3": {"text": [LARGE]}})
    assert stored_on_disk(path, "next") == ("pending", {})
    assert store.problem is None


def test_a_prompt_too_large_for_a_full_disk_is_refused_and_nothing_of_it_kept(store: PromptStore) -> None:
    fill_disk(store)
    large = StoredPrompt("large", 1, "pending", {"1": {"class_type": "Text", "inputs": {"text": LARGE}}})
    with pytest.raises(StoreUnavailable, match="is full"):
        store.add(large)
    assert store.get("large") is None and not store.exists("large")
    free_disk(store)
    store.add(large)
    assert store.exists("large")


def test_an_older_waiting_state_never_overwrites_a_newer_one(store: PromptStore, path: Path) -> None:
    store.add(prompt("first"))
    store.add(prompt("second", 2))
    fill_disk(store)
    store.finish("first", "error", {"old": {"text": [LARGE]}}, [])
    store.finish("second", "interrupted", {"old": {"text": [LARGE]}}, [])
    store.finish("second", "success", {"new": {"text": [LARGE]}}, [])  # also waits
    free_disk(store)
    store.finish("first", "success", {"new": {"text": ["small"]}}, [])  # written at once
    assert store.retry_backlog()
    store.close()
    assert stored_on_disk(path, "first") == ("success", {"new": {"text": ["small"]}})
    assert stored_on_disk(path, "second") == ("success", {"new": {"text": [LARGE]}})


def test_a_read_only_store_keeps_results_waiting_with_the_reason(store: PromptStore, path: Path) -> None:
    store.add(prompt("done"))
    with store._lock:
        store._connection.execute("PRAGMA query_only = ON")  # sqlite refuses writes as SQLITE_READONLY
    store.finish("done", "success", {"3": {"text": ["small"]}}, [])
    assert store.problem is not None and "read-only" in store.problem
    assert store.get("done") is not None and store.get("done").status == "success"  # type: ignore[union-attr]
    with store._lock:
        store._connection.execute("PRAGMA query_only = OFF")
    assert store.retry_backlog()
    assert stored_on_disk(path, "done") == ("success", {"3": {"text": ["small"]}})


def test_deleting_or_clearing_waiting_results_removes_them_for_good(store: PromptStore, path: Path) -> None:
    for name in ("kept", "deleted", "cleared"):
        store.add(prompt(name))
    fill_disk(store)
    for name in ("deleted", "cleared"):
        store.finish(name, "success", {"3": {"text": [LARGE]}}, [])
    store.delete(["deleted"], finished_only=True)
    assert store.get("deleted") is None
    store.clear()
    assert store.get("cleared") is None and store.get("kept") is not None
    assert store.history() == [] and store.backlog_size == 0
    free_disk(store)
    store.close()
    assert stored_on_disk(path, "deleted") is None and stored_on_disk(path, "cleared") is None
    assert stored_on_disk(path, "kept") == ("pending", {})


def test_prompt_threads_finishing_on_a_full_disk_lose_nothing(store: PromptStore, path: Path) -> None:
    names = [f"prompt-{thread}-{index}" for thread in range(6) for index in range(8)]
    for number, name in enumerate(names):
        store.add(prompt(name, number))
    fill_disk(store)
    seen: list[int] = []
    stop = threading.Event()

    def watch() -> None:  # the event loop answering /history meanwhile
        while not stop.is_set():
            seen.append(len(store.history()))

    def finish(thread: int) -> None:
        for index in range(8):
            name = f"prompt-{thread}-{index}"
            store.set_status(name, "running")
            store.finish(name, "success", {"3": {"text": [f"{thread}-{index}" + LARGE]}}, [])

    watcher = threading.Thread(target=watch)
    watcher.start()
    workers = [threading.Thread(target=finish, args=(thread,)) for thread in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    stop.set()
    watcher.join()
    assert len(store.history()) == len(names) and seen == sorted(seen)
    free_disk(store)
    assert store.retry_backlog()
    store.close()
    for name in names:
        thread_index = name.removeprefix("prompt-")
        assert stored_on_disk(path, name) == ("success", {"3": {"text": [thread_index + LARGE]}})


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 2 MiB disk (tmpfs), where this machine lets the tests mount one."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a small disk needs root and mount")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small disk here: {mounted.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "--lazy", str(mount_point)], check=False)


def fill(disk: Path) -> Path:
    filler = disk / "filler"
    descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(descriptor, bytes(65536))
    except OSError as error:
        assert error.errno == errno.ENOSPC
    finally:
        os.close(descriptor)
    return filler


def test_on_a_really_full_disk_results_wait_and_a_restart_still_serves_the_history(small_disk: Path) -> None:
    path = store_path(small_disk / "data")
    store = PromptStore(path)
    store.add(prompt("done"))
    store.add(prompt("cut-off", 2))
    store.set_status("cut-off", "running")
    filler = fill(small_disk)

    store.set_status("done", "running")
    store.finish("done", "success", {"3": {"text": ["small"]}}, [])  # on a real disk, even a small one
    assert store.get("done").status == "success"  # type: ignore[union-attr]
    assert store.problem is not None and "is full" in store.problem
    with pytest.raises(StoreUnavailable):
        store.add(prompt("next", 3))
    store.close()  # stopped while full: what waited is lost, the history on the disk is not

    restarted = PromptStore(path)  # on the full disk
    # Even "running" could not be written: the prompt whose result was lost is queued to run again.
    assert [item.prompt_id for item in restarted.recover()] == ["done"]
    assert restarted.get("cut-off").status == "error"  # type: ignore[union-attr]
    assert restarted.problem is not None and "is full" in restarted.problem
    assert [item.prompt_id for item in restarted.history()] == ["cut-off"]
    restarted.finish("done", "success", {"3": {"text": ["again"]}}, [])
    filler.unlink()
    assert restarted.retry_backlog()
    restarted.add(prompt("next", 3))
    restarted.close()
    assert stored_on_disk(path, "done") == ("success", {"3": {"text": ["again"]}})
    assert stored_on_disk(path, "cut-off") is not None and stored_on_disk(path, "cut-off")[0] == "error"  # type: ignore[index]


def test_the_state_of_the_disk_is_read_while_a_large_prompt_is_written(path: Path) -> None:
    """The server's retry task asks on its event loop: it must not wait for a write in progress."""
    store = PromptStore(path)
    answered = threading.Event()

    def ask() -> None:
        assert store.backlog_size == 0 and store.problem is None
        answered.set()

    with store._lock:  # a write in progress
        threading.Thread(target=ask).start()
        assert answered.wait(5), "backlog_size or problem waited for the store's lock"
    store.close()
