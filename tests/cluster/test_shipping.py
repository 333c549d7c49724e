"""Moving a prompt's files between machines: the input files it names go out by content, and the files
a worker saves come back under a name that is free here and never outside their folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from depthgraph.engine.cluster.shipping import (
    SHIPPED_KINDS,
    OutputNames,
    ShippedFile,
    input_files,
    place_inputs,
    read_inputs,
    receive_output,
)
from depthgraph.engine.core.files import FileStore, SavedFile, UnsafePathError, saved_files
from depthgraph.engine.core.graph import ExecutableGraph
from depthgraph.engine.core.validation import validate

from tests.engine import node_pack


def graph_of(prompt: dict[str, Any], files: FileStore) -> ExecutableGraph:
    validation = validate(prompt, node_pack.make_registry(), files)
    assert validation.ok, validation.issues
    assert validation.graph is not None
    return validation.graph


def shown_text(node_id: str, text: str) -> dict[str, Any]:
    """A Text node showing `text` (a free text constant), and the Show node that needs it."""
    return {
        node_id: {"class_type": "Text", "inputs": {"text": text, "shout": False, "style": "plain"}},
        f"{node_id}0": {"class_type": "Show", "inputs": {"value": [node_id, 0]}},
    }


def shown_file(node_id: str, name: str) -> dict[str, Any]:
    """A ReadText node reading input file `name`, and the Show node that needs it."""
    return {
        node_id: {"class_type": "ReadText", "inputs": {"name": name}},
        f"{node_id}0": {"class_type": "Show", "inputs": {"value": [node_id, 0]}},
    }


def names_in(folder: Path) -> list[str]:
    return sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file())


def test_input_files_are_the_text_constants_naming_files_inside_the_input_folder(
    files: FileStore, tmp_path: Path
) -> None:
    (files.input_dir / "notes").mkdir()
    (files.input_dir / "notes" / "a.txt").write_text("read by ReadText")
    (files.input_dir / "b.txt").write_text("named in a text box")
    (tmp_path / "secret.txt").write_text("outside the input folder")
    prompt = {
        **shown_file("1", "notes/a.txt"),
        **shown_text("2", "b.txt"),
        **shown_text("3", "../secret.txt"),
        **shown_text("4", str(tmp_path / "secret.txt")),
        **shown_text("5", "missing.txt"),
        **shown_text("6", "notes"),  # a folder, not a file
        **shown_text("7", "notes/a.txt"),  # named twice, shipped once
    }
    found = input_files(graph_of(prompt, files), files)
    assert found == {"notes/a.txt": files.input_dir / "notes" / "a.txt", "b.txt": files.input_dir / "b.txt"}
    assert read_inputs(found) == {"notes/a.txt": b"read by ReadText", "b.txt": b"named in a text box"}


def test_a_file_named_on_the_command_line_is_shipped_too(tmp_path: Path) -> None:
    outside = tmp_path / "photos" / "cat.txt"
    outside.parent.mkdir()
    outside.write_text("meow")
    files = FileStore(input_dir=tmp_path / "input", extra_inputs={"photos/cat.txt": outside})
    files.input_dir.mkdir()
    found = input_files(graph_of(shown_file("1", "photos/cat.txt"), files), files)
    assert found == {"photos/cat.txt": outside}


def test_a_prompt_naming_no_files_ships_nothing(files: FileStore) -> None:
    prompt = {
        "1": {"class_type": "Number", "inputs": {"value": 3}},
        "2": {"class_type": "Show", "inputs": {"value": ["1", 0]}},
        **shown_text("3", ""),
    }
    assert input_files(graph_of(prompt, files), files) == {}


def test_shipped_inputs_are_placed_by_content_once(tmp_path: Path) -> None:
    folder = tmp_path / "shipped"
    inputs = {"a.txt": b"same", "sub/b.txt": b"same", "c.txt": b"other", "d.png": b"same"}
    placed = place_inputs(inputs, folder)
    assert set(placed) == set(inputs)
    assert placed["a.txt"] == placed["sub/b.txt"]
    assert placed["a.txt"] != placed["c.txt"]
    assert placed["d.png"].suffix == ".png" and placed["a.txt"].suffix == ".txt"
    assert len(names_in(folder)) == 3  # no partial files left behind
    assert all(path.parent == folder and path.read_bytes() == inputs[name] for name, path in placed.items())


def test_placing_the_same_inputs_again_does_not_rewrite_them(tmp_path: Path) -> None:
    folder = tmp_path / "shipped"
    first = place_inputs({"a.txt": b"same"}, folder)
    before = first["a.txt"].stat()
    again = place_inputs({"renamed.txt": b"same"}, folder)
    after = again["renamed.txt"].stat()
    assert again["renamed.txt"] == first["a.txt"]
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert len(names_in(folder)) == 1


def test_the_files_a_worker_ships_are_the_output_and_temp_files_a_node_shows() -> None:
    saved = {"filename": "depth_00001.png", "subfolder": "", "type": "output"}
    array = {"filename": "depth_00001.npy", "subfolder": "", "type": "output"}
    preview = {"filename": "preview.png", "subfolder": "p", "type": "temp"}
    ui = {
        "images": [saved, {"filename": "photo.png", "subfolder": "", "type": "input"}, "text", 3, preview],
        "depth_files": [array],
        "text": ["hello"],
        "other": {"filename": "not-a-list.png", "type": "output"},
        "untyped": [{"filename": "x.png"}, {"subfolder": "", "type": "output"}],
    }
    assert [file.entry() for file in saved_files(ui, SHIPPED_KINDS)] == [saved, preview, array]
    assert list(saved_files({}, SHIPPED_KINDS)) == []
    assert SavedFile("depth_files", "output", "depth_00001.npy") in saved_files(ui, SHIPPED_KINDS)


def shipped(filename: str, data: bytes, subfolder: str = "", kind: Any = "output") -> ShippedFile:
    return ShippedFile(kind, subfolder, filename, data)


def test_a_received_file_keeps_its_name_when_it_is_free(files: FileStore) -> None:
    assert receive_output(files, shipped("pic.png", b"one", "sub/dir")) == "pic.png"
    assert (files.output_dir / "sub" / "dir" / "pic.png").read_bytes() == b"one"
    assert receive_output(files, shipped("pic.png", b"temp", kind="temp")) == "pic.png"
    assert (files.temp_dir / "pic.png").read_bytes() == b"temp"


def test_a_received_file_with_the_same_name_and_bytes_is_not_written_again(files: FileStore) -> None:
    receive_output(files, shipped("pic.png", b"one"))
    assert receive_output(files, shipped("pic.png", b"one")) == "pic.png"
    assert names_in(files.output_dir) == ["pic.png"]


def test_a_counted_name_taken_by_other_bytes_gets_the_next_free_counter_in_its_subfolder(
    files: FileStore,
) -> None:
    folder = files.output_dir / "runs"
    folder.mkdir(parents=True)
    (folder / "depthgraph_00001.png").write_bytes(b"ours")
    (files.output_dir / "depthgraph_00002.png").write_bytes(b"another folder")
    assert receive_output(files, shipped("depthgraph_00001.png", b"theirs", "runs")) == "depthgraph_00002.png"
    assert (folder / "depthgraph_00001.png").read_bytes() == b"ours"
    assert (folder / "depthgraph_00002.png").read_bytes() == b"theirs"
    assert receive_output(files, shipped("depthgraph_00001.png", b"third", "runs")) == "depthgraph_00003.png"
    assert names_in(files.output_dir) == [
        "depthgraph_00002.png",
        "runs/depthgraph_00001.png",
        "runs/depthgraph_00002.png",
        "runs/depthgraph_00003.png",
    ]


def test_an_uncounted_name_taken_by_other_bytes_gets_a_number_in_brackets(files: FileStore) -> None:
    files.output_dir.mkdir()
    (files.output_dir / "pic.png").write_bytes(b"ours")
    assert receive_output(files, shipped("pic.png", b"theirs")) == "pic (1).png"
    assert receive_output(files, shipped("pic.png", b"third")) == "pic (2).png"
    assert receive_output(files, shipped("pic.png", b"theirs")) == "pic (1).png"
    assert (files.output_dir / "pic.png").read_bytes() == b"ours"
    assert (files.output_dir / "pic (1).png").read_bytes() == b"theirs"
    assert (files.output_dir / "pic (2).png").read_bytes() == b"third"
    assert len(names_in(files.output_dir)) == 3


def test_a_worker_may_not_write_into_the_input_folder(files: FileStore) -> None:
    with pytest.raises(UnsafePathError):
        receive_output(files, shipped("photo.png", b"x", kind="input"))
    assert names_in(files.input_dir) == []


@pytest.mark.parametrize("subfolder", ["..", "a/../..", "../output", "/tmp"])
def test_a_received_file_may_not_leave_its_folder_through_the_subfolder(
    files: FileStore, tmp_path: Path, subfolder: str
) -> None:
    with pytest.raises(UnsafePathError):
        receive_output(files, shipped("pic.png", b"x", subfolder))
    assert names_in(tmp_path) == []


@pytest.mark.parametrize("filename", ["../pic.png", "/tmp/pic.png", "a/../../pic.png"])
def test_a_received_file_name_climbing_out_of_its_folder_is_refused(
    files: FileStore, tmp_path: Path, filename: str
) -> None:
    with pytest.raises(UnsafePathError):
        receive_output(files, shipped(filename, b"x"))
    assert names_in(tmp_path) == []


@pytest.mark.parametrize("filename", ["nested/dir/pic.png", "nested\\dir\\pic.png"])
def test_a_received_file_name_with_folders_keeps_only_its_last_part(
    files: FileStore, tmp_path: Path, filename: str
) -> None:
    assert receive_output(files, shipped(filename, b"x", "sub")) == "pic.png"
    assert names_in(tmp_path) == ["output/sub/pic.png"]


def image(filename: str, subfolder: str = "", kind: str = "output") -> dict[str, Any]:
    return {"filename": filename, "subfolder": subfolder, "type": kind}


def test_two_workers_saving_the_same_name_get_two_files_and_each_its_own_name(files: FileStore) -> None:
    names = OutputNames(files)
    names.receive("w1", shipped("x_00001.png", b"from w1"))
    names.receive("w2", shipped("x_00001.png", b"from w2"))
    assert (files.output_dir / "x_00001.png").read_bytes() == b"from w1"
    assert (files.output_dir / "x_00002.png").read_bytes() == b"from w2"
    ui = {"images": [image("x_00001.png")], "text": ["kept"], "count": 1}
    assert names.rename("w1", ui) == {"images": [image("x_00001.png")], "text": ["kept"], "count": 1}
    assert names.rename("w2", ui) == {"images": [image("x_00002.png")], "text": ["kept"], "count": 1}
    assert ui == {"images": [image("x_00001.png")], "text": ["kept"], "count": 1}  # not changed in place


def test_the_same_file_sent_again_by_a_worker_makes_no_new_file(files: FileStore) -> None:
    names = OutputNames(files)
    names.receive("w1", shipped("x_00001.png", b"from w1"))
    names.receive("w2", shipped("x_00001.png", b"from w2"))
    names.receive("w2", shipped("x_00001.png", b"from w2"))
    assert names_in(files.output_dir) == ["x_00001.png", "x_00002.png"]
    assert names.rename("w2", {"images": [image("x_00001.png")]}) == {"images": [image("x_00002.png")]}


def test_a_name_reused_by_a_worker_for_new_bytes_is_renamed_to_the_newest_file(files: FileStore) -> None:
    names = OutputNames(files)
    names.receive("w1", shipped("x_00001.png", b"first run"))
    names.receive("w1", shipped("x_00001.png", b"after a restart"))
    assert names.rename("w1", {"images": [image("x_00001.png")]}) == {"images": [image("x_00002.png")]}
    names.receive("w1", shipped("x_00001.png", b"first run"))
    assert names.rename("w1", {"images": [image("x_00001.png")]}) == {"images": [image("x_00001.png")]}
    assert names_in(files.output_dir) == ["x_00001.png", "x_00002.png"]


def test_rename_leaves_input_files_and_files_it_never_received_alone(files: FileStore) -> None:
    names = OutputNames(files)
    names.receive("w1", shipped("x_00001.png", b"from w1", "sub"))
    names.receive("w1", shipped("x_00001.png", b"preview", kind="temp"))
    names.receive("w2", shipped("x_00001.png", b"from w2", "sub"))
    ui = {
        "images": [
            image("x_00001.png", "sub", "input"),
            image("x_00001.png", "", "output"),  # another subfolder: never received
            image("x_00001.png", "", "temp"),
            image("x_00001.png", "sub"),
            "text",
        ]
    }
    assert names.rename("w2", ui)["images"] == [
        image("x_00001.png", "sub", "input"),
        image("x_00001.png", "", "output"),
        image("x_00001.png", "", "temp"),  # w2 sent no temp file
        image("x_00002.png", "sub"),
        "text",
    ]
    assert names.rename("w3", ui) == ui
