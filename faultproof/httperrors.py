"""The one HTTP error shape and input hygiene of every faultproof service (ledger, oracle, agent).

`{"error": {"code": "<reason>", "message": "..."}}` with the reason's status. aiohttp's own
refusals (too large, no route, wrong method) are mapped to reason codes; anything unexpected is
logged here and the client gets a reason code, never a traceback.

Input hygiene (design §12), the same for every service because every service builds its
`web.Application` with `application(...)`:
  - a `Content-Length` above the body limit is refused at once (413) and the connection closed,
    without waiting for (or reading) the body;
  - a request body must arrive within `body_timeout_s` (408, connection closed), so a client
    that stops mid-body does not hold a handler forever;
  - a connection that sends no complete request head within `idle_timeout_s` (half-open, or
    trickling header bytes), or stays idle that long between requests, is closed (aiohttp's
    keep-alive timer runs from the connection's start and is not reset by partial input);
  - a client that disconnects mid-body or before its answer is a debug line, not an "internal
    error" with a traceback;
  - JSON bodies are parsed by `faultproof.strictjson`, the one strict parser.

This file must never put an exception's text or a traceback in a response, nor read a body
whose declared length is over the limit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiohttp import web
from aiohttp.client_exceptions import ClientPayloadError
from aiohttp.http_exceptions import HttpProcessingError

from faultproof.errors import FaultproofError, Reason

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Render = Callable[[web.Request, Any, int], web.StreamResponse]

# Request head (and keep-alive idle) deadline. Longer than aiohttp's client keep-alive (15 s), so
# a client never reuses a pooled connection the server is closing at that very moment.
IDLE_TIMEOUT_S = 20.0
BODY_TIMEOUT_S = 30.0  # the whole body, once the head is in
LINGER_S = 1.0  # after an early answer, how long unread body bytes are drained before closing

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _json(request: web.Request, obj: Any, status: int) -> web.StreamResponse:
    return web.json_response(obj, status=status)


def _gone(request: web.Request) -> bool:
    """The client's connection is closed (or closing): nobody will read an answer."""
    transport = request.transport
    return transport is None or transport.is_closing()


def _closing(resp: web.StreamResponse) -> web.StreamResponse:
    resp.force_close()  # the unread body makes the connection unusable for another request
    return resp


def errors_middleware(log: logging.Logger, render: Render = _json, *,
                      body_timeout_s: float = BODY_TIMEOUT_S) -> Any:
    """An aiohttp middleware: input hygiene first, then every failure into the error shape."""

    def refuse(request: web.Request, reason: Reason, message: str, status: int | None = None) -> web.StreamResponse:
        return render(request, FaultproofError(reason, message).to_json(), status or reason.http_status)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        limit = request.client_max_size
        declared = request.content_length
        if declared is not None and limit and declared > limit:
            return _closing(refuse(request, Reason.OVERSIZE, f"body of {declared} bytes is over the limit of {limit}"))
        try:
            if request.method in _BODY_METHODS and request.body_exists:
                try:
                    await asyncio.wait_for(request.read(), body_timeout_s)  # cached for the handler
                except TimeoutError:
                    return _closing(refuse(request, Reason.BAD_REQUEST,
                                           f"request body not received within {body_timeout_s:g} s", 408))
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
        except (ConnectionError, ClientPayloadError, HttpProcessingError) as e:
            if _gone(request):
                log.debug("client went away during %s %s: %s", request.method, request.path, type(e).__name__)
            else:  # a broken body on a live connection (e.g. bad chunked encoding): the client's fault
                log.info("unreadable request body on %s %s: %s", request.method, request.path, type(e).__name__)
            return _closing(refuse(request, Reason.BAD_REQUEST, "the request body could not be read"))
        except Exception:  # a bug: log it here, tell the client nothing about our insides
            if _gone(request):
                log.debug("client went away during %s %s", request.method, request.path)
                return _closing(refuse(request, Reason.BAD_REQUEST, "client went away"))
            log.exception("internal error on %s %s", request.method, request.path)
            return render(request, FaultproofError(Reason.UNAVAILABLE, "internal error; see the service log").to_json(),
                          500)

    return middleware


def application(log: logging.Logger, render: Render = _json, *, max_body_bytes: int,
                middlewares: Iterable[Any] = (), idle_timeout_s: float = IDLE_TIMEOUT_S,
                body_timeout_s: float = BODY_TIMEOUT_S) -> web.Application:
    """A `web.Application` with the error shape and the input hygiene above. The timeouts are
    handler arguments of the application itself, so whichever runner serves it applies them."""
    return web.Application(
        middlewares=[errors_middleware(log, render, body_timeout_s=body_timeout_s), *middlewares],
        client_max_size=max_body_bytes,
        handler_args={"keepalive_timeout": idle_timeout_s, "lingering_time": LINGER_S})
