"""A graph embedded in a PNG by SaveImage loads back as a graph."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin

from engine.graph_file import GraphFileError, load_graph
from engine.png_text import PngTextError, read_png_text

PROMPT = {
    "1": {"class_type": "Number", "inputs": {"value": 4}},
    "2": {"class_type": "Show", "inputs": {"value": ["1", 0]}},
}
WORKFLOW = {"format": "depthgraph", "version": 1, "title": "Four", "nodes": PROMPT, "layout": {"groups": []}}


def save_png(path: Path, **texts: tuple[str, bool]) -> Path:
    info = PngImagePlugin.PngInfo()
    for key, (text, compressed) in texts.items():
        info.add_text(key, text, zip=compressed)
    Image.new("RGB", (4, 4), "red").save(path, pnginfo=info)
    return path


def test_plain_compressed_and_unicode_text_chunks_are_read(tmp_path: Path) -> None:
    path = save_png(
        tmp_path / "a.png", plain=("hello", False), packed=("x" * 500, True), unicode=("naïve 深度", False)
    )
    texts = read_png_text(path.read_bytes())
    assert texts == {"plain": "hello", "packed": "x" * 500, "unicode": "naïve 深度"}


def test_a_saved_image_loads_as_its_editor_graph(tmp_path: Path) -> None:
    path = save_png(
        tmp_path / "b.png", prompt=(json.dumps(PROMPT), False), workflow=(json.dumps(WORKFLOW), True)
    )
    document = load_graph(path)
    assert document.kind == "depthgraph" and document.title == "Four" and document.prompt == PROMPT


def test_without_an_editor_graph_the_api_form_is_used(tmp_path: Path) -> None:
    path = save_png(tmp_path / "c.png", prompt=(json.dumps(PROMPT), False))
    document = load_graph(path)
    assert document.kind == "api" and document.prompt == PROMPT


def test_a_png_without_a_graph_or_a_damaged_one_is_a_clear_error(tmp_path: Path) -> None:
    plain = save_png(tmp_path / "d.png")
    with pytest.raises(GraphFileError, match="without an embedded graph"):
        load_graph(plain)
    truncated = tmp_path / "e.png"
    truncated.write_bytes(save_png(tmp_path / "f.png", prompt=(json.dumps(PROMPT), False)).read_bytes()[:60])
    with pytest.raises(GraphFileError, match="truncated"):
        load_graph(truncated)
    fake = tmp_path / "g.png"
    fake.write_text("not an image")
    with pytest.raises(GraphFileError, match="not a PNG"):
        load_graph(fake)
    with pytest.raises(PngTextError):
        read_png_text(b"GIF89a")
