"""The one HTTP error shape of every faultproof service (ledger, oracle, agent).

`{"error": {"code": "<reason>", "message": "..."}}` with the reason's status. aiohttp's own
refusals (too large, no route, wrong method) are mapped to reason codes; anything unexpected is
logged here and the client gets a reason code, never a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from faultproof.errors import FaultproofError, Reason

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Render = Callable[[web.Request, Any, int], web.StreamResponse]


def _json(request: web.Request, obj: Any, status: int) -> web.StreamResponse:
    return web.json_response(obj, status=status)


def error_response(err: FaultproofError, status: int | None = None) -> web.Response:
    return web.json_response(err.to_json(), status=status or err.reason.http_status)


def errors_middleware(log: logging.Logger, render: Render = _json) -> Any:
    """An aiohttp middleware turning every failure into the error shape, via `render`."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except FaultproofError as e:
            return render(request, e.to_json(), e.reason.http_status)
        except web.HTTPException as e:
            if e.status < 400:
                raise
            reason = {413: Reason.OVERSIZE, 404: Reason.NOT_FOUND}.get(e.status, Reason.BAD_REQUEST)
            message = {405: f"{request.method} not allowed here", 404: f"no route {request.path}"}.get(
                e.status, e.reason)
            return render(request, FaultproofError(reason, message).to_json(), e.status)
        except Exception:  # a bug: log it here, tell the client nothing about our insides
            log.exception("internal error on %s %s", request.method, request.path)
            return render(request, FaultproofError(Reason.UNAVAILABLE, "internal error; see the service log").to_json(),
                          500)

    return middleware
