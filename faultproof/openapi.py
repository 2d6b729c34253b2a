"""OpenAPI 3 documents for the HTTP services, generated from the message definitions the code uses.

A request or response body that is a protocol message gets its JSON Schema from the message's own
field types (faultproof/messages.py), so the document cannot drift from the decoder: integers with
their bit limits, bytes as lowercase hex of their exact or maximum length, nested messages as
references, lists with their maximum length, reason codes as the enum of faultproof/errors.py.
Each service declares its routes once, in one table of `Route` rows (method, path, handler, and its
`RouteDoc`), and `add_routes` feeds both the router and the document (served at GET
/v1/openapi.json) from that table: a route cannot be served undocumented, nor documented unserved.
The operator's routes every service has (`OPERATOR_ROUTES`) join the table there, each to the
service's own handler, so no service can serve them under other paths than the ones documented.

Pure apart from `add_routes`, which only adds routes to an aiohttp application.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from faultproof.errors import Reason
from faultproof.messages import (
    Bool,
    Bytes,
    FieldBytes,
    FieldType,
    ListOf,
    Message,
    Nested,
    ReasonCode,
    UInt,
)

OPENAPI_PATH = "/v1/openapi.json"
JSON_ANY: dict[str, Any] = {"type": "object"}


@dataclass(frozen=True)
class RouteDoc:
    summary: str
    # a message body (JSON, or msgpack with its content type); several: JSON names one in "type"
    request: type[Message] | tuple[type[Message], ...] | None = None
    request_tagged: bool = True  # False: the JSON forms are told apart by their members, not "type"
    response: type[Message] | dict[str, Any] | None = None  # a message, a JSON Schema, or any object
    query: Mapping[str, str] = field(default_factory=dict)  # parameter -> description
    statuses: tuple[int, ...] = (200,)


# The operator's routes every service serves alike (each with its own handlers).
OPERATOR_ROUTES: dict[tuple[str, str], RouteDoc] = {
    ("GET", "/healthz"): RouteDoc("Liveness: the process answers."),
    ("GET", "/readyz"): RouteDoc("Readiness: 503 with the reasons while it cannot do its job.",
                                   statuses=(200, 503)),
    ("GET", "/metrics"): RouteDoc("Prometheus metrics (text exposition format)."),
}

Handler = Callable[[Any], Awaitable[Any]]  # an aiohttp handler (aiohttp is imported only where routes are added)


@dataclass(frozen=True)
class Route:
    """One row of a service's route table: what the router serves, and what the document says of it."""
    method: str  # "GET" (also answers HEAD, as aiohttp's add_get) or "POST"
    path: str
    handler: Handler
    doc: RouteDoc

    def __post_init__(self) -> None:
        if self.method not in ("GET", "POST"):
            raise ValueError(f"{self.method} {self.path}: only GET and POST routes are served")
        if not callable(self.handler):
            raise TypeError(f"{self.method} {self.path}: no handler")


def add_routes(app: Any, title: str, routes: Sequence[Route], *,
               healthz: Handler, readyz: Handler, metrics: Handler) -> None:
    """Route a service's table, OPERATOR_ROUTES (to the service's own handlers: what each answers is
    the service's) and GET /v1/openapi.json, whose document is built (once, lazily) from exactly
    these rows. A method and path declared twice is refused before anything is routed."""
    from aiohttp import web

    docs: dict[tuple[str, str], RouteDoc] = {}
    cached: dict[str, Any] = {}

    async def openapi(request: web.Request) -> web.Response:
        if not cached:
            cached.update(document(title, _release(), docs))
        return web.json_response(cached)

    operator = {"/healthz": healthz, "/readyz": readyz, "/metrics": metrics}
    table = [*routes, *(Route(method, path, operator[path], doc) for (method, path), doc in OPERATOR_ROUTES.items()),
             Route("GET", OPENAPI_PATH, openapi, RouteDoc("This document."))]
    for route in table:
        if (route.method, route.path) in docs:
            raise ValueError(f"{route.method} {route.path} is declared twice")
        docs[(route.method, route.path)] = route.doc
    for route in table:
        if route.method == "GET":
            app.router.add_get(route.path, route.handler)
        else:
            app.router.add_route(route.method, route.path, route.handler)


def _release() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("faultproof")
    except PackageNotFoundError:
        return "0"


Refs = dict[str, tuple[type[Message], bool]]  # component name -> (message, carries a "type" tag)


def _ref(cls: type[Message], refs: Refs, *, tagged: bool = False) -> dict[str, Any]:
    """A reference to cls's schema. Where JSON may hold one of several messages, each one names
    itself in a "type" member (messages.Nested, the ledger's POST /v1/tx): a tagged variant."""
    name = f"{cls.NAME}.tagged" if tagged else cls.NAME
    refs[name] = (cls, tagged)
    return {"$ref": f"#/components/schemas/{name}"}


def field_schema(ft: FieldType, refs: Refs) -> dict[str, Any]:
    if isinstance(ft, Bool):
        return {"type": "integer", "enum": [0, 1]}
    if isinstance(ft, UInt):
        return {"type": "integer", "minimum": 0, "maximum": ft.limit - 1}
    if isinstance(ft, FieldBytes):
        return {"type": "string", "pattern": "^[0-9a-f]{64}$", "description": "a BN254 field element (< p)"}
    if isinstance(ft, Bytes):
        if ft.exact is not None:
            return {"type": "string", "pattern": f"^[0-9a-f]{{{2 * ft.exact}}}$"}
        return {"type": "string", "pattern": "^([0-9a-f]{2})*$", "maxLength": 2 * (ft.max_len or 0)}
    if isinstance(ft, ReasonCode):
        return {"type": "string", "enum": sorted(r.value for r in Reason)}
    if isinstance(ft, Nested):
        if len(ft.types) == 1:
            return _ref(ft.types[0], refs)
        return {"oneOf": [_ref(t, refs, tagged=ft.tagged_json) for t in ft.types]}
    if isinstance(ft, ListOf):
        return {"type": "array", "items": field_schema(ft.item, refs), "maxItems": ft.max_len}
    raise TypeError(f"no JSON Schema for field type {type(ft).__name__}")


def message_schema(cls: type[Message], refs: Refs, *, tagged: bool = False) -> dict[str, Any]:
    props = {name: field_schema(ft, refs) for name, ft in cls.schema()}
    if tagged:
        props = {"type": {"type": "string", "enum": [cls.NAME]}, **props}
    return {"type": "object", "additionalProperties": False, "required": list(props), "properties": props,
            "description": f"{cls.NAME} (msgpack type {cls.TYPE_ID}, at most {cls.MAX_SIZE} bytes encoded)"}


_ERROR = {"type": "object", "required": ["error"], "properties": {"error": {
    "type": "object", "required": ["code", "message"],
    "properties": {"code": {"type": "string", "enum": sorted(r.value for r in Reason)},
                   "message": {"type": "string"}}}}}


def document(title: str, version: str, routes: Mapping[tuple[str, str], RouteDoc]) -> dict[str, Any]:
    refs: Refs = {}
    paths: dict[str, dict[str, Any]] = {}
    for (method, path), doc in sorted(routes.items()):
        op: dict[str, Any] = {"summary": doc.summary, "responses": {}}
        params = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                  for name in _path_params(path)]
        params += [{"name": q, "in": "query", "required": False, "description": d, "schema": {"type": "string"}}
                   for q, d in doc.query.items()]
        if params:
            op["parameters"] = params
        if doc.request is not None:
            kinds = doc.request if isinstance(doc.request, tuple) else (doc.request,)
            ref: dict[str, Any] = _ref(kinds[0], refs) if len(kinds) == 1 else {
                "oneOf": [_ref(cls, refs, tagged=doc.request_tagged) for cls in kinds]}
            op["requestBody"] = {"required": True, "content": {
                "application/json": {"schema": ref},
                "application/msgpack": {"schema": {"type": "string", "format": "binary"}}}}
        for status in doc.statuses:
            if isinstance(doc.response, type):
                schema: dict[str, Any] = _ref(doc.response, refs)
            else:
                schema = doc.response if doc.response is not None else JSON_ANY
            op["responses"][str(status)] = {"description": "OK" if status < 300 else "see body",
                                            "content": {"application/json": {"schema": schema}}}
        op["responses"]["4XX"] = {"description": "refused: a reason code (docs/reasons.md)",
                                  "content": {"application/json": {"schema": _ERROR}}}
        paths.setdefault(path, {})[method.lower()] = op
    schemas: dict[str, Any] = {}
    while len(schemas) < len(refs):  # nested messages add references as they are expanded
        for name, (cls, tagged) in list(refs.items()):
            if name not in schemas:
                schemas[name] = message_schema(cls, refs, tagged=tagged)
    return {"openapi": "3.0.3", "info": {"title": title, "version": version}, "paths": paths,
            "components": {"schemas": dict(sorted(schemas.items()))}}


def _path_params(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{") and part.endswith("}")]
