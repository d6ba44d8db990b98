"""The Analytics Engine SQL API over HTTP: `POST /client/v4/accounts/{account_id}/analytics_engine/sql`."""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web

from .engine import run_query
from .errors import AnalyticsQueryError

__all__ = ["handle_sql", "SQL_PATH", "add_routes"]

log = logging.getLogger("cfemu.analytics")

NOT_UTF8 = "The query is not valid UTF-8"
INTERNAL_ERROR = "Internal error while running the query (cfemu logged the details)"
SQL_PATH = "/client/v4/accounts/{account_id}/analytics_engine/sql"


async def handle_sql(service: Any, request: web.Request) -> web.Response:
    """Answer the SQL in the request body as Cloudflare's SQL API does.

    The bearer token is accepted and ignored.  `?format=JSON|JSONEachRow|TabSeparated` overrides the
    query's FORMAT clause (a cfemu extension the CLI uses).  `service` is the runtime's
    `AnalyticsService`, or None when the worker declares no dataset (then only `SHOW TABLES` and
    queries without a table answer).
    """
    if request.method not in ("POST", "GET"):
        raise web.HTTPMethodNotAllowed(request.method, ["POST", "GET"])
    if request.method == "POST":
        try:
            sql = (await request.read()).decode("utf-8")
        except UnicodeDecodeError:
            return web.Response(status=400, text=NOT_UTF8 + "\n", content_type="text/plain")
    else:
        sql = request.query.get("query", "")
    fmt = request.query.get("format")
    try:
        if service is None:
            from ..clock import RealClock

            body = run_query(None, sql, now=RealClock().now(), fmt=fmt)
        else:
            body = await service.aquery(sql, format=fmt)
    except AnalyticsQueryError as e:
        return web.Response(status=e.status, text=e.message + "\n", content_type="text/plain")
    except Exception:  # a bug of cfemu's: answer it as an error, keep the server serving
        log.exception("Analytics Engine SQL query failed: %s", sql[:200])
        return web.Response(status=500, text=INTERNAL_ERROR + "\n", content_type="text/plain")
    if isinstance(body, dict):
        return web.Response(text=json.dumps(body, ensure_ascii=False), content_type="application/json")
    return web.Response(text=body, content_type="text/plain")


def add_routes(app: web.Application, service: Any) -> None:
    """Mount `handle_sql` on `app` at Cloudflare's path (used by tests; the dev server may do the same)."""

    async def handler(request: web.Request) -> web.Response:
        return await handle_sql(service, request)

    app.router.add_route("POST", SQL_PATH, handler)
    app.router.add_route("GET", SQL_PATH, handler)
