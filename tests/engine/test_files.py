"""FileStore: every user-given name stays inside its folder, and outputs never overwrite."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from engine.files import FileStore, UnsafePathError, check_relative_name


@pytest.fixture
def store(tmp_path: Path) -> FileStore:
    """A file store whose three folders live in tmp_path; the input folder exists."""
    files = FileStore(
        input_dir=tmp_path / "input", output_dir=tmp_path / "output", temp_dir=tmp_path / "temp"
    )
    files.input_dir.mkdir()
    return files


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
def test_names_that_would_leave_the_folder_are_refused(store: FileStore, name: str) -> None:
    with pytest.raises(UnsafePathError):
        store.resolve("input", name)
    with pytest.raises(UnsafePathError):
        check_relative_name(name)


def test_an_unsafe_subfolder_is_refused_too(store: FileStore) -> None:
    with pytest.raises(UnsafePathError, match="subfolder"):
        store.resolve("output", "a.png", subfolder="../elsewhere")


def test_a_nested_name_resolves_inside_the_folder(store: FileStore) -> None:
    path = store.resolve("input", "sub/a.png")

    assert path == store.input_dir.resolve() / "sub" / "a.png"


def test_a_symlinked_folder_pointing_outside_is_refused(store: FileStore, outside: Path) -> None:
    (store.input_dir / "link").symlink_to(outside)

    with pytest.raises(UnsafePathError, match="outside the input folder"):
        store.resolve("input", "link/secret.png")


def test_a_symlinked_file_pointing_outside_is_refused(store: FileStore, outside: Path) -> None:
    (store.input_dir / "innocent.png").symlink_to(outside / "secret.png")

    with pytest.raises(UnsafePathError):
        store.resolve_input("innocent.png")


def test_a_symlink_that_stays_inside_the_folder_is_allowed(store: FileStore) -> None:
    (store.input_dir / "real").mkdir()
    (store.input_dir / "alias").symlink_to(store.input_dir / "real")

    assert store.resolve("input", "alias/a.png") == store.input_dir.resolve() / "real" / "a.png"


def test_names_given_on_the_command_line_may_point_anywhere(tmp_path: Path, outside: Path) -> None:
    store = FileStore(input_dir=tmp_path / "input", extra_inputs={"cat": outside / "secret.png"})

    assert store.resolve_input("cat") == outside / "secret.png"
    assert store.resolve_input("dog.png") == (tmp_path / "input").resolve() / "dog.png"
    with pytest.raises(UnsafePathError):
        store.resolve_input("../outside/secret.png")


def test_the_input_list_holds_nested_images_and_command_line_names(tmp_path: Path) -> None:
    store = FileStore(input_dir=tmp_path / "input", extra_inputs={"from-cli": tmp_path / "x.png"})
    for name in ("a.png", "b.JPG", "c.webp", "d.jpeg", "sub/deeper/e.png", "notes.txt", "model.ckpt"):
        path = store.input_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    (store.input_dir / "folder.png").mkdir()

    assert store.list_inputs() == ["a.png", "b.JPG", "c.webp", "d.jpeg", "from-cli", "sub/deeper/e.png"]


def test_the_input_list_leaves_out_symlinks_that_could_not_be_loaded(store: FileStore, outside: Path) -> None:
    (store.input_dir / "mine.png").write_bytes(b"")
    (store.input_dir / "innocent.png").symlink_to(outside / "secret.png")

    assert store.list_inputs() == ["mine.png"]


def test_a_missing_input_folder_lists_nothing(tmp_path: Path) -> None:
    assert FileStore(input_dir=tmp_path / "nowhere").list_inputs() == []


def test_output_counters_count_up_from_one(store: FileStore) -> None:
    names = [store.reserve_output("cat", ".png")[2] for _ in range(3)]

    assert names == ["cat_00001.png", "cat_00002.png", "cat_00003.png"]
    assert all((store.output_dir / name).is_file() for name in names)


def test_reserving_never_overwrites_an_existing_file(store: FileStore) -> None:
    store.output_dir.mkdir()
    existing = store.output_dir / "x_00001.png"
    existing.write_bytes(b"keep me")

    path, subfolder, filename = store.reserve_output("x", ".png")

    assert existing.read_bytes() == b"keep me"
    assert (subfolder, filename) == ("", "x_00002.png")
    assert path == store.output_dir.resolve() / "x_00002.png"


def test_counting_continues_after_the_highest_existing_counter(store: FileStore) -> None:
    store.output_dir.mkdir()
    (store.output_dir / "x_00007.png").write_bytes(b"")
    (store.output_dir / "x_00099.jpg").write_bytes(b"")  # another extension does not count

    assert store.reserve_output("x", ".png")[2] == "x_00008.png"


def test_a_prefix_with_a_subfolder_creates_it_inside_the_output_folder(store: FileStore) -> None:
    path, subfolder, filename = store.reserve_output("renders/cat", ".png")

    assert (subfolder, filename) == ("renders", "cat_00001.png")
    assert path == store.output_dir.resolve() / "renders" / "cat_00001.png"
    assert path.is_file()


def test_an_empty_prefix_gets_the_default_name(store: FileStore) -> None:
    assert store.reserve_output("", ".png")[2] == "depthgraph_00001.png"


@pytest.mark.parametrize("prefix", ["../evil", "renders/../../evil", "/tmp/evil", "C:\\evil"])
def test_prefixes_that_leave_the_output_folder_write_nothing(
    store: FileStore, tmp_path: Path, prefix: str
) -> None:
    before = files_under(tmp_path)

    with pytest.raises(UnsafePathError):
        store.reserve_output(prefix, ".png")

    assert files_under(tmp_path) == before


def test_an_absolute_prefix_into_a_real_folder_writes_nothing_there(store: FileStore, outside: Path) -> None:
    with pytest.raises(UnsafePathError):
        store.reserve_output(str(outside / "evil"), ".png")

    assert files_under(outside) == {outside / "secret.png"}


def test_a_subfolder_symlinked_outside_is_refused(store: FileStore, outside: Path) -> None:
    store.output_dir.mkdir()
    (store.output_dir / "renders").symlink_to(outside)

    with pytest.raises(UnsafePathError):
        store.reserve_output("renders/cat", ".png")

    assert files_under(outside) == {outside / "secret.png"}


def test_a_counter_file_symlinked_outside_is_skipped_not_followed(store: FileStore, outside: Path) -> None:
    store.output_dir.mkdir()
    (store.output_dir / "cat_00001.png").symlink_to(outside / "planted.png")

    assert store.reserve_output("cat", ".png")[2] == "cat_00002.png"
    assert not (outside / "planted.png").exists()


def test_temp_files_are_reserved_in_the_temp_folder(store: FileStore) -> None:
    path, subfolder, filename = store.reserve_output("preview", ".png", "temp")

    assert path == store.temp_dir.resolve() / "preview_00001.png"
    assert (subfolder, filename) == ("", "preview_00001.png")
    assert not store.output_dir.exists()


def test_an_unknown_folder_kind_is_refused(store: FileStore) -> None:
    with pytest.raises(UnsafePathError, match="unknown folder type"):
        store.folder("models")  # type: ignore[arg-type]


def test_threads_reserving_at_once_all_get_distinct_files(store: FileStore) -> None:
    threads, per_thread = 8, 5
    start = threading.Barrier(threads)

    def reserve_some(_: int) -> list[Path]:
        start.wait()
        return [store.reserve_output("race", ".png")[0] for _ in range(per_thread)]

    with ThreadPoolExecutor(threads) as pool:
        paths = [path for batch in pool.map(reserve_some, range(threads)) for path in batch]

    assert len(set(paths)) == threads * per_thread
    assert len(list(store.output_dir.iterdir())) == threads * per_thread
