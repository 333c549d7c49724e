"""FileStore: every user-given name stays inside its folder, and outputs never overwrite."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from engine.files import FileStore, UnsafePathError, check_relative_name


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


def test_output_counters_count_up_from_one(files: FileStore) -> None:
    names = [files.reserve_output("cat", ".png")[2] for _ in range(3)]

    assert names == ["cat_00001.png", "cat_00002.png", "cat_00003.png"]
    assert all((files.output_dir / name).is_file() for name in names)


def test_reserving_never_overwrites_an_existing_file(files: FileStore) -> None:
    files.output_dir.mkdir()
    existing = files.output_dir / "x_00001.png"
    existing.write_bytes(b"keep me")

    path, subfolder, filename = files.reserve_output("x", ".png")

    assert existing.read_bytes() == b"keep me"
    assert (subfolder, filename) == ("", "x_00002.png")
    assert path == files.output_dir.resolve() / "x_00002.png"


def test_counting_continues_after_the_highest_existing_counter(files: FileStore) -> None:
    files.output_dir.mkdir()
    (files.output_dir / "x_00007.png").write_bytes(b"")
    (files.output_dir / "x_00099.jpg").write_bytes(b"")  # another extension does not count

    assert files.reserve_output("x", ".png")[2] == "x_00008.png"


def test_a_prefix_with_a_subfolder_creates_it_inside_the_output_folder(files: FileStore) -> None:
    path, subfolder, filename = files.reserve_output("renders/cat", ".png")

    assert (subfolder, filename) == ("renders", "cat_00001.png")
    assert path == files.output_dir.resolve() / "renders" / "cat_00001.png"
    assert path.is_file()


def test_an_empty_prefix_gets_the_default_name(files: FileStore) -> None:
    assert files.reserve_output("", ".png")[2] == "depthgraph_00001.png"


@pytest.mark.parametrize("prefix", ["../evil", "renders/../../evil", "/tmp/evil", "C:\\evil"])
def test_prefixes_that_leave_the_output_folder_write_nothing(
    files: FileStore, tmp_path: Path, prefix: str
) -> None:
    before = files_under(tmp_path)

    with pytest.raises(UnsafePathError):
        files.reserve_output(prefix, ".png")

    assert files_under(tmp_path) == before


def test_an_absolute_prefix_into_a_real_folder_writes_nothing_there(files: FileStore, outside: Path) -> None:
    with pytest.raises(UnsafePathError):
        files.reserve_output(str(outside / "evil"), ".png")

    assert files_under(outside) == {outside / "secret.png"}


def test_a_subfolder_symlinked_outside_is_refused(files: FileStore, outside: Path) -> None:
    files.output_dir.mkdir()
    (files.output_dir / "renders").symlink_to(outside)

    with pytest.raises(UnsafePathError):
        files.reserve_output("renders/cat", ".png")

    assert files_under(outside) == {outside / "secret.png"}


def test_a_counter_file_symlinked_outside_is_skipped_not_followed(files: FileStore, outside: Path) -> None:
    files.output_dir.mkdir()
    (files.output_dir / "cat_00001.png").symlink_to(outside / "planted.png")

    assert files.reserve_output("cat", ".png")[2] == "cat_00002.png"
    assert not (outside / "planted.png").exists()


def test_temp_files_are_reserved_in_the_temp_folder(files: FileStore) -> None:
    path, subfolder, filename = files.reserve_output("preview", ".png", "temp")

    assert path == files.temp_dir.resolve() / "preview_00001.png"
    assert (subfolder, filename) == ("", "preview_00001.png")
    assert not files.output_dir.exists()


def test_an_unknown_folder_kind_is_refused(files: FileStore) -> None:
    with pytest.raises(UnsafePathError, match="unknown folder type"):
        files.folder("models")  # type: ignore[arg-type]


def test_threads_reserving_at_once_all_get_distinct_files(files: FileStore) -> None:
    threads, per_thread = 8, 5
    start = threading.Barrier(threads)

    def reserve_some(_: int) -> list[Path]:
        start.wait()
        return [files.reserve_output("race", ".png")[0] for _ in range(per_thread)]

    with ThreadPoolExecutor(threads) as pool:
        paths = [path for batch in pool.map(reserve_some, range(threads)) for path in batch]

    assert len(set(paths)) == threads * per_thread
    assert len(list(files.output_dir.iterdir())) == threads * per_thread
