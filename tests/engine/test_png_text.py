"""A graph embedded in a PNG by SaveImage loads back as a graph; text that inflates past the budget
(max_text_chunk_bytes) is refused without being inflated."""

from __future__ import annotations

import io
import json
import struct
import time
import tracemalloc
import zlib
from pathlib import Path

import pytest
from depthgraph.engine.core.registry import NodeRegistry
from depthgraph.engine.formats.graph_file import GraphFileError, graph_from_png, load_graph
from depthgraph.engine.formats.graph_library import read_dropped_graph
from depthgraph.engine.formats.png_text import PNG_SIGNATURE, PngTextError, read_png_text
from PIL import Image, PngImagePlugin

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


# --- text budgets ------------------------------------------------------------------------------------
def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_with_chunks(*chunks: bytes) -> bytes:
    """A small valid PNG with `chunks` between its header and its image data."""
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), "red").save(buffer, format="PNG")
    data = buffer.getvalue()
    header_end = len(PNG_SIGNATURE) + 25  # the IHDR chunk
    return data[:header_end] + b"".join(chunks) + data[header_end:]


def zeros_inflating_to(mebibytes: int) -> bytes:
    """A zlib stream of `mebibytes` MiB of zeros, made in milliseconds: each fully flushed MiB
    compresses to the same bytes, so one is repeated (the checksum of zeros has a closed form)."""
    zeros, compressor = bytes(2**20), zlib.compressobj(9)
    first = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    repeated = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    end = compressor.flush(zlib.Z_FINISH)[:-4]
    checksum = ((mebibytes * 2**20) % 65521) << 16 | 1  # adler32: a stays 1, b counts the bytes
    return first + repeated * (mebibytes - 1) + end + struct.pack(">I", checksum)


def test_a_png_whose_text_inflates_to_gigabytes_is_refused_quickly_in_little_memory() -> None:
    bomb = png_with_chunks(chunk(b"zTXt", b"prompt\x00\x00" + zeros_inflating_to(2048)))
    assert len(bomb) < 3 * 2**20

    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(PngTextError, match="max_text_chunk_bytes"):
            read_png_text(bomb)
        seconds, (_, peak) = time.perf_counter() - started, tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seconds < 5 and peak < 100 * 2**20


def test_the_budget_counts_every_text_chunk_of_the_file_together() -> None:
    texts = [
        chunk(b"zTXt", f"part{index}\x00\x00".encode() + zlib.compress(b"x" * 400)) for index in range(3)
    ]
    data = png_with_chunks(*texts, chunk(b"tEXt", b"plain\x00" + b"y" * 400))

    assert len(read_png_text(data, max_text_bytes=1600)) == 4
    with pytest.raises(PngTextError, match="more than 1000 bytes"):
        read_png_text(data, max_text_bytes=1000)
    with pytest.raises(PngTextError, match="max_text_chunk_bytes"):
        read_png_text(png_with_chunks(chunk(b"tEXt", b"plain\x00" + b"y" * 400)), max_text_bytes=100)


def test_compressed_international_text_is_bounded_too() -> None:
    itxt = b"workflow\x00\x01\x00\x00\x00" + zeros_inflating_to(64)
    with pytest.raises(PngTextError, match="max_text_chunk_bytes"):
        read_png_text(png_with_chunks(chunk(b"iTXt", itxt)), max_text_bytes=2**20)


def test_a_cut_short_compressed_text_is_a_damaged_chunk() -> None:
    cut = zlib.compress(json.dumps(PROMPT).encode())[:-8]
    with pytest.raises(PngTextError, match="damaged"):
        read_png_text(png_with_chunks(chunk(b"zTXt", b"prompt\x00\x00" + cut)))


def test_a_graph_in_a_png_over_the_budget_is_a_clear_graph_file_error(tmp_path: Path) -> None:
    data = save_png(tmp_path / "big.png", prompt=(json.dumps(PROMPT), True)).read_bytes()

    assert graph_from_png(data, "big.png").prompt == PROMPT
    with pytest.raises(GraphFileError, match=r"big\.png cannot be read: .*max_text_chunk_bytes"):
        graph_from_png(data, "big.png", max_text_bytes=10)
    with pytest.raises(GraphFileError, match="max_text_chunk_bytes"):
        read_dropped_graph(data, "big.png", NodeRegistry(), max_text_bytes=10)
