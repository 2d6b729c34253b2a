"""Each HTTP service serves an OpenAPI 3 document (GET /v1/openapi.json) that lists every route it
has, is valid OpenAPI, and whose message schemas accept the JSON the code itself produces; the
router and the document are made from one table (faultproof.openapi.add_routes), which refuses a
row without a handler or a route declared twice."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jsonschema
import pytest
from aiohttp import web
from openapi_spec_validator import validate

from faultproof.messages import SignedClaim
from faultproof.openapi import OPENAPI_PATH, Route, RouteDoc, add_routes, document
from tests.vectors.samples import samples


def _routes(app: web.Application) -> set[tuple[str, str]]:
    out = set()
    for route in app.router.routes():
        if route.method == "HEAD":
            continue
        info = route.resource.get_info() if route.resource else {}
        out.add((route.method, info.get("path") or info.get("formatter")))
    return out


def _ledger_app(tmp: Path) -> web.Application:
    from ledger.http import make_app
    from ledger.service import LedgerService
    from tests.ledger.helpers import make_ledger

    keys = make_ledger()
    service = LedgerService.create(tmp / "l.db", keys.genesis, keys.ledger_key)
    return make_app(service, run_service=False)


def _oracle_app(tmp: Path) -> web.Application:
    from oracle.http_api import make_app

    return make_app(SimpleNamespace(config=SimpleNamespace(max_body_bytes=65536, idle_timeout_s=20.0)))  # type: ignore[arg-type]


def _agent_app(tmp: Path) -> web.Application:
    from agent.api import make_app

    return make_app(SimpleNamespace(), 1 << 20)  # type: ignore[arg-type]


SERVICES = {"ledger": _ledger_app, "oracle": _oracle_app, "agent": _agent_app}


def _doc(app: web.Application) -> dict[str, Any]:
    handler = next(r.handler for r in app.router.routes() if r.method == "GET"
                   and r.resource is not None and r.resource.get_info().get("path") == OPENAPI_PATH)
    import asyncio
    import json

    response = asyncio.run(handler(None))  # type: ignore[arg-type]
    return dict(json.loads(response.body))


@pytest.mark.parametrize("name", SERVICES)
def test_every_route_is_in_the_document(name: str, tmp_path: Path) -> None:
    app = SERVICES[name](tmp_path)
    doc = _doc(app)
    documented = {(method.upper(), path) for path, ops in doc["paths"].items() for method in ops}
    assert _routes(app) == documented
    validate(doc)  # a valid OpenAPI 3 document


async def _answer(request: web.Request) -> web.Response:
    return web.json_response({})


def test_one_table_feeds_the_router_and_the_document() -> None:
    app = web.Application()
    rows = [Route("POST", "/v1/x", _answer, RouteDoc("x")), Route("GET", "/v1/y/{id}", _answer, RouteDoc("y"))]
    add_routes(app, "t", rows, healthz=_answer, readyz=_answer, metrics=_answer)
    doc = _doc(app)
    assert _routes(app) == {("POST", "/v1/x"), ("GET", "/v1/y/{id}"), ("GET", "/healthz"), ("GET", "/readyz"),
                            ("GET", "/metrics"), ("GET", OPENAPI_PATH)}
    assert {(m.upper(), path) for path, ops in doc["paths"].items() for m in ops} == _routes(app)
    assert doc["paths"]["/v1/x"]["post"]["summary"] == "x"


def test_a_row_without_a_handler_is_refused() -> None:
    with pytest.raises(TypeError, match="GET /v1/x: no handler"):
        Route("GET", "/v1/x", None, RouteDoc("x"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="only GET and POST"):
        Route("PUT", "/v1/x", _answer, RouteDoc("x"))


@pytest.mark.parametrize("paths", [["/v1/x", "/v1/x"], ["/healthz"], [OPENAPI_PATH]])
def test_a_route_declared_twice_is_refused_before_any_is_routed(paths: list[str]) -> None:
    app = web.Application()
    rows = [Route("GET", path, _answer, RouteDoc("a service's own")) for path in paths]
    with pytest.raises(ValueError, match=f"GET {paths[0]} is declared twice"):
        add_routes(app, "t", rows, healthz=_answer, readyz=_answer, metrics=_answer)
    assert not list(app.router.routes())


def test_message_schemas_accept_what_the_code_writes() -> None:
    every = list(samples().values())
    routes = {("POST", f"/x/{type(m).NAME}"): RouteDoc("sample", request=type(m)) for m in every}
    doc = document("samples", "0", routes)
    assert len(doc["components"]["schemas"]) >= len(routes)
    for sample in every:
        schema = {"$ref": f"#/components/schemas/{sample.NAME}", "components": doc["components"]}
        jsonschema.validate(sample.to_json(), schema)
    assert SignedClaim.NAME in doc["components"]["schemas"]
