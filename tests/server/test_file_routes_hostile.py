"""Hostile input for the file routes (`/view`, `/upload/image`, `/upload/mask`): every one is refused
with a 4xx JSON error that says what was wrong, never a 500 or a traceback, and the server keeps
answering. Files are served as what they are, never as a page."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
from depthgraph.engine.app.config import Settings
from depthgraph.nodes.image_tensors import ImageReadError, read_image
from PIL import Image

from tests.server.conftest import run_prompt

BOUNDARY = "depthgraph-test-boundary"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


# --- inputs, made in code ----------------------------------------------------------------------------
def png_bytes(size: tuple[int, int] = (8, 8), tail: bytes = b"") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, "green").save(buffer, format="PNG")
    return buffer.getvalue() + tail


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def zeros_compressed(count: int) -> bytes:
    """`count` zero bytes as a zlib stream, made in milliseconds however large `count` is: after a
    full flush every MiB of zeros compresses to the same bytes, so one is repeated."""
    mebibyte, compressor = 2**20, zlib.compressobj(9)
    whole, rest = divmod(count, mebibyte)
    stream = b""
    if whole:
        stream = compressor.compress(bytes(mebibyte)) + compressor.flush(zlib.Z_FULL_FLUSH)
    if whole > 1:
        repeated = compressor.compress(bytes(mebibyte)) + compressor.flush(zlib.Z_FULL_FLUSH)
        stream += repeated * (whole - 1)
    stream += compressor.compress(bytes(rest)) + compressor.flush(zlib.Z_FINISH)[:-4]
    return stream + struct.pack(">I", (count % 65521) << 16 | 1)  # adler32 of zeros


def black_png(width: int, height: int) -> bytes:
    """A black 1-bit PNG of any size: a 30000×30000 one is about 110 KB (a decompression bomb)."""
    row = 1 + (width + 7) // 8  # the filter byte and the packed pixels
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    data = zeros_compressed(row * height)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def animated_png(frames: int, side: int) -> bytes:
    """A black APNG of `frames` frames of side×side (1-bit, so 120 frames of 1024² are a few KB)."""
    row = 1 + (side + 7) // 8
    frame_data = zeros_compressed(row * side)
    parts = [chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))]
    parts.append(chunk(b"acTL", struct.pack(">II", frames, 0)))
    sequence = 0
    for frame in range(frames):
        control = struct.pack(">IIIIIHHBB", sequence, side, side, 0, 0, 1, 10, 0, 0)
        parts.append(chunk(b"fcTL", control))
        sequence += 1
        if frame == 0:
            parts.append(chunk(b"IDAT", frame_data))
        else:
            parts.append(chunk(b"fdAT", struct.pack(">I", sequence) + frame_data))
            sequence += 1
    return b"\x89PNG\r\n\x1a\n" + b"".join(parts) + chunk(b"IEND", b"")


def multipart(*parts: tuple[str, str | None, bytes], boundary: str = BOUNDARY) -> bytes:
    """A multipart body of (field name, file name or None for a text field, bytes) parts."""
    body = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (
            f'; filename="{filename}"' if filename is not None else ""
        )
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"
    return body + f"--{boundary}--\r\n".encode()


def image_upload(data: bytes, filename: str = "photo.png", **fields: str) -> bytes:
    texts = [(name, None, value.encode()) for name, value in fields.items()]
    return multipart(("image", filename, data), *texts)


async def refused(response: Any, status: int | tuple[int, ...], *words: str) -> dict[str, Any]:
    """Assert a 4xx JSON error of `status` whose message holds `words`, with no traceback."""
    text = await response.text()
    assert response.status in ((status,) if isinstance(status, int) else status), text
    assert "Traceback" not in text
    error = (await response.json())["error"]
    assert isinstance(error["type"], str) and error["type"] and isinstance(error["message"], str)
    for word in words:
        assert word in error["message"], error["message"]
    return dict(error)


async def still_answering(client: Any) -> None:
    response = await client.get("/prompt")
    assert response.status == 200 and "exec_info" in await response.json()


async def post(client: Any, route: str, body: bytes, content_type: str = MULTIPART) -> Any:
    return await client.post(route, data=body, headers={"Content-Type": content_type})


# --- served as what they are -------------------------------------------------------------------------
async def test_a_png_uploaded_as_html_is_stored_and_served_as_a_png(client: Any, settings: Settings) -> None:
    page = png_bytes(tail=b"<html><script>alert(document.cookie)</script></html>")

    response = await post(client, "/upload/image", image_upload(page, filename="x.html"))

    assert response.status == 200 and (await response.json())["name"] == "x.png"
    assert (settings.input_dir / "x.png").read_bytes() == page
    assert not (settings.input_dir / "x.html").exists()
    view = await client.get("/view", params={"filename": "x.png", "type": "input"})
    assert view.status == 200 and view.headers["Content-Type"] == "image/png"
    assert view.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    ("filename", "format", "stored"),
    [
        ("photo.jpeg", "JPEG", "photo.jpeg"),
        ("photo.png", "JPEG", "photo.jpg"),
        ("photo", "WEBP", "photo.webp"),
        ("PHOTO.PNG", "PNG", "PHOTO.PNG"),
    ],
)
async def test_an_upload_keeps_an_extension_of_its_format(
    client: Any, filename: str, format: str, stored: str
) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "blue").save(buffer, format=format)

    response = await post(client, "/upload/image", image_upload(buffer.getvalue(), filename=filename))

    assert (await response.json())["name"] == stored
    view = await client.get("/view", params={"filename": stored, "type": "input"})
    assert view.headers["Content-Type"] == f"image/{format.lower()}"


async def test_a_format_we_do_not_take_is_refused_naming_those_we_do(client: Any, settings: Settings) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "blue").save(buffer, format="GIF")

    response = await post(client, "/upload/image", image_upload(buffer.getvalue(), filename="a.gif"))

    await refused(response, 400, "GIF", "PNG, JPEG or WebP")
    assert sorted(path.name for path in settings.input_dir.iterdir()) == ["example.jpg"]


async def test_files_that_are_not_images_are_downloads_never_pages(client: Any, settings: Settings) -> None:
    (settings.input_dir / "planted.html").write_text("<script>alert(1)</script>")
    np.save(settings.input_dir / "depth.npy", np.zeros((2, 2), dtype=np.float32))

    for name in ("planted.html", "depth.npy"):
        view = await client.get("/view", params={"filename": name, "type": "input"})
        assert view.status == 200
        assert view.headers["Content-Type"] == "application/octet-stream"
        assert view.headers["Content-Disposition"].startswith("attachment")
        assert view.headers["X-Content-Type-Options"] == "nosniff"


# --- /view -------------------------------------------------------------------------------------------
async def test_view_of_a_symlink_loop_is_refused(client: Any, settings: Settings) -> None:
    (settings.input_dir / "loop.png").symlink_to("loop.png")

    response = await client.get("/view", params={"filename": "loop.png", "type": "input"})

    await refused(response, (400, 404), "loop.png")
    await still_answering(client)


@pytest.mark.parametrize(
    "params",
    [
        {"filename": "a" * 5000, "type": "input"},
        {"filename": "example.jpg", "subfolder": "s" * 300, "type": "input"},
    ],
    ids=["5000-character name", "300-character subfolder"],
)
async def test_view_of_a_name_too_long_for_any_disk_is_refused(client: Any, params: dict[str, str]) -> None:
    response = await client.get("/view", params=params)

    error = await refused(response, 400, "bytes")
    assert error["type"] == "name_too_long"
    await still_answering(client)


async def test_view_of_a_missing_file_is_a_json_404(client: Any) -> None:
    response = await client.get("/view", params={"filename": "nowhere.png"})

    assert (await refused(response, 404))["type"] == "not_found"


# --- images too large to decode ----------------------------------------------------------------------
async def test_a_decompression_bomb_upload_is_refused_naming_max_image_pixels(
    client: Any, settings: Settings
) -> None:
    bomb = black_png(30_000, 30_000)
    assert len(bomb) < 150_000

    response = await post(client, "/upload/image", image_upload(bomb))

    await refused(response, 400, "max_image_pixels")
    assert sorted(path.name for path in settings.input_dir.iterdir()) == ["example.jpg"]
    await still_answering(client)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # Pillow's own, milder limit
async def test_an_image_over_max_image_pixels_is_refused_before_decoding(client: Any) -> None:
    response = await post(client, "/upload/image", image_upload(black_png(10_000, 10_000)))

    await refused(response, 400, "10000×10000", "max_image_pixels")


async def test_an_animation_counts_every_frame_against_max_image_pixels(
    client: Any, settings: Settings
) -> None:
    animation = animated_png(120, 1024)
    assert len(animation) < 64_000

    response = await post(client, "/upload/image", image_upload(animation, filename="anim.png"))

    await refused(response, 400, "120 frames", "max_image_pixels")
    (settings.input_dir / "anim.png").write_bytes(animation)  # put there by hand: LoadImage refuses it
    with pytest.raises(ImageReadError, match=r"120 frames.*max_image_pixels"):
        read_image(settings.input_dir / "anim.png", settings.max_image_pixels)
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "anim.png"}},
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
    }
    _, messages = await run_prompt(client, prompt)
    failure = next(message["data"] for message in messages if message["type"] == "execution_error")
    assert "max_image_pixels" in failure["exception_message"]
    await still_answering(client)


def test_a_short_animation_within_the_budget_still_loads(settings: Settings) -> None:
    (settings.input_dir / "short.png").write_bytes(animated_png(3, 16))

    images, masks = read_image(settings.input_dir / "short.png", settings.max_image_pixels)

    assert images.shape == (3, 16, 16, 3) and masks.shape == (3, 16, 16)


# --- names -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("filename", "fields", "kind"),
    [
        ("a" * 300 + ".png", {}, "name_too_long"),
        ("photo.png", {"subfolder": "s" * 300}, "name_too_long"),
        ("bad\x00name.png", {}, None),
        ("photo.png", {"subfolder": "example.jpg"}, None),  # a file is where the folder would be
    ],
    ids=["300-character name", "300-character subfolder", "NUL in the name", "file as subfolder"],
)
async def test_upload_names_no_disk_takes_are_refused(
    client: Any, settings: Settings, filename: str, fields: dict[str, str], kind: str | None
) -> None:
    response = await post(client, "/upload/image", image_upload(png_bytes(), filename=filename, **fields))

    error = await refused(response, 400)
    assert kind is None or error["type"] == kind
    assert sorted(path.name for path in settings.input_dir.iterdir()) == ["example.jpg"]
    await still_answering(client)


async def test_an_upload_named_like_a_folder_gets_a_new_name_or_a_clear_refusal(
    client: Any, settings: Settings
) -> None:
    (settings.input_dir / "photo.png").mkdir()

    saved = await post(client, "/upload/image", image_upload(png_bytes()))
    replacing = await post(client, "/upload/image", image_upload(png_bytes(), overwrite="true"))

    assert saved.status == 200 and (await saved.json())["name"] == "photo (1).png"
    await refused(replacing, 400, "folder")


@pytest.mark.parametrize(
    "reference",
    [
        '{"filename": "notes.txt", "type": "input"}',
        '{"filename": "folder", "type": "input"}',
        '{"filename": "missing.png", "type": "input"}',
        '{"filename": 5}',
        "[1, 2]",
        "not json",
        '{"filename": "' + "a" * 300 + '"}',
    ],
    ids=["a text file", "a folder", "missing", "a number", "a list", "not JSON", "a name too long"],
)
async def test_a_mask_for_something_that_is_not_an_image_is_refused(
    client: Any, settings: Settings, reference: str
) -> None:
    (settings.input_dir / "notes.txt").write_text("not an image")
    (settings.input_dir / "folder").mkdir()
    mask = io.BytesIO()
    Image.new("RGBA", (8, 8), (0, 0, 0, 0)).save(mask, format="PNG")

    body = image_upload(mask.getvalue(), filename="mask.png", original_ref=reference)
    response = await post(client, "/upload/mask", body)

    await refused(response, 400)
    await still_answering(client)


# --- malformed bodies --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"image": "x"}', "application/json"),
        (image_upload(png_bytes()), "multipart/form-data"),
        (image_upload(png_bytes())[:-40], MULTIPART),
        (b"no boundary anywhere in here", MULTIPART),
        (multipart(("image", "a.png", png_bytes()), boundary="another"), MULTIPART),
        (b"", MULTIPART),
    ],
    ids=["JSON", "no boundary", "truncated", "no parts", "another boundary", "empty"],
)
async def test_bodies_that_are_not_a_multipart_upload_are_refused(
    client: Any, body: bytes, content_type: str
) -> None:
    for route in ("/upload/image", "/upload/mask"):
        response = await post(client, route, body, content_type)
        await refused(response, 400)
    await still_answering(client)


# --- budgets -----------------------------------------------------------------------------------------
async def test_more_parts_than_max_upload_parts_are_refused(client: Any, settings: Settings) -> None:
    texts = [(f"field{index}", None, b"x") for index in range(settings.max_upload_parts)]

    response = await post(client, "/upload/image", multipart(("image", "a.png", png_bytes()), *texts))

    await refused(response, 413, "max_upload_parts")


async def test_a_file_over_max_upload_bytes_is_refused(client: Any, settings: Settings) -> None:
    big = png_bytes(tail=bytes(settings.max_upload_bytes))

    response = await post(client, "/upload/image", image_upload(big))

    await refused(response, 413, "max_upload_bytes")
    assert sorted(path.name for path in settings.input_dir.iterdir()) == ["example.jpg"]


async def test_an_upload_over_its_total_is_refused_before_it_is_read(client: Any, settings: Settings) -> None:
    files = [(f"extra{index}", "x.bin", bytes(settings.max_upload_bytes)) for index in range(7)]

    response = await post(client, "/upload/image", multipart(("image", "a.png", png_bytes()), *files))

    await refused(response, 413, "max_upload_bytes")


async def test_a_long_text_field_is_refused(client: Any) -> None:
    response = await post(client, "/upload/image", image_upload(png_bytes(), subfolder="s" * 100_000))

    error = await refused(response, 413, "'subfolder'")
    assert error["type"] == "field_too_large"


async def test_a_40_mib_text_field_sent_without_a_length_is_not_read_into_memory(client: Any) -> None:
    sent = 0

    async def endless_subfolder() -> AsyncIterator[bytes]:
        nonlocal sent
        yield f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="subfolder"\r\n\r\n'.encode()
        for _ in range(40 * 16):
            sent += 2**16
            yield b"s" * 2**16
        yield f"\r\n--{BOUNDARY}--\r\n".encode()

    response = await client.post(
        "/upload/image", data=endless_subfolder(), headers={"Content-Type": MULTIPART}
    )

    await refused(response, 413)
    assert sent < 8 * 2**20  # the server answered long before the 40 MiB were sent
    await still_answering(client)


async def test_an_upload_sent_without_a_length_is_stopped_at_its_total(
    client: Any, settings: Settings
) -> None:
    async def many_files() -> AsyncIterator[bytes]:
        yield multipart(("image", "a.png", png_bytes()))[: -len(f"--{BOUNDARY}--\r\n")]
        for index in range(7):  # each under max_upload_bytes, together far over the total
            disposition = f'form-data; name="f{index}"; filename="x"'
            yield f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
            yield bytes(settings.max_upload_bytes - 1000) + b"\r\n"
        yield f"--{BOUNDARY}--\r\n".encode()

    response = await client.post("/upload/image", data=many_files(), headers={"Content-Type": MULTIPART})

    error = await refused(response, 413, "max_upload_bytes")
    assert error["type"] == "request_too_large"
    await still_answering(client)
