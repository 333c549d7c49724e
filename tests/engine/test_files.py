"""FileStore: every user-given name stays inside its folder, and outputs never overwrite and appear
whole or not at all."""

from __future__ import annotations

import errno
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

import pytest
from depthgraph.engine.core.files import (
    DiskFullError,
    FileStore,
    FolderKind,
    NameTooLongError,
    SavedFile,
    UnsafePathError,
    check_relative_name,
    saved_files,
)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder next to the store's folders that nothing may read or write into."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.png").write_bytes(b"secret")
    return folder


def files_under(folder: Path) -> set[Path]:
    return {path for path in folder.rglob("*") if path.is_file()}


UNSAFE_NAMES = {
    "parent": "../secret.png",
    "nested parent": "sub/../../secret.png",
    "absolute posix": "/etc/passwd",
    "windows drive": "C:\\Windows\\win.ini",
    "drive relative": "C:secret.png",
    "backslash traversal": "..\\..\\secret.png",
    "nul byte": "a.png\x00.txt",
}


@pytest.mark.parametrize("name", UNSAFE_NAMES.values(), ids=UNSAFE_NAMES.keys())
def test_names_that_would_leave_the_folder_are_refused(files: FileStore, name: str) -> None:
    with pytest.raises(UnsafePathError):
        files.resolve("input", name)
    with pytest.raises(UnsafePathError):
        check_relative_name(name)


def test_an_unsafe_subfolder_is_refused_too(files: FileStore) -> None:
    with pytest.raises(UnsafePathError, match="subfolder"):
        files.resolve("output", "a.png", subfolder="../elsewhere")


def test_a_nested_name_resolves_inside_the_folder(files: FileStore) -> None:
    path = files.resolve("input", "sub/a.png")

    assert path == files.input_dir.resolve() / "sub" / "a.png"


def test_a_symlinked_folder_pointing_outside_is_refused(files: FileStore, outside: Path) -> None:
    (files.input_dir / "link").symlink_to(outside)

    with pytest.raises(UnsafePathError, match="outside the input folder"):
        files.resolve("input", "link/secret.png")


def test_a_symlinked_file_pointing_outside_is_refused(files: FileStore, outside: Path) -> None:
    (files.input_dir / "innocent.png").symlink_to(outside / "secret.png")

    with pytest.raises(UnsafePathError):
        files.resolve_input("innocent.png")


def test_a_symlink_that_stays_inside_the_folder_is_allowed(files: FileStore) -> None:
    (files.input_dir / "real").mkdir()
    (files.input_dir / "alias").symlink_to(files.input_dir / "real")

    assert files.resolve("input", "alias/a.png") == files.input_dir.resolve() / "real" / "a.png"


def test_names_given_on_the_command_line_may_point_anywhere(tmp_path: Path, outside: Path) -> None:
    files = FileStore(input_dir=tmp_path / "input", extra_inputs={"cat": outside / "secret.png"})

    assert files.resolve_input("cat") == outside / "secret.png"
    assert files.resolve_input("dog.png") == (tmp_path / "input").resolve() / "dog.png"
    with pytest.raises(UnsafePathError):
        files.resolve_input("../outside/secret.png")


def test_the_input_list_holds_nested_images_and_command_line_names(tmp_path: Path) -> None:
    files = FileStore(input_dir=tmp_path / "input", extra_inputs={"from-cli": tmp_path / "x.png"})
    for name in ("a.png", "b.JPG", "c.webp", "d.jpeg", "sub/deeper/e.png", "notes.txt", "model.ckpt"):
        path = files.input_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    (files.input_dir / "folder.png").mkdir()

    assert files.list_inputs() == ["a.png", "b.JPG", "c.webp", "d.jpeg", "from-cli", "sub/deeper/e.png"]


def test_the_input_list_leaves_out_symlinks_that_could_not_be_loaded(files: FileStore, outside: Path) -> None:
    (files.input_dir / "mine.png").write_bytes(b"")
    (files.input_dir / "innocent.png").symlink_to(outside / "secret.png")

    assert files.list_inputs() == ["mine.png"]


def test_a_missing_input_folder_lists_nothing(tmp_path: Path) -> None:
    assert FileStore(input_dir=tmp_path / "nowhere").list_inputs() == []


def save(files: FileStore, prefix: str, data: bytes = b"finished", kind: FolderKind = "output") -> str:
    """Save `data` as a new output and return the file name it got."""
    return files.write_output(prefix, ".png", kind, lambda handle: handle.write(data))[2]


def all_files(folder: Path) -> list[str]:
    """Every file and folder under `folder`, hidden ones included, by relative name."""
    return sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*"))


def test_output_counters_count_up_from_one(files: FileStore) -> None:
    names = [save(files, "cat") for _ in range(3)]

    assert names == ["cat_00001.png", "cat_00002.png", "cat_00003.png"]
    assert all((files.output_dir / name).read_bytes() == b"finished" for name in names)
    assert all_files(files.output_dir) == names  # no temporary file is left behind


def test_saving_never_overwrites_an_existing_file(files: FileStore) -> None:
    files.output_dir.mkdir()
    existing = files.output_dir / "x_00001.png"
    existing.write_bytes(b"keep me")

    path, subfolder, filename = files.write_output("x", ".png", "output", lambda handle: handle.write(b"new"))

    assert existing.read_bytes() == b"keep me"
    assert (subfolder, filename) == ("", "x_00002.png")
    assert path == files.output_dir.resolve() / "x_00002.png" and path.read_bytes() == b"new"


def test_a_name_taken_while_writing_is_skipped_not_overwritten(files: FileStore) -> None:
    def write_while_another_saves(handle: BinaryIO) -> None:
        (files.output_dir / "x_00001.png").write_bytes(b"the other one")
        handle.write(b"mine")

    files.output_dir.mkdir()
    filename = files.write_output("x", ".png", "output", write_while_another_saves)[2]

    assert filename == "x_00002.png"
    assert (files.output_dir / "x_00001.png").read_bytes() == b"the other one"
    assert (files.output_dir / "x_00002.png").read_bytes() == b"mine"


def test_counting_continues_after_the_highest_existing_counter(files: FileStore) -> None:
    files.output_dir.mkdir()
    (files.output_dir / "x_00007.png").write_bytes(b"")
    (files.output_dir / "x_00099.jpg").write_bytes(b"")  # another extension does not count

    assert save(files, "x") == "x_00008.png"


def test_a_prefix_with_a_subfolder_creates_it_inside_the_output_folder(files: FileStore) -> None:
    path, subfolder, filename = files.write_output("renders/cat", ".png", "output", lambda h: h.write(b"x"))

    assert (subfolder, filename) == ("renders", "cat_00001.png")
    assert path == files.output_dir.resolve() / "renders" / "cat_00001.png"
    assert path.is_file()


def test_an_empty_prefix_gets_the_default_name(files: FileStore) -> None:
    assert save(files, "") == "depthgraph_00001.png"


@pytest.mark.parametrize("prefix", ["../evil", "renders/../../evil", "/tmp/evil", "C:\\evil"])
def test_prefixes_that_leave_the_output_folder_write_nothing(
    files: FileStore, tmp_path: Path, prefix: str
) -> None:
    before = files_under(tmp_path)

    with pytest.raises(UnsafePathError):
        save(files, prefix)

    assert files_under(tmp_path) == before


def test_an_absolute_prefix_into_a_real_folder_writes_nothing_there(files: FileStore, outside: Path) -> None:
    with pytest.raises(UnsafePathError):
        save(files, str(outside / "evil"))

    assert files_under(outside) == {outside / "secret.png"}


def test_a_subfolder_symlinked_outside_is_refused(files: FileStore, outside: Path) -> None:
    files.output_dir.mkdir()
    (files.output_dir / "renders").symlink_to(outside)

    with pytest.raises(UnsafePathError):
        save(files, "renders/cat")

    assert files_under(outside) == {outside / "secret.png"}


def test_a_counter_file_symlinked_outside_is_skipped_not_followed(files: FileStore, outside: Path) -> None:
    files.output_dir.mkdir()
    (files.output_dir / "cat_00001.png").symlink_to(outside / "planted.png")

    assert save(files, "cat") == "cat_00002.png"
    assert not (outside / "planted.png").exists()


def test_temp_files_are_saved_in_the_temp_folder(files: FileStore) -> None:
    path, subfolder, filename = files.write_output("preview", ".png", "temp", lambda h: h.write(b"x"))

    assert path == files.temp_dir.resolve() / "preview_00001.png"
    assert (subfolder, filename) == ("", "preview_00001.png")
    assert not files.output_dir.exists()


def test_an_unknown_folder_kind_is_refused(files: FileStore) -> None:
    with pytest.raises(UnsafePathError, match="unknown folder type"):
        files.folder("models")  # type: ignore[arg-type]


def test_threads_saving_at_once_all_get_distinct_whole_files(files: FileStore) -> None:
    threads, per_thread = 8, 5
    start = threading.Barrier(threads)

    def save_some(number: int) -> list[str]:
        start.wait()
        return [save(files, "race", f"thread {number} file {index}".encode()) for index in range(per_thread)]

    with ThreadPoolExecutor(threads) as pool:
        saved = [name for batch in pool.map(save_some, range(threads)) for name in batch]

    assert len(set(saved)) == threads * per_thread
    assert all_files(files.output_dir) == sorted(saved)
    contents = {(files.output_dir / name).read_bytes() for name in saved}
    assert len(contents) == threads * per_thread  # no file was overwritten by another


# --- outputs appear whole or not at all --------------------------------------------------------------
def fill_the_disk_halfway(handle: BinaryIO) -> None:
    handle.write(b"\x89PNG half of an image")
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_leaves_no_file_under_a_final_name_and_no_temporary_file(files: FileStore) -> None:
    save(files, "renders/cat")

    with pytest.raises(
        DiskFullError, match=re.escape("disk is full while saving renders/cat_#####.png: free some")
    ):
        files.write_output("renders/cat", ".png", "output", fill_the_disk_halfway)

    assert all_files(files.output_dir) == ["renders", "renders/cat_00001.png"]
    assert save(files, "renders/cat") == "cat_00002.png"  # the next save takes the next counter


def test_a_full_quota_is_a_full_disk_too(files: FileStore) -> None:
    def over_quota(handle: BinaryIO) -> None:
        raise OSError(errno.EDQUOT, "Disk quota exceeded")

    with pytest.raises(DiskFullError, match="free some space"):
        files.write_output("cat", ".png", "output", over_quota)

    assert all_files(files.output_dir) == []


def test_a_writer_that_fails_leaves_nothing_and_its_error_is_kept(files: FileStore) -> None:
    def broken(handle: BinaryIO) -> None:
        handle.write(b"part")
        raise ValueError("the encoder gave up")

    with pytest.raises(ValueError, match="the encoder gave up"):
        files.write_output("cat", ".png", "output", broken)

    assert all_files(files.output_dir) == []


def test_without_hard_links_outputs_still_appear_whole_and_never_overwrite(
    files: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_hard_links(source: object, target: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_hard_links)
    files.output_dir.mkdir()
    (files.output_dir / "cat_00001.png").write_bytes(b"keep me")

    assert [save(files, "cat", b"new"), save(files, "cat", b"newer")] == ["cat_00002.png", "cat_00003.png"]
    assert (files.output_dir / "cat_00001.png").read_bytes() == b"keep me"
    assert (files.output_dir / "cat_00003.png").read_bytes() == b"newer"
    assert all_files(files.output_dir) == ["cat_00001.png", "cat_00002.png", "cat_00003.png"]


def test_a_full_disk_while_saving_an_upload_leaves_nothing(
    files: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(self: Path, data: bytes) -> int:
        with self.open("wb") as handle:
            handle.write(data[:3])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", full)

    with pytest.raises(DiskFullError, match=re.escape("disk is full while saving the upload 'photo.png'")):
        files.save_upload("input", "photo.png", "", b"the whole image", overwrite=False)
    with pytest.raises(DiskFullError):
        files.save_upload("input", "photo.png", "", b"the whole image", overwrite=True)

    assert all_files(files.input_dir) == []


# --- names no file system takes ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "subfolder"),
    [("a" * 300 + ".png", ""), ("a" * 5000, ""), ("a.png", "s" * 300), ("é" * 128 + ".png", "")],
    ids=["300 characters", "5000 characters", "300-character subfolder", "256 bytes of UTF-8"],
)
def test_names_over_255_bytes_a_part_are_refused_with_the_limit(
    files: FileStore, name: str, subfolder: str
) -> None:
    with pytest.raises(NameTooLongError, match=r"at most (255|1024) bytes"):
        files.resolve("input", name, subfolder)


def test_a_name_of_255_bytes_is_still_taken(files: FileStore) -> None:
    assert files.resolve("input", "a" * 251 + ".png").name == "a" * 251 + ".png"


def test_a_prefix_too_long_for_its_counter_is_refused_before_writing(files: FileStore) -> None:
    with pytest.raises(NameTooLongError):
        save(files, "a" * 250)

    assert not files.output_dir.exists()


def test_a_symlink_loop_is_refused_with_a_message_not_an_os_error(files: FileStore) -> None:
    (files.input_dir / "loop.png").symlink_to("loop.png")
    (files.input_dir / "a").symlink_to("b")
    (files.input_dir / "b").symlink_to("a")

    with pytest.raises(UnsafePathError, match="symlink loop"):
        files.resolve("input", "loop.png")
    with pytest.raises(UnsafePathError, match="symlink loop"):
        files.resolve("input", "x.png", "a")
    assert files.list_inputs() == []


def test_an_upload_named_like_a_folder_gets_a_new_name(files: FileStore) -> None:
    (files.input_dir / "photo.png").mkdir()

    assert files.save_upload("input", "photo.png", "", b"image", overwrite=False) == "photo (1).png"
    with pytest.raises(UnsafePathError, match="is a folder"):
        files.save_upload("input", "photo.png", "", b"image", overwrite=True)
    assert (files.input_dir / "photo (1).png").read_bytes() == b"image"


# saved_files: the files a node's UI output names


def test_saved_files_lists_every_kind_of_saved_file_and_skips_what_is_not_a_file() -> None:
    ui = {
        "images": [
            {"filename": "render_00001.png", "subfolder": "", "type": "output"},
            {"filename": "preview_00001.png", "subfolder": "p", "type": "temp"},
        ],
        "depth_files": [{"filename": "depth_00001.npy", "subfolder": "depth", "type": "output"}],
        "text": ["a red glass ball", "second line"],
        "seed": 42,
        "strength": [0.5, 1.0],
        "stats": {"filename": "not-in-a-list.png", "type": "output"},
        "odd": [{"filename": 7, "type": "output"}, {"filename": "x.png", "type": "elsewhere"}, None],
    }

    assert list(saved_files(ui)) == [
        SavedFile("images", "output", "render_00001.png"),
        SavedFile("images", "temp", "preview_00001.png", "p"),
        SavedFile("depth_files", "output", "depth_00001.npy", "depth"),
    ]


def test_saved_files_may_be_limited_to_some_folders() -> None:
    ui = {
        "images": [
            {"filename": "render_00001.png", "subfolder": "", "type": "output"},
            {"filename": "preview_00001.png", "subfolder": "", "type": "temp"},
        ],
        "depth_files": [{"filename": "depth_00001.npy", "type": "output"}],  # subfolder "" when left out
    }

    assert [saved.entry() for saved in saved_files(ui, ("output",))] == [
        {"filename": "render_00001.png", "subfolder": "", "type": "output"},
        {"filename": "depth_00001.npy", "subfolder": "", "type": "output"},
    ]
    assert list(saved_files({})) == []


def test_a_saved_file_is_found_inside_its_folder(tmp_path: Path) -> None:
    store = FileStore(output_dir=tmp_path / "output", temp_dir=tmp_path / "temp")

    path = store.path_of(SavedFile("depth_files", "output", "depth_00001.npy", "depth"))

    assert path == (tmp_path / "output" / "depth" / "depth_00001.npy").resolve()
    with pytest.raises(UnsafePathError):
        store.path_of(SavedFile("images", "output", "x.png", "../elsewhere"))
