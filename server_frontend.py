"""The editors the server puts at `/`: depthgraph's own (web/) or ComfyUI's official front end.

The official front end is the `comfyui-frontend-package` wheel (`pip install 'depthgraph[comfyui]'`),
a folder of built files that ComfyUI serves at its root. With `frontend: comfyui` depthgraph does the
same and keeps its own editor at `/depthgraph/`; the front end then loads the scripts `/extensions`
lists: its own core extensions and depthgraph's (web/comfyui/, the depth view).
"""

from __future__ import annotations

import asyncio
import importlib.util
import io
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from aiohttp import web
from depthgraph.engine.app.config import Settings
from depthgraph.engine.core.registry import NodeRegistry
from depthgraph.engine.formats.graph_file import GraphDocument, GraphFileError
from depthgraph.engine.formats.graph_library import LIBRARY_NAME, list_library, read_library_graph
from depthgraph.engine.formats.workflow_export import ExportError, document_to_workflow
from depthgraph.engine.models.common import SINGLE_FILE_SUFFIXES
from depthgraph.engine.models.manager import find_models
from depthgraph.server_security import error_response
from PIL import Image, ImageDraw

WEB_ROOT = Path(__file__).resolve().parent / "web"
EXTENSION_ROOT = WEB_ROOT / "comfyui"  # depthgraph's extensions for the official front end
EXTENSION_URL = "/extensions/depthgraph"
FRONTEND_PACKAGE = "comfyui_frontend_package"
# The releases of the official front end the browser tests ran against (pyproject's `comfyui` extra).
TESTED_VERSIONS = ((1, 58),)
FRONTEND_ROOT = web.AppKey("frontend_root", Path)
TEMPLATE_THUMBNAIL = (400, 300)


@dataclass(frozen=True)
class Library:
    """What the front-end routes read: the graph library offered as templates, the node types that
    turn its graphs into workflows, and the models folder."""

    graphs_dir: Path
    registry: NodeRegistry
    models_dir: Path
    max_upload_bytes: int


LIBRARY = web.AppKey("library", Library)


class FrontendMissing(RuntimeError):
    """`frontend: comfyui` without the package installed; the message says how to install it."""


def frontend_folder() -> Path:
    """The built front end inside the installed package (FrontendMissing if it is not installed)."""
    spec = importlib.util.find_spec(FRONTEND_PACKAGE)
    if spec is None or spec.origin is None:
        raise FrontendMissing(
            "the ComfyUI front end is not installed: pip install 'depthgraph[comfyui]' "
            "(or serve depthgraph's own editor with --frontend depthgraph)"
        )
    folder = Path(spec.origin).parent / "static"
    if not (folder / "index.html").is_file():
        raise FrontendMissing(
            f"the ComfyUI front end package has no static/index.html; reinstall it ({folder})"
        )
    return folder


def frontend_version() -> str:
    try:
        return version("comfyui-frontend-package")
    except PackageNotFoundError:
        return "unknown"


def version_warning() -> str | None:
    """A line for the server's start when the installed front end is outside the tested releases."""
    found = frontend_version()
    parts = tuple(int(part) for part in found.split(".")[:2] if part.isdigit())
    if parts in TESTED_VERSIONS:
        return None
    tested = ", ".join(f"{major}.{minor}" for major, minor in TESTED_VERSIONS)
    return f"warning: ComfyUI front end {found} is not a tested release ({tested}); some parts may not work"


async def comfyui_index(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(request.app[FRONTEND_ROOT] / "index.html", headers={"Cache-Control": "no-cache"})


async def depthgraph_index(request: web.Request) -> web.StreamResponse:
    page = WEB_ROOT / "index.html"
    if page.is_file():
        return web.FileResponse(page, headers={"Cache-Control": "no-cache"})
    return web.Response(text="depthgraph server: the API is at /prompt, /queue, /history, /ws\n")


async def user_css(request: web.Request) -> web.StreamResponse:
    """The front end links /user.css for a user's own styles; empty when there are none."""
    return web.Response(text="", content_type="text/css")


def extension_urls(root: Path | None) -> list[str]:
    """The scripts the official front end imports at start: its own under extensions/, then ours."""
    urls: list[str] = []
    if root is not None:
        urls += sorted(
            "/" + path.relative_to(root).as_posix() for path in (root / "extensions").rglob("*.js")
        )
    if EXTENSION_ROOT.is_dir():
        urls += sorted(f"{EXTENSION_URL}/{path.name}" for path in EXTENSION_ROOT.glob("*.js"))
    return urls


async def get_extensions(request: web.Request) -> web.Response:
    return web.json_response(extension_urls(request.app.get(FRONTEND_ROOT)))


# --- what the front end asks the server at start -----------------------------------------------------
async def get_features(request: web.Request) -> web.Response:
    """The server's feature flags (also sent in reply to the WebSocket `feature_flags` message)."""
    return web.json_response(server_features(request.app[LIBRARY].max_upload_bytes))


def server_features(max_upload_bytes: int) -> dict[str, Any]:
    # Previews are plain JPEG frames (no metadata frames); no asset service, no node replacements.
    return {
        "supports_preview_metadata": False,
        "max_upload_size": max_upload_bytes,
        "assets": False,
        "node_replacements": False,
    }


# Words the front end shows for what depthgraph's extension adds (its toolbar button's tooltip is the
# command's label from here); depthgraph's nodes have English names only.
MESSAGES = {"en": {"commands": {"depthgraph_openDepthView": {"label": "Open depth view"}}}}


async def get_i18n(request: web.Request) -> web.Response:
    """Translations for the front end, by language, as node packs bring them to ComfyUI."""
    return web.json_response(MESSAGES)


async def get_global_subgraphs(request: web.Request) -> web.Response:
    """Subgraph blueprints node packs share; depthgraph ships none (a user's own are in userdata)."""
    return web.json_response({})


async def get_global_subgraph(request: web.Request) -> web.Response:
    return web.json_response(None)


async def get_node_replacements(request: web.Request) -> web.Response:
    return web.json_response({})


async def get_model_folders(request: web.Request) -> web.Response:
    """The model library's folders: depthgraph keeps every checkpoint in one models folder."""
    library = request.app[LIBRARY]
    folder = {
        "name": "checkpoints",
        "folders": [str(library.models_dir)],
        "extensions": sorted(SINGLE_FILE_SUFFIXES),
    }
    return web.json_response([folder])


async def get_model_folder(request: web.Request) -> web.Response:
    if request.match_info["folder"] != "checkpoints":
        return error_response(404, "not_found", "depthgraph's only model folder is 'checkpoints'")
    library = request.app[LIBRARY]
    return web.json_response(await asyncio.to_thread(model_entries, library.models_dir))


def model_entries(models_dir: Path) -> list[dict[str, Any]]:
    entries = []
    for source in find_models(models_dir):
        if source.path is None:  # the built-in tiny model is no file
            continue
        stat = source.path.stat()
        entries.append(
            {
                "name": source.name,
                "pathIndex": 0,
                "modified": stat.st_mtime,
                "created": stat.st_ctime,
                "size": stat.st_size if source.path.is_file() else 0,
            }
        )
    return entries


# --- the graph library as workflow templates ---------------------------------------------------------
async def get_workflow_templates(request: web.Request) -> web.Response:
    """Example workflows of node packs, by pack; the library's graphs are the core templates."""
    return web.json_response({})


async def get_template_index(request: web.Request) -> web.Response:
    """The template browser's one category: depthgraph's graph library, with titles and descriptions."""
    entries = await asyncio.to_thread(list_library, request.app[LIBRARY].graphs_dir)
    templates = [
        {
            "name": Path(entry.name).stem,
            "title": entry.title,
            "description": entry.description,
            "mediaType": "image",
            "mediaSubtype": "png",
        }
        for entry in entries
        if not entry.error
    ]
    category = {"moduleName": "default", "title": "depthgraph", "type": "image", "templates": templates}
    return web.json_response([category])


async def get_template_logos(request: web.Request) -> web.Response:
    return web.json_response({})


async def get_template_file(request: web.Request) -> web.StreamResponse:
    """`/templates/NAME.json` (the graph as a workflow) or `/templates/NAME-1.png` (its picture)."""
    name = request.match_info["name"]
    library = request.app[LIBRARY]
    stem, suffix = (name[: -len(".json")], "json") if name.endswith(".json") else (name, "")
    if not suffix and name.endswith("-1.png"):
        stem, suffix = name[: -len("-1.png")], "png"
    if not suffix or not LIBRARY_NAME.match(f"{stem}.json"):
        return error_response(404, "not_found", f"no template file {name[:80]!r}; see /templates/index.json")
    try:
        document = await asyncio.to_thread(read_library_graph, library.graphs_dir, f"{stem}.json")
    except GraphFileError as error:
        return error_response(404, "not_found", str(error))
    if suffix == "png":
        picture = await asyncio.to_thread(draw_graph, document)
        return web.Response(body=picture, content_type="image/png")
    try:
        workflow = document_to_workflow(document, library.registry)
    except ExportError as error:
        return error_response(404, "not_found", f"template {stem} cannot be opened here: {error}")
    return web.json_response(workflow)


def draw_graph(document: GraphDocument) -> bytes:
    """A picture of the graph: its nodes where the layout puts them, linked, with their titles."""
    places = document.layout.get("nodes", {}) if isinstance(document.layout, dict) else {}
    boxes = {}
    for index, node_id in enumerate(document.prompt):
        place = places.get(node_id, {})
        x, y = place.get("pos", [index % 6 * 360, index // 6 * 220])
        width, height = place.get("size", [300, 160])
        boxes[node_id] = (float(x), float(y), float(x + width), float(y + height))
    left = min(box[0] for box in boxes.values()) - 40
    top = min(box[1] for box in boxes.values()) - 40
    right = max(box[2] for box in boxes.values()) + 40
    bottom = max(box[3] for box in boxes.values()) + 40
    scale = min(TEMPLATE_THUMBNAIL[0] / (right - left), TEMPLATE_THUMBNAIL[1] / (bottom - top))

    shift_x = (TEMPLATE_THUMBNAIL[0] - (right - left) * scale) / 2  # centred both ways
    shift_y = (TEMPLATE_THUMBNAIL[1] - (bottom - top) * scale) / 2

    def at(x: float, y: float) -> tuple[float, float]:
        return (x - left) * scale + shift_x, (y - top) * scale + shift_y

    image = Image.new("RGB", TEMPLATE_THUMBNAIL, (24, 24, 27))
    draw = ImageDraw.Draw(image)
    for node_id, node in document.prompt.items():
        for value in node.get("inputs", {}).values():
            if isinstance(value, list) and len(value) == 2 and str(value[0]) in boxes:
                source, target = boxes[str(value[0])], boxes[node_id]
                start = at(source[2], (source[1] + source[3]) / 2)
                draw.line([start, at(target[0], (target[1] + target[3]) / 2)], fill=(120, 160, 220), width=2)
    for node_id, box in boxes.items():
        draw.rounded_rectangle([at(box[0], box[1]), at(box[2], box[3])], 4, fill=(53, 53, 60))
        title = str(document.prompt[node_id].get("_meta", {}).get("title", ""))
        draw.text(at(box[0] + 12, box[1] + 12), title[:24], fill=(230, 230, 230))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


FRONTEND_ROUTES: list[tuple[str, str, Any]] = [
    ("GET", "/features", get_features),
    ("GET", "/i18n", get_i18n),
    ("GET", "/global_subgraphs", get_global_subgraphs),
    ("GET", "/global_subgraphs/{subgraph_id}", get_global_subgraph),
    ("GET", "/node_replacements", get_node_replacements),
    ("GET", "/experiment/models", get_model_folders),
    ("GET", "/experiment/models/{folder}", get_model_folder),
    ("GET", "/workflow_templates", get_workflow_templates),
    ("GET", "/extensions", get_extensions),
]


def add_frontend(app: web.Application, settings: Settings, registry: NodeRegistry) -> None:
    """The editor `settings.frontend` names at `/`, the other one beside it, and the templates (the
    API routes the front ends use are FRONTEND_ROUTES)."""
    app[LIBRARY] = Library(settings.graphs_dir, registry, settings.models_dir, settings.max_upload_bytes)
    app.router.add_get("/templates/index.json", get_template_index)
    app.router.add_get("/templates/index_logo.json", get_template_logos)
    app.router.add_get("/templates/{name}", get_template_file)
    add_static(app, settings)


def add_static(app: web.Application, settings: Settings) -> None:
    if WEB_ROOT.is_dir():
        app.router.add_static("/web", WEB_ROOT)
    if EXTENSION_ROOT.is_dir():
        app.router.add_static(EXTENSION_URL, EXTENSION_ROOT)
    if settings.frontend != "comfyui":
        app.router.add_get("/", depthgraph_index)
        return
    root = frontend_folder()
    app[FRONTEND_ROOT] = root
    app.router.add_get("/", comfyui_index)
    app.router.add_get("/index.html", comfyui_index)
    app.router.add_get("/depthgraph", depthgraph_index)
    app.router.add_get("/depthgraph/", depthgraph_index)
    app.router.add_get("/user.css", user_css)
    for entry in sorted(root.iterdir()):
        if entry.is_dir():
            app.router.add_static(f"/{entry.name}", entry)
        elif entry.name != "index.html":
            app.router.add_get(f"/{entry.name}", static_file(entry))


def static_file(path: Path) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(path)

    return handler
