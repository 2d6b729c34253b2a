"""Each HTTP service serves an OpenAPI 3 document (GET /v1/openapi.json) that lists every route it
has, is valid OpenAPI, and whose message schemas accept the JSON the code itself produces."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jsonschema
import pytest
from aiohttp import web
from openapi_spec_validator import validate

from faultproof.messages import SignedClaim
from faultproof.openapi import OPENAPI_PATH, document
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


def test_message_schemas_accept_what_the_code_writes() -> None:
    from faultproof.openapi import RouteDoc

    every = list(samples().values())
    routes = {("POST", f"/x/{type(m).NAME}"): RouteDoc("sample", request=type(m)) for m in every}
    doc = document("samples", "0", routes)
    assert len(doc["components"]["schemas"]) >= len(routes)
    for sample in every:
        schema = {"$ref": f"#/components/schemas/{sample.NAME}", "components": doc["components"]}
        jsonschema.validate(sample.to_json(), schema)
    assert SignedClaim.NAME in doc["components"]["schemas"]
