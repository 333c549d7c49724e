"""The server's file routes: `/view` serves results and inputs, `/upload/image` and `/upload/mask`
take uploads (ComfyUI's forms), every name going through the file store's checks.

The handlers find the file store and the upload limits on the app (`FILES`, `LIMITS`), which the
server sets, so this module needs nothing else of it.
"""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from urllib.parse import unquote

from aiohttp import BodyPartReader, web

from engine.config import Settings
from engine.files import FileStore, UnsafePathError

FILES = web.AppKey("files", FileStore)
LIMITS = web.AppKey("limits", Settings)  # max_upload_bytes and max_image_pixels


async def get_view(request: web.Request) -> web.StreamResponse:
    files = request.app[FILES]
    kind = request.query.get("type", "output")
    try:
        if kind not in ("input", "output", "temp"):
            raise UnsafePathError(f"type must be input, output or temp, not {kind!r}")
        path = files.resolve(kind, request.query.get("filename", ""), request.query.get("subfolder", ""))  # type: ignore[arg-type]
    except UnsafePathError as error:
        return web.json_response({"error": str(error)}, status=400)
    if not path.is_file():
        return web.json_response({"error": "no such file"}, status=404)
    return web.FileResponse(path)


async def read_upload(request: web.Request, limit: int) -> tuple[dict[str, str], dict[str, bytes]]:
    """Text fields and file fields of a multipart upload, refusing more than `limit` bytes per file."""
    fields: dict[str, str] = {}
    blobs: dict[str, bytes] = {}
    if not request.content_type.startswith("multipart/"):
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "send multipart/form-data with the image in a field named 'image'"}),
            content_type="application/json",
        )
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            continue  # nested multiparts are not uploads we take
        name = part.name or ""
        if part.filename is None:
            fields[name] = (await part.read(decode=True)).decode("utf-8", "replace")
            continue
        fields[f"{name}.filename"] = part.filename
        data = bytearray()
        while chunk := await part.read_chunk():
            data.extend(chunk)
            if len(data) > limit:
                raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(data))
        blobs[name] = bytes(data)
    return fields, blobs


def check_image(data: bytes, max_pixels: int) -> tuple[int, int]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as picture:
            size = picture.size
            if size[0] * size[1] > max_pixels:
                raise ValueError(f"the image is {size[0]}×{size[1]}, over the {max_pixels} pixel limit")
            picture.verify()
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise ValueError(f"the upload is not an image that can be read ({error})") from None
    return size


async def post_upload_image(request: web.Request) -> web.Response:
    return await upload(request, mask=False)


async def post_upload_mask(request: web.Request) -> web.Response:
    return await upload(request, mask=True)


async def upload(request: web.Request, mask: bool) -> web.Response:
    files, limits = request.app[FILES], request.app[LIMITS]
    fields, blobs = await read_upload(request, limits.max_upload_bytes)
    data = blobs.get("image")
    if data is None:
        return web.json_response({"error": "send the image as a multipart field named 'image'"}, status=400)
    kind = fields.get("type", "input")
    subfolder = fields.get("subfolder", "")
    # Only the name is kept: any folders in it, plain or percent-encoded, are dropped.
    filename = Path(unquote(fields.get("image.filename") or "").replace("\\", "/")).name or "upload.png"
    try:
        if kind not in ("input", "temp"):
            raise UnsafePathError(f"uploads go to the input or temp folder, not {kind!r}")
        await asyncio.to_thread(check_image, data, limits.max_image_pixels)
        if mask:
            data = await asyncio.to_thread(apply_mask, files, fields.get("original_ref", ""), data)
        name = await asyncio.to_thread(
            files.save_upload,
            kind,
            filename,
            subfolder,
            data,
            fields.get("overwrite") == "true",
        )
    except UnsafePathError as error:
        return web.json_response({"error": str(error)}, status=400)
    except ValueError as error:
        return web.json_response({"error": str(error)}, status=400)
    return web.json_response({"name": name, "subfolder": subfolder, "type": kind})


def apply_mask(files: FileStore, original_ref: str, mask_png: bytes) -> bytes:
    """ComfyUI's mask upload: the original image with the mask's alpha as its alpha channel."""
    from PIL import Image

    try:
        reference = json.loads(original_ref)
        original = files.resolve(
            reference.get("type", "input"), reference["filename"], reference.get("subfolder", "")
        )
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
        raise ValueError(
            "original_ref must name the image the mask belongs to ({filename, subfolder, type})"
        ) from None
    if not original.is_file():
        raise ValueError(f"the original image {original.name} is not there")
    with Image.open(original) as base, Image.open(io.BytesIO(mask_png)) as painted:
        result = base.convert("RGBA")
        alpha = painted.convert("RGBA").getchannel("A").resize(result.size)
        result.putalpha(alpha)
        buffer = io.BytesIO()
        result.save(buffer, format="PNG")
    return buffer.getvalue()
