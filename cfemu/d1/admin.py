"""What `cfemu d1 ...` does to a database, and `cfemu dev`'s internal D1 endpoints that do it.

The CLI runs these operations on a `D1Service` of its own when no `cfemu dev` serves the state
directory, and asks the server otherwise; the server runs them on the `D1Service` its worker uses
(the same open connection), so both paths give the same answers and the same errors.

Endpoints, under `/cdn-cgi/cfemu/d1/<binding, database_name or database_id>/` (JSON in and out):
    POST execute            {"sql": "..."} -> {"database": {...}, "results": [envelope...]}
    GET  migrations/list    -> {"database": {...}, "migrations": [{name, applied_at}...]}
    POST migrations/apply   -> {"database": {...}, "applied": [{name, status}...]}
A database the server's config does not name answers 404 "not served": the CLI opens the files.
"""

from __future__ import annotations

import json
from typing import Any

import apsw

from ..devinfo import NOT_SERVED
from ..errors import JsException
from .errors import NO_STATEMENTS

__all__ = ["split_statements", "execute", "list_migrations", "apply_migrations", "handle"]


def split_statements(sql: str) -> list[str]:
    """Split SQL into complete statements (string literals, comments and triggers respected)."""
    statements: list[str] = []
    current = ""
    for piece in sql.split(";"):
        current = f"{current};{piece}" if current else piece
        if apsw.complete(current + ";"):
            if current.strip():
                statements.append(current.strip() + ";")
            current = ""
    if current.strip() and any(line.strip() and not line.strip().startswith("--") for line in current.splitlines()):
        statements.append(current.strip())
    return statements


def _database(service: Any, name: str) -> dict[str, Any]:
    # KeyError (with the message to show) when the config names no such database.
    db = service.config_for(name)
    return {"binding": db.binding, "database_name": db.database_name, "database_id": db.database_id,
            "migrations_dir": str(db.migrations_dir)}


def execute(service: Any, name: str, sql: str) -> dict[str, Any]:
    """`wrangler d1 execute`: every statement of `sql` as one batch (one transaction)."""
    database = _database(service, name)
    statements = split_statements(sql)
    if not statements:
        raise JsException(NO_STATEMENTS)
    results = service.storage(name).batch([(s, ()) for s in statements])
    envelopes = [{"results": [dict(zip(r.columns or [], row)) for row in r.rows], "success": True, "meta": r.meta}
                 for r in results]
    return {"database": database, "results": envelopes}


def list_migrations(service: Any, name: str) -> dict[str, Any]:
    """`wrangler d1 migrations list`: every migration file and when it was applied (or None)."""
    database = _database(service, name)
    items = service.list_migrations(name)
    return {"database": database, "migrations": [{"name": m.name, "applied_at": m.applied_at} for m in items]}


async def apply_migrations(service: Any, name: str) -> dict[str, Any]:
    """`wrangler d1 migrations apply`: the pending migrations, in order, each in its own transaction."""
    database = _database(service, name)
    applied = await service.apply_migrations(name)
    return {"database": database, "applied": [{"name": m.name, "status": "applied"} for m in applied]}


async def handle(request: Any, runtime: Any, segments: list[str]) -> Any:
    """Answer `/cdn-cgi/cfemu/d1/<database>/<verb>` on the runtime's `D1Service`."""
    from aiohttp import web

    if len(segments) < 2:
        return None
    name, verb = segments[0], "/".join(segments[1:])
    if (request.method, verb) not in {("POST", "execute"), ("GET", "migrations/list"), ("POST", "migrations/apply")}:
        return None
    service = runtime.service("d1")
    try:
        if service is None:
            raise KeyError("no [[d1_databases]] configured")
        service.config_for(name)
    except KeyError as e:
        return web.json_response({"error": str(e.args[0]), NOT_SERVED: True}, status=404)
    if verb == "execute":
        try:
            sql = json.loads(await request.read())["sql"]
        except (ValueError, KeyError, TypeError):
            return web.json_response({"error": 'execute needs a JSON body {"sql": "..."}'}, status=400)
        return web.json_response(execute(service, name, sql))
    if verb == "migrations/list":
        return web.json_response(list_migrations(service, name))
    return web.json_response(await apply_migrations(service, name))
