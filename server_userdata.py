"""What ComfyUI's front end keeps on the server: its user, its settings and its files (saved workflows,
keybindings, node templates), with the routes and answers of ComfyUI's user manager.

depthgraph has one user, `default`; its files live in `<data folder>/users/default/`, the settings in
`comfy.settings.json` there. Every name a client sends is checked before it touches the disk: relative,
no `..`, no NUL, short enough, and still inside the user's folder once symlinks are resolved. Writes
go to a temporary file that replaces the old one, so a failed write never leaves half a workflow.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from aiohttp import web
from depthgraph.engine.core.files import UnsafePathError, check_relative_name
from depthgraph.engine.formats.json_body import JsonBodyError, parse_json
from depthgraph.server_files import LIMITS
from depthgraph.server_requests import read_body, read_json
from depthgraph.server_security import error_response, json_error

USER = "default"
SETTINGS_FILE = "comfy.settings.json"
USER_ROOT = web.AppKey("user_root", Path)
SETTINGS_LOCK = web.AppKey("settings_lock", asyncio.Lock)


def user_root(request: web.Request) -> Path:
    return request.app[USER_ROOT]


def user_path(root: Path, name: str, what: str = "file") -> Path:
    """`name` (as the front end sends it, `/`-separated) inside `root`, or a 4xx saying what is wrong."""
    if "%" in name:  # ComfyUI decodes names once more; a front end may have encoded them twice
        name = unquote(name)
    if not name.strip("/"):
        raise json_error(400, "invalid_path", f"no {what} name given")
    try:
        relative = check_relative_name(name, what)
    except UnsafePathError as error:
        raise json_error(403, "invalid_path", str(error)) from None
    if any(part in ("", ".") for part in name.split("/")[:-1]) or name.endswith("/"):
        raise json_error(400, "invalid_path", f"{what} {name!r} has an empty part; write a/b.json")
    path = root / relative
    resolved_root = root.resolve()
    if not path.resolve().is_relative_to(resolved_root) or path.resolve() == resolved_root:
        raise json_error(403, "invalid_path", f"{what} {name!r} leads outside the user's folder")
    return path


def file_info(path: Path, base: Path) -> dict[str, Any]:
    stat = path.stat()
    return {
        "path": path.relative_to(base).as_posix(),
        "size": stat.st_size,
        "modified": int(stat.st_mtime * 1000),
        "created": int(stat.st_ctime * 1000),
    }


def flag(request: web.Request, name: str, default: bool = False) -> bool:
    value = request.query.get(name)
    return default if value is None else value.lower() == "true"


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to a temporary file beside `path`, then put it in place in one step."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# --- users -----------------------------------------------------------------------------------------
async def get_users(request: web.Request) -> web.Response:
    """One-user mode, as ComfyUI without --multi-user answers it (no `users`: no login screen)."""
    return web.json_response({"storage": "server", "migrated": True})


# --- settings --------------------------------------------------------------------------------------
def read_settings(root: Path) -> dict[str, Any]:
    try:
        data = json.loads((root / SETTINGS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):  # none yet, or damaged: the front end starts from its defaults
        return {}
    return data if isinstance(data, dict) else {}


def write_settings(root: Path, values: dict[str, Any]) -> None:
    write_atomic(root / SETTINGS_FILE, json.dumps(values, indent=4).encode("utf-8"))


async def get_settings(request: web.Request) -> web.Response:
    return web.json_response(await asyncio.to_thread(read_settings, user_root(request)))


async def get_setting(request: web.Request) -> web.Response:
    values = await asyncio.to_thread(read_settings, user_root(request))
    return web.json_response(values.get(request.match_info["setting_id"]))


async def setting_body(request: web.Request) -> Any:
    """The JSON body of a settings write; the front end sends it with no Content-Type header."""
    return await read_json(request)


async def post_settings(request: web.Request) -> web.Response:
    changes = await setting_body(request)
    if not isinstance(changes, dict):
        return error_response(400, "invalid_body", "send a JSON object of setting id: value")
    await update_settings(request, changes)
    return web.Response()


async def post_setting(request: web.Request) -> web.Response:
    setting_id = request.match_info["setting_id"]
    if not setting_id or len(setting_id) > 256:
        return error_response(400, "invalid_setting", "a setting id is 1 to 256 characters")
    await update_settings(request, {setting_id: await setting_body(request)})
    return web.Response()


async def update_settings(request: web.Request, changes: dict[str, Any]) -> None:
    root = user_root(request)
    async with request.app[SETTINGS_LOCK]:  # two writes at once must not lose one another

        def merge() -> None:
            write_settings(root, {**read_settings(root), **changes})

        try:
            await asyncio.to_thread(merge)
        except OSError as error:
            raise json_error(507, "store_unavailable", f"the settings cannot be saved: {error}") from None


# --- files -----------------------------------------------------------------------------------------
async def list_userdata(request: web.Request) -> web.Response:
    """`?dir=workflows&recurse=true&full_info=true`: the files in a folder of the user's."""
    root = user_root(request)
    folder_name = request.query.get("dir", "")
    if not folder_name:
        return error_response(400, "invalid_path", "say which folder to list: ?dir=workflows")
    folder = user_path(root, folder_name, "folder")
    recurse, full_info, split = flag(request, "recurse"), flag(request, "full_info"), flag(request, "split")

    def listing() -> list[Any]:
        if not folder.is_dir():
            return []  # nothing saved there yet
        found = folder.rglob("*") if recurse else folder.glob("*")
        files = sorted(path for path in found if path.is_file() and not path.name.startswith(".tmp-"))
        if full_info:
            return [file_info(path, folder) for path in files]
        names = [path.relative_to(folder).as_posix() for path in files]
        return [[name, *name.split("/")] for name in names] if split else names

    return web.json_response(await asyncio.to_thread(listing))


async def get_userdata(request: web.Request) -> web.StreamResponse:
    path = user_path(user_root(request), request.match_info["file"])
    if not await asyncio.to_thread(path.is_file):
        if path.name == "user.css" and path.parent == user_root(request):
            return web.Response(text="", content_type="text/css")  # the page links it; no styles yet
        return error_response(404, "not_found", f"the user has no file {request.match_info['file']!r}")
    headers = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "default-src 'none'; sandbox"}
    if path.suffix == ".css":
        headers["Content-Type"] = "text/css"
    elif path.suffix == ".json":
        headers["Content-Type"] = "application/json"
    else:
        headers["Content-Type"] = "application/octet-stream"
        headers["Content-Disposition"] = "attachment"
    return web.FileResponse(path, headers=headers)


async def post_userdata(request: web.Request) -> web.Response:
    """Store the body as the user's file; `?overwrite=false` refuses to replace one (409)."""
    root = user_root(request)
    path = user_path(root, request.match_info["file"])
    overwrite = flag(request, "overwrite", default=True)
    limit = request.app[LIMITS].max_userdata_bytes
    data = await read_body(request, limit, "max_userdata_bytes", "a user file")
    if path.suffix == ".json":
        try:
            parse_json(data.decode("utf-8"), request.app[LIMITS].max_json_depth)
        except (UnicodeDecodeError, JsonBodyError) as error:
            return error_response(400, "invalid_json", f"{path.name} is not JSON: {error}")
    if not overwrite and await asyncio.to_thread(path.exists):
        return error_response(
            409, "file_exists", f"{request.match_info['file']!r} exists; overwrite=true replaces it"
        )
    if await asyncio.to_thread(path.is_dir):
        return error_response(409, "file_exists", f"{request.match_info['file']!r} is a folder")
    try:
        await asyncio.to_thread(write_atomic, path, data)
    except OSError as error:
        return error_response(507, "store_unavailable", f"the file cannot be saved: {error.strerror}")
    return saved(request, path, root)


def exists(name: str) -> web.Response:
    return error_response(409, "file_exists", f"{name!r} exists; overwrite=true replaces it")


def saved(request: web.Request, path: Path, root: Path) -> web.Response:
    if flag(request, "full_info"):
        return web.json_response(file_info(path, root))
    return web.json_response(path.relative_to(root).as_posix())


async def delete_userdata(request: web.Request) -> web.Response:
    path = user_path(user_root(request), request.match_info["file"])
    if not await asyncio.to_thread(path.is_file):
        return error_response(404, "not_found", f"the user has no file {request.match_info['file']!r}")
    await asyncio.to_thread(path.unlink)
    return web.Response(status=204)


async def move_userdata(request: web.Request) -> web.Response:
    root = user_root(request)
    source = user_path(root, request.match_info["file"])
    target = user_path(root, request.match_info["dest"])
    if not await asyncio.to_thread(source.is_file):
        return error_response(404, "not_found", f"the user has no file {request.match_info['file']!r}")
    if await asyncio.to_thread(target.exists) and not flag(request, "overwrite"):
        return error_response(
            409, "file_exists", f"{request.match_info['dest']!r} exists; overwrite=true replaces it"
        )

    def move() -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(source, target)

    await asyncio.to_thread(move)
    return saved(request, target, root)


USERDATA_ROUTES: list[tuple[str, str, Any]] = [
    ("GET", "/users", get_users),
    ("GET", "/settings", get_settings),
    ("POST", "/settings", post_settings),
    ("GET", "/settings/{setting_id}", get_setting),
    ("POST", "/settings/{setting_id}", post_setting),
    ("GET", "/userdata", list_userdata),
    ("GET", "/userdata/{file}", get_userdata),
    ("POST", "/userdata/{file}", post_userdata),
    ("DELETE", "/userdata/{file}", delete_userdata),
    ("POST", "/userdata/{file}/move/{dest}", move_userdata),
]


def add_userdata(app: web.Application, data_dir: Path) -> None:
    """Keep the user's files under `data_dir` (the routes are USERDATA_ROUTES)."""
    app[USER_ROOT] = data_dir / "users" / USER
    app[SETTINGS_LOCK] = asyncio.Lock()
