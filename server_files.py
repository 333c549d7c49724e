"""The server's file routes: `/view` serves results and inputs, `/upload/image` and `/upload/mask`
take uploads (ComfyUI's forms), every name going through the file store's checks.

Files are served as what they are: an upload is stored under the extension of the format its bytes
decode as (a PNG named `x.html` becomes `x.png`), and `/view` answers with a type from a fixed list
by extension (anything else is a download), always with `X-Content-Type-Options: nosniff`, so no
file is ever run as a page in the user's browser.

Every refusal is JSON, `{"error": {"type": "<code>", "message": "<what was wrong and what to do>"}}`,
and bad input is answered 4xx, never 500: a multipart body is read within budgets (parts, bytes per
file, bytes in all, bytes per text field) before anything is decoded, and an image is checked for its
format and pixel count (every frame of an animation) before it is decoded.

The handlers find the file store and the limits on the app (`FILES`, `LIMITS`), which the server
sets, so this module needs nothing else of it.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote, unquote

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from depthgraph.engine.app.config import Settings
from depthgraph.engine.core.files import (
    DiskFullError,
    FileStore,
    FolderKind,
    NameTooLongError,
    UnsafePathError,
)
from depthgraph.nodes.image_tensors import bomb_problem, pixel_problem
from depthgraph.server_security import error_response
from PIL import Image, ImageOps, UnidentifiedImageError

FILES = web.AppKey("files", FileStore)
LIMITS = web.AppKey("limits", Settings)  # max_upload_bytes, max_upload_parts and max_image_pixels

# The formats an upload may have (Pillow's names), each with the extensions it may keep; the first
# is the one it gets. MPO is how Pillow opens the JPEGs of many phones and cameras.
UPLOAD_FORMATS: Mapping[str, tuple[str, ...]] = {
    "PNG": (".png",),
    "JPEG": (".jpg", ".jpeg"),
    "MPO": (".jpg", ".jpeg"),
    "WEBP": (".webp",),
}
ACCEPTED = "PNG, JPEG or WebP"
# What /view may call a file; everything else is sent as a download.
VIEW_TYPES: Mapping[str, str] = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
}
DOWNLOAD_TYPE = "application/octet-stream"
MAX_FIELD_BYTES = 64 * 2**10  # a text field (subfolder, type, original_ref ...)
FIELDS_ALLOWANCE = 2**20  # the whole upload: the file, plus this much for fields and part headers


class Refusal(Exception):
    """A request the file routes refuse: its status, a snake_case code and a message for the user."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message

    def response(self) -> web.Response:
        return error_response(self.status, self.kind, self.message)


def _name_refusal(error: UnsafePathError) -> Refusal:
    kind = "name_too_long" if isinstance(error, NameTooLongError) else "invalid_name"
    return Refusal(400, kind, str(error))


# --- /view -------------------------------------------------------------------------------------------
async def get_view(request: web.Request) -> web.StreamResponse:
    try:
        path = await asyncio.to_thread(find_view_file, request.app[FILES], request.query)
    except Refusal as refusal:
        return refusal.response()
    return web.FileResponse(path, headers=view_headers(path))


def find_view_file(files: FileStore, query: Mapping[str, str]) -> Path:
    """The file `/view?filename&subfolder&type` names, or a `Refusal` saying why there is none."""
    kind = query.get("type", "output")
    if kind not in ("input", "output", "temp"):
        raise Refusal(400, "invalid_type", f"type must be input, output or temp, not {kind[:40]!r}")
    try:
        path = files.resolve(kind, query.get("filename", ""), query.get("subfolder", ""))  # type: ignore[arg-type]
        found = path.is_file()
    except UnsafePathError as error:
        raise _name_refusal(error) from None
    except OSError:
        found = False
    if not found:
        raise Refusal(404, "not_found", f"the {kind} folder has no such file; check filename and subfolder")
    return path


def view_headers(path: Path) -> dict[str, str]:
    """The file's own type from a fixed list (a download for anything else), never sniffed."""
    headers = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "default-src 'none'; sandbox"}
    content_type = VIEW_TYPES.get(path.suffix.lower())
    if content_type is not None:
        headers["Content-Type"] = content_type
    else:
        headers["Content-Type"] = DOWNLOAD_TYPE
        headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(path.name)}"
    return headers


# --- uploads -----------------------------------------------------------------------------------------
@dataclass
class Upload:
    """What a multipart upload carried: its text fields and the file of its `image` field."""

    fields: dict[str, str] = field(default_factory=dict)
    image: bytes | None = None
    filename: str = ""


async def read_upload(request: web.Request, limits: Settings) -> Upload:
    """Read a multipart upload within its budgets: `max_upload_parts` parts, `max_upload_bytes` per
    file, that plus 1 MiB in all, 64 KiB per text field; a `Refusal` (413) as soon as one is spent."""
    if request.content_type != "multipart/form-data":
        raise Refusal(
            400, "not_multipart", "send multipart/form-data with the image in a field named 'image'"
        )
    total = limits.max_upload_bytes + FIELDS_ALLOWANCE
    if request.content_length is not None and request.content_length > total:
        raise _too_large(request.content_length, limits)
    upload = Upload()
    parts = 0
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            parts += 1
            if parts > limits.max_upload_parts:
                raise Refusal(
                    413,
                    "too_many_parts",
                    f"the upload has more than {limits.max_upload_parts} parts, the max_upload_parts "
                    "limit (settings); send the image and its few fields only",
                )
            if not isinstance(part, BodyPartReader):
                raise Refusal(400, "malformed_multipart", "a multipart inside the upload is not taken")
            name = part.name or ""
            is_file = part.filename is not None
            limit = limits.max_upload_bytes if is_file else MAX_FIELD_BYTES
            data = bytearray()
            while chunk := await part.read_chunk():
                data.extend(chunk)
                if len(data) > limit:
                    raise _part_too_large(name, is_file, limits)
                if request.content.total_bytes > total:
                    raise _too_large(request.content.total_bytes, limits)
            if not is_file:
                upload.fields[name] = data.decode("utf-8", "replace")
            elif name == "image":
                upload.image, upload.filename = bytes(data), part.filename or ""
    except (ValueError, RuntimeError, AssertionError, EOFError, HttpProcessingError) as error:
        raise Refusal(
            400,
            "malformed_multipart",
            f"the multipart body cannot be read ({_reason(error)}); send multipart/form-data "
            "with a boundary, as a browser's FormData does",
        ) from None
    return upload


def _too_large(size: int, limits: Settings) -> Refusal:
    return Refusal(
        413,
        "request_too_large",
        f"the upload is {size} bytes or more, over max_upload_bytes ({limits.max_upload_bytes}) "
        f"plus {FIELDS_ALLOWANCE} for its fields; send a smaller image or raise max_upload_bytes (settings)",
    )


def _part_too_large(name: str, is_file: bool, limits: Settings) -> Refusal:
    if is_file:
        return Refusal(
            413,
            "upload_too_large",
            f"the file in field {name[:40]!r} is over {limits.max_upload_bytes} bytes, the "
            "max_upload_bytes limit (settings); send a smaller image or raise the limit",
        )
    return Refusal(
        413,
        "field_too_large",
        f"the text field {name[:40]!r} is over {MAX_FIELD_BYTES} bytes; fields hold short text "
        "(the image itself goes in the field 'image', up to max_upload_bytes)",
    )


async def post_upload_image(request: web.Request) -> web.Response:
    return await upload(request, mask=False)


async def post_upload_mask(request: web.Request) -> web.Response:
    return await upload(request, mask=True)


async def upload(request: web.Request, mask: bool) -> web.Response:
    files, limits = request.app[FILES], request.app[LIMITS]
    try:
        form = await read_upload(request, limits)
        stored = await asyncio.to_thread(store_upload, files, limits, form, mask)
    except Refusal as refusal:
        return refusal.response()
    return web.json_response(stored)


def store_upload(files: FileStore, limits: Settings, form: Upload, mask: bool) -> dict[str, str]:
    """Check an upload and save it; its answer `{name, subfolder, type}` names the file as stored."""
    if form.image is None:
        raise Refusal(400, "missing_image", "send the image as a multipart file field named 'image'")
    kind = form.fields.get("type", "input")
    if kind not in ("input", "temp"):
        raise Refusal(400, "invalid_type", f"uploads go to the input or temp folder, not {kind[:40]!r}")
    subfolder = form.fields.get("subfolder", "")
    image_format = check_image(form.image, limits.max_image_pixels)
    data = form.image
    if mask:
        data = apply_mask(files, form.fields.get("original_ref", ""), data, limits.max_image_pixels)
        image_format = "PNG"
    filename = stored_name(form.filename, image_format)
    overwrite = form.fields.get("overwrite") == "true"
    folder: FolderKind = "temp" if kind == "temp" else "input"
    try:
        name = files.save_upload(folder, filename, subfolder, data, overwrite)
    except UnsafePathError as error:
        raise _name_refusal(error) from None
    except DiskFullError as error:
        raise Refusal(507, "disk_full", str(error)) from None
    except (FileExistsError, NotADirectoryError, IsADirectoryError):
        raise Refusal(
            400,
            "name_taken",
            f"a file is in the way of subfolder {subfolder[:80]!r}; choose another subfolder",
        ) from None
    return {"name": name, "subfolder": subfolder, "type": kind}


def stored_name(filename: str, image_format: str) -> str:
    """The name an upload is kept under: only its last part (folders in it, plain or percent-encoded,
    are dropped), with an extension of its format, e.g. `page.html` holding a PNG is `page.png`."""
    name = PurePosixPath(unquote(filename).replace("\\", "/")).name
    if name in ("", ".", ".."):
        name = "upload"
    extensions = UPLOAD_FORMATS[image_format]
    path = PurePosixPath(name)
    if path.suffix.lower() in extensions:
        return name
    return f"{path.stem if path.suffix else name}{extensions[0]}"


def check_image(data: bytes, max_pixels: int) -> str:
    """The format of uploaded bytes (a key of `UPLOAD_FORMATS`), read from the header only: refused
    when they are not an image, another format, or more than `max_pixels` (every frame counted)."""
    try:
        with Image.open(io.BytesIO(data)) as picture:
            if picture.format not in UPLOAD_FORMATS:
                raise Refusal(
                    400,
                    "unsupported_image_format",
                    f"the upload is a {picture.format} image; upload {ACCEPTED}",
                )
            frames = getattr(picture, "n_frames", 1)
            problem = pixel_problem("the image", picture.height, picture.width, max_pixels, frames)
            if problem:
                raise Refusal(400, "image_too_large", problem)
            picture.verify()
    except Refusal:
        raise
    except Image.DecompressionBombError:
        raise Refusal(400, "image_too_large", bomb_problem("the image", max_pixels)) from None
    except Exception as error:  # a crafted file can make a Pillow plugin raise anything
        raise Refusal(
            400,
            "not_an_image",
            f"the upload is not an image that can be read ({_reason(error)}); upload {ACCEPTED}",
        ) from None
    return str(picture.format)


def apply_mask(files: FileStore, original_ref: str, mask_png: bytes, max_pixels: int) -> bytes:
    """ComfyUI's mask upload: the original image with the mask's alpha as its alpha channel."""
    original = _original_image(files, original_ref)
    try:
        with Image.open(original) as base, Image.open(io.BytesIO(mask_png)) as painted:
            problem = pixel_problem(original.name, base.height, base.width, max_pixels)
            if problem:
                raise Refusal(400, "image_too_large", problem)
            # Upright, as the browser shows the photo the mask was painted on and LoadImage reads it.
            result = ImageOps.exif_transpose(base).convert("RGBA")
            alpha = painted.convert("RGBA").getchannel("A").resize(result.size)
            result.putalpha(alpha)
            buffer = io.BytesIO()
            result.save(buffer, format="PNG")
    except Refusal:
        raise
    except Image.DecompressionBombError:
        raise Refusal(400, "image_too_large", bomb_problem(original.name, max_pixels)) from None
    except Exception as error:  # as in check_image: any file may sit in the folder
        raise Refusal(
            400,
            "invalid_original_ref",
            f"the original {original.name[:80]!r} is not an image that can be read ({_reason(error)})",
        ) from None
    return buffer.getvalue()


def _reason(error: Exception) -> str:
    """A short reason for a refusal, without the server's paths or object addresses."""
    if isinstance(error, UnidentifiedImageError):
        return "its bytes are not in a known image format"
    if isinstance(error, HttpProcessingError):
        return error.message.strip()[:200]
    return str(error).strip()[:200] or type(error).__name__


def _original_image(files: FileStore, original_ref: str) -> Path:
    """The file `original_ref` ({filename, subfolder, type}, as JSON) names."""
    wanted = "original_ref must name the image the mask belongs to, as JSON {filename, subfolder, type}"
    try:
        reference: Any = json.loads(original_ref)
    except json.JSONDecodeError:
        raise Refusal(400, "invalid_original_ref", wanted) from None
    if not isinstance(reference, dict):
        raise Refusal(400, "invalid_original_ref", wanted)
    kind, filename = reference.get("type", "input"), reference.get("filename")
    subfolder = reference.get("subfolder", "")
    if not (isinstance(filename, str) and isinstance(subfolder, str) and kind in ("input", "output", "temp")):
        raise Refusal(400, "invalid_original_ref", wanted)
    try:
        original = files.resolve(kind, filename, subfolder)
        found = original.is_file()
    except UnsafePathError as error:
        raise _name_refusal(error) from None
    except OSError:
        found = False
    if not found:
        raise Refusal(
            400,
            "invalid_original_ref",
            f"the original image {filename[:80]!r} is not a file in the {kind} folder",
        )
    return original
