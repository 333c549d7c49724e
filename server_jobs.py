"""ComfyUI's jobs API: the queue and the history as one list of jobs, which the front end's queue panel
reads (`GET /api/jobs?status=...`), with one job's details and cancelling.

A job is a prompt from the store: `pending`, `in_progress` (running), `completed`, `failed` or
`cancelled` (interrupted), with its times in milliseconds, how many outputs it made and the first one
to show as its preview. Entries carry only the keys ComfyUI gives them (none with a null value).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from depthgraph.engine.app.store import PromptStore, StoredPrompt
from depthgraph.server_requests import read_json
from depthgraph.server_security import error_response

JOB_STATUSES = ("pending", "in_progress", "completed", "failed", "cancelled")
FROM_STORE = {
    "pending": "pending",
    "running": "in_progress",
    "success": "completed",
    "error": "failed",
    "interrupted": "cancelled",
}
TO_STORE = {job: stored for stored, job in FROM_STORE.items()}
PREVIEWABLE = ("images", "video", "audio", "3d", "text")


@dataclass(frozen=True)
class Jobs:
    """What the routes read and do: the store, and cancelling one prompt (True if it was stopped)."""

    store: PromptStore
    cancel: Callable[[str], bool]


JOBS = web.AppKey("jobs", Jobs)


def job_entry(item: StoredPrompt) -> dict[str, Any]:
    status = FROM_STORE.get(item.status, "failed")
    entry: dict[str, Any] = {
        "id": item.prompt_id,
        "status": status,
        "priority": item.number,
        "create_time": int(item.created * 1000),
    }
    media = list(output_items(item.outputs))
    entry["outputs_count"] = len(media)
    previewable = [(node_id, kind, output) for node_id, kind, output in media if kind in PREVIEWABLE]
    entry["previewable_outputs_count"] = len(previewable)
    if previewable:
        saved = [found for found in previewable if found[2].get("type") == "output"] or previewable
        node_id, kind, output = saved[0]
        entry["preview_output"] = {**output, "nodeId": node_id, "mediaType": kind}
    started = message_time(item.messages, "execution_start")
    if started is not None:
        entry["execution_start_time"] = started
    if item.finished is not None and status in ("completed", "failed", "cancelled"):
        entry["execution_end_time"] = int(item.finished * 1000)
    error = execution_error(item.messages)
    if error is not None:
        entry["execution_error"] = error
    workflow = ((item.extra.get("extra_data") or {}).get("extra_pnginfo") or {}).get("workflow")
    if isinstance(workflow, Mapping) and isinstance(workflow.get("id"), str):
        entry["workflow_id"] = workflow["id"]
    return entry


def output_items(outputs: Mapping[str, Any]) -> Iterable[tuple[str, str, dict[str, Any]]]:
    """Each file a prompt's nodes made: (node id, media kind such as images, the file's entry)."""
    for node_id, produced in outputs.items():
        if not isinstance(produced, Mapping):
            continue
        for kind, items in produced.items():
            if kind == "animated" or not isinstance(items, list):
                continue
            for found in items:
                if isinstance(found, Mapping) and found.get("type") in ("input", "output", "temp"):
                    yield str(node_id), kind, dict(found)


def message_time(messages: list[Any], kind: str) -> int | None:
    for message in messages:
        if isinstance(message, list) and len(message) == 2 and message[0] == kind:
            stamp = message[1].get("timestamp") if isinstance(message[1], Mapping) else None
            if isinstance(stamp, int | float):
                return int(stamp)
    return None


def execution_error(messages: list[Any]) -> dict[str, Any] | None:
    """The failure as the queue panel shows it (every field it requires present, as text)."""
    for message in messages:
        if isinstance(message, list) and len(message) == 2 and message[0] == "execution_error":
            data = message[1] if isinstance(message[1], Mapping) else {}
            traceback = data.get("traceback")
            return {
                **data,
                "node_id": str(data.get("node_id") or ""),
                "node_type": str(data.get("node_type") or ""),
                "exception_message": str(data.get("exception_message") or ""),
                "exception_type": str(data.get("exception_type") or ""),
                "traceback": [str(line) for line in traceback] if isinstance(traceback, list) else [],
            }
    return None


class BadQuery(ValueError):
    pass


def read_query(query: Mapping[str, str]) -> tuple[list[str], str, bool, int | None, int]:
    """(statuses, sort key, newest first, limit, offset) from `?status=&sort_by=&sort_order=&...`."""
    statuses = [part.strip() for part in query.get("status", "").split(",") if part.strip()]
    wrong = [status for status in statuses if status not in JOB_STATUSES]
    if wrong:
        raise BadQuery(f"unknown status {', '.join(wrong)[:80]}; statuses are {', '.join(JOB_STATUSES)}")
    sort_by = query.get("sort_by", "created_at")
    if sort_by not in ("created_at", "execution_duration"):
        raise BadQuery("sort_by is created_at or execution_duration")
    order = query.get("sort_order", "desc")
    if order not in ("asc", "desc"):
        raise BadQuery("sort_order is asc or desc")
    limit = whole(query.get("limit"), "limit")
    if limit is not None and limit < 1:
        raise BadQuery("limit is a whole number of 1 or more")
    offset = max(whole(query.get("offset"), "offset") or 0, 0)
    return statuses or list(JOB_STATUSES), sort_by, order == "desc", limit, offset


def whole(text: str | None, name: str) -> int | None:
    if text is None or text == "":
        return None
    if not text.lstrip("-").isdigit() or len(text) > 20:
        raise BadQuery(f"{name} is a whole number, not {text[:40]!r}")
    return int(text)


def duration(entry: Mapping[str, Any]) -> int:
    return int(entry.get("execution_end_time", 0)) - int(entry.get("execution_start_time", 0))


async def get_jobs(request: web.Request) -> web.Response:
    try:
        statuses, sort_by, newest_first, limit, offset = read_query(request.query)
    except BadQuery as error:
        return error_response(400, "invalid_query", str(error))
    jobs = request.app[JOBS]
    workflow_id = request.query.get("workflow_id")

    def listing() -> dict[str, Any]:
        stored = [TO_STORE[status] for status in statuses]
        if sort_by == "created_at" and not workflow_id:  # what the queue panel asks: the store pages it
            items, total = jobs.store.page(stored, newest_first, limit, offset)
            page = [job_entry(item) for item in items]
        else:  # by what only the entries know (durations, the workflow): each prompt read
            entries = [job_entry(item) for item in jobs.store.with_status(stored)]
            if workflow_id:
                entries = [entry for entry in entries if entry.get("workflow_id") == workflow_id]
            key = duration if sort_by == "execution_duration" else lambda entry: entry["create_time"]
            entries.sort(key=key, reverse=newest_first)
            page = entries[offset:] if limit is None else entries[offset : offset + limit]
            total = len(entries)
        pagination = {
            "offset": offset,
            "limit": limit if limit is not None else total,
            "total": total,
            "has_more": offset + len(page) < total,
        }
        return {"jobs": page, "pagination": pagination}

    return web.json_response(await asyncio.to_thread(listing))


async def get_job(request: web.Request) -> web.Response:
    item = await asyncio.to_thread(request.app[JOBS].store.get, request.match_info["job_id"])
    if item is None:
        return error_response(404, "not_found", "no job has this id; GET /api/jobs lists them")
    entry = job_entry(item)
    entry["workflow"] = {"prompt": item.prompt, "extra_data": item.extra.get("extra_data") or {}}
    if item.status not in ("pending", "running"):
        entry["outputs"] = item.outputs
        entry["execution_status"] = {
            "status_str": "success" if item.status == "success" else "error",
            "completed": item.status == "success",
            "messages": item.messages,
        }
    return web.json_response(entry)


async def post_cancel_job(request: web.Request) -> web.Response:
    return web.json_response({"cancelled": request.app[JOBS].cancel(request.match_info["job_id"])})


async def post_cancel_jobs(request: web.Request) -> web.Response:
    body = await read_json(request)
    ids = body.get("job_ids") if isinstance(body, dict) else None
    if not isinstance(ids, list):
        return error_response(400, "invalid_body", 'send {"job_ids": [job ids]}')
    wrong = [job_id for job_id in ids if not is_uuid(job_id)]
    if wrong:
        return error_response(400, "invalid_body", f"{len(wrong)} of job_ids are not job ids (UUIDs)")
    cancel = request.app[JOBS].cancel
    return web.json_response({"cancelled": any([cancel(job_id) for job_id in ids])})


def is_uuid(value: Any) -> bool:
    if not isinstance(value, str) or len(value) != 36:
        return False
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


JOB_ROUTES: list[tuple[str, str, Any]] = [
    ("GET", "/jobs", get_jobs),
    ("GET", "/jobs/{job_id}", get_job),
    ("POST", "/jobs/cancel", post_cancel_jobs),
    ("POST", "/jobs/{job_id}/cancel", post_cancel_job),
]
