"""The dashboard's HTTP shell (aiohttp): server-rendered pages, live updates, static files.

    GET /  /pool  /policies  /policies/{id}  /claims  /claims/{id}  /oracles  /devices
        /devices/{id}  /ledger  /ledger/{height}        HTML; `?partial=1` answers only the live
                                                        region (what the page script swaps in)
    GET /events      server-sent events: `update` with the snapshot version whenever it changes
    GET /api/health  the health summary as JSON (the devnet and tests read it)
    GET /static/...  the page script and stylesheet, shipped in the package (no CDN)

Pages are built by `dashboard.model` from the collector's snapshot and rendered by Jinja2 with
autoescaping. Errors are an HTML page for a browser and the project's JSON error shape for /api.
Every route is GET: the dashboard changes nothing anywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from dashboard import charts, model
from dashboard.collector import Collector
from faultproof.errors import FaultproofError, Reason
from faultproof.httperrors import errors_middleware

log = logging.getLogger("faultproof.dashboard.http")

HERE = Path(__file__).parent
COLLECTOR: web.AppKey[Collector] = web.AppKey("collector", Collector)
TEMPLATES: web.AppKey[jinja2.Environment] = web.AppKey("templates", jinja2.Environment)
CLOCK: web.AppKey[Callable[[], int]] = web.AppKey("clock", object)  # type: ignore[arg-type]
STOPPING: web.AppKey[asyncio.Event] = web.AppKey("stopping", asyncio.Event)

NAV = [("/", "Overview"), ("/pool", "Pool"), ("/policies", "Policies"), ("/claims", "Claims"),
       ("/oracles", "Oracles"), ("/devices", "Devices"), ("/ledger", "Ledger")]


def _render_error(request: web.Request, obj: Any, status: int) -> web.StreamResponse:
    if request.path.startswith("/api/") or "text/html" not in request.headers.get("Accept", "text/html"):
        return web.json_response(obj, status=status)
    env = request.app[TEMPLATES]
    err = obj.get("error", {})
    html = env.get_template("error.html").render(nav=NAV, current="", title=f"Error {status}", status=status,
                                                 code=err.get("code"), message=err.get("message"), partial=False,
                                                 snap=None, version=0)
    return web.Response(text=html, status=status, content_type="text/html")


def _hex_id(request: web.Request, name: str = "id") -> str:
    value = request.match_info[name]
    if len(value) != 64 or value != value.lower() or any(c not in "0123456789abcdef" for c in value):
        raise FaultproofError(Reason.BAD_REQUEST, f"{name} must be 64 lowercase hex characters")
    return value


def _query(request: web.Request, allowed: set[str]) -> dict[str, str]:
    unknown = set(request.query) - allowed
    if unknown:
        raise FaultproofError(Reason.UNKNOWN_FIELD, f"unknown query parameter(s) {sorted(unknown)}")
    return dict(request.query)


def _page_no(q: dict[str, str]) -> int:
    try:
        page = int(q.get("page", "1"))
    except ValueError:
        raise FaultproofError(Reason.BAD_REQUEST, "page must be a positive integer") from None
    if not 1 <= page <= 10**9:
        raise FaultproofError(Reason.BAD_REQUEST, "page must be a positive integer")
    return page


def _row_of(rows: list[dict[str, Any]], key: str, value: str, missing: str) -> dict[str, Any]:
    """The row whose `key` is value (a page about one policy or device); NOT_FOUND with `missing`."""
    for row in rows:
        if row[key] == value:
            return row
    raise FaultproofError(Reason.NOT_FOUND, missing)


def _render(request: web.Request, template: str, current: str, title: str, **ctx: Any) -> web.Response:
    q = _query(request, {"partial", "page"})
    snap = request.app[COLLECTOR].snapshot
    env = request.app[TEMPLATES]
    now = request.app[CLOCK]()
    html = env.get_template(template).render(
        nav=NAV, current=current, title=title, snap=snap, health=snap.health(), now=now,
        partial=q.get("partial") == "1", version=snap.version, **ctx)
    return web.Response(text=html, content_type="text/html", headers={"Cache-Control": "no-store"})


def _listing(request: web.Request, rows_of: Callable[[model.Snapshot, int], list[dict[str, Any]]],
             template: str, current: str, title: str) -> web.Response:
    """A page listing the rows the model makes of the snapshot at the clock's now, one page of them."""
    rows = rows_of(request.app[COLLECTOR].snapshot, request.app[CLOCK]())
    return _render(request, template, current, title, table=model.paginate(rows, _page_no(dict(request.query))))


# --------------------------------------------------------------------------- pages


async def overview(request: web.Request) -> web.StreamResponse:
    snap = request.app[COLLECTOR].snapshot
    now = request.app[CLOCK]()
    page = model.overview_page(snap, now)
    return _render(request, "overview.html", "/", "Overview", page=page,
                   chart=charts.step_chart(page["chart"]))


async def pool(request: web.Request) -> web.StreamResponse:
    snap = request.app[COLLECTOR].snapshot
    page = model.pool_page(snap, request.app[CLOCK](), _page_no(dict(request.query)))
    series = page["series"]
    # Free capital is usually orders of magnitude above the rest: it gets its own chart.
    free_chart = charts.step_chart({"free": [(p.time_ms, p.free) for p in series]}, height=160)
    pool_chart = charts.step_chart({
        "locked": [(p.time_ms, p.locked) for p in series], "premiums": [(p.time_ms, p.premiums) for p in series],
        "paid": [(p.time_ms, p.paid) for p in series]})
    return _render(request, "pool.html", "/pool", "Pool", page=page, pool_chart=pool_chart, free_chart=free_chart,
                   chart=charts.step_chart(page["chart"]))


async def policies(request: web.Request) -> web.StreamResponse:
    return _listing(request, model.policy_rows, "policies.html", "/policies", "Policies")


async def policy(request: web.Request) -> web.StreamResponse:
    pid = _hex_id(request)
    snap = request.app[COLLECTOR].snapshot
    row = _row_of(model.policy_rows(snap, request.app[CLOCK]()), "policy_id", pid, "no such policy on the ledger")
    claims = [c for c in snap.claim_rows() if c.policy_id == pid]
    return _render(request, "policy.html", "/policies", f"Policy {pid[:12]}", p=row, claims=claims)


async def claims_page(request: web.Request) -> web.StreamResponse:
    snap = request.app[COLLECTOR].snapshot
    rows = snap.claim_rows()
    page = model.paginate(rows, _page_no(dict(request.query)))
    return _render(request, "claims.html", "/claims", "Claims", table=page,
                   chart=charts.step_chart(model.claims_chart_series(snap)))


async def claim(request: web.Request) -> web.StreamResponse:
    cid = _hex_id(request)
    snap = request.app[COLLECTOR].snapshot
    row = snap.claim_row(cid)
    if row is None:
        raise FaultproofError(Reason.NOT_FOUND, "no oracle and no ledger entry knows this claim")
    return _render(request, "claim.html", "/claims", f"Claim {cid[:12]}", c=row,
                   url_of=snap.url_of())


async def oracles(request: web.Request) -> web.StreamResponse:
    snap = request.app[COLLECTOR].snapshot
    oset = snap.replica.state.oracle_set if snap.replica else None
    return _render(request, "oracles.html", "/oracles", "Oracles", rows=model.oracle_rows(snap, request.app[CLOCK]()),
                   oset=oset)


async def devices(request: web.Request) -> web.StreamResponse:
    return _listing(request, model.device_rows, "devices.html", "/devices", "Devices")


async def device(request: web.Request) -> web.StreamResponse:
    did = _hex_id(request)
    snap = request.app[COLLECTOR].snapshot
    row = _row_of(model.device_rows(snap, request.app[CLOCK]()), "device_id", did, "no such device on the ledger")
    entries = [snap.replica.rows[h] for h in row["entries"]] if snap.replica else []
    return _render(request, "device.html", "/devices", f"Device {did[:12]}", d=row, entries=entries)


async def ledger(request: web.Request) -> web.StreamResponse:
    snap = request.app[COLLECTOR].snapshot
    return _render(request, "ledger.html", "/ledger", "Ledger",
                   page=model.ledger_page(snap, _page_no(dict(request.query))))


async def ledger_entry(request: web.Request) -> web.StreamResponse:
    snap = request.app[COLLECTOR].snapshot
    try:
        height = int(request.match_info["height"])
    except ValueError:
        raise FaultproofError(Reason.BAD_REQUEST, "height must be an integer") from None
    if snap.replica is None or not 0 <= height <= snap.replica.height:
        raise FaultproofError(Reason.NOT_FOUND, "no entry at this height (yet)")
    return _render(request, "entry.html", "/ledger", f"Entry {height}", e=snap.replica.rows[height])


# --------------------------------------------------------------------------- live and API


async def events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: one `update` per snapshot change (and a comment every 15 s)."""
    _query(request, set())
    collector = request.app[COLLECTOR]
    stopping = request.app[STOPPING]
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                       "X-Accel-Buffering": "no"})
    await resp.prepare(request)
    version = collector.snapshot.version
    await resp.write(f"retry: 2000\nevent: update\ndata: {json.dumps({'version': version})}\n\n".encode())
    with contextlib.suppress(ConnectionResetError, asyncio.CancelledError):
        while not stopping.is_set():
            new = await collector.wait_change(version, 15.0)
            if stopping.is_set():
                break
            if new == version:
                await resp.write(b": keep-alive\n\n")
                continue
            version = new
            await resp.write(f"event: update\ndata: {json.dumps({'version': version})}\n\n".encode())
    return resp


async def api_health(request: web.Request) -> web.StreamResponse:
    _query(request, set())
    snap = request.app[COLLECTOR].snapshot
    rows = snap.claim_rows()
    return web.json_response({**snap.health(), "version": snap.version,
                              "ledger_id": snap.replica.ledger_id if snap.replica else None,
                              "claims": {st: sum(1 for c in rows if c.status == st) for st in model.STATUS_RANK},
                              "receipts_verified": sum(1 for r in snap.receipts.values() if r.ok),
                              "pool": model.pool_summary(snap)})


async def healthz(request: web.Request) -> web.StreamResponse:
    snap = request.app[COLLECTOR].snapshot
    return web.json_response({"ok": True, "height": snap.replica.height if snap.replica else None})


# --------------------------------------------------------------------------- app


def templates() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                             autoescape=jinja2.select_autoescape(["html"]), undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters.update(money=model.fmt_money, time=model.fmt_time, duration=model.fmt_duration,
                       short=model.short, reason_words=model.reason_words)
    env.globals.update(ago=model.fmt_ago)
    return env


def make_app(collector: Collector, *, clock: Callable[[], int], run_collector: bool = True) -> web.Application:
    """The application. With run_collector, the app starts and stops the collector's polling
    (tests of the pages hand in a collector whose snapshot they built themselves)."""
    app = web.Application(middlewares=[errors_middleware(log, _render_error)], client_max_size=4096)
    app[COLLECTOR] = collector
    app[TEMPLATES] = templates()
    app[CLOCK] = clock
    app[STOPPING] = asyncio.Event()
    r = app.router
    r.add_get("/", overview)
    r.add_get("/pool", pool)
    r.add_get("/policies", policies)
    r.add_get("/policies/{id}", policy)
    r.add_get("/claims", claims_page)
    r.add_get("/claims/{id}", claim)
    r.add_get("/oracles", oracles)
    r.add_get("/devices", devices)
    r.add_get("/devices/{id}", device)
    r.add_get("/ledger", ledger)
    r.add_get("/ledger/{height}", ledger_entry)
    r.add_get("/events", events)
    r.add_get("/api/health", api_health)
    r.add_get("/healthz", healthz)
    r.add_static("/static", HERE / "static", append_version=False)

    async def lifecycle(app: web.Application) -> Any:
        await collector.start()
        yield
        await collector.stop()

    async def on_shutdown(app: web.Application) -> None:
        app[STOPPING].set()
        await collector.bump()  # wakes every event stream, which then sees STOPPING and ends

    if run_collector:
        app.cleanup_ctx.append(lifecycle)
    app.on_shutdown.append(on_shutdown)
    return app
