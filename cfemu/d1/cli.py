"""`cfemu d1 ...`: wrangler's D1 verbs (`execute`, `migrations list|apply`) on the local state.

D1 keeps nothing in memory between calls and SQLite (WAL) lets several processes share a file, so
these commands open the database files directly even while a `cfemu dev` serves them.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import apsw
import click

from ..cli import open_state, state_options
from ..coro import run_nonsuspending
from ..errors import JsException
from .errors import NO_STATEMENTS

__all__ = ["d1", "split_statements"]


def _sync(coroutine: Any) -> Any:
    return run_nonsuspending(coroutine, "D1 operation")


class _CliHost:
    """Just enough of a runtime for `D1Service` outside a running worker."""

    def __init__(self, config: Any, state_dir: Path) -> None:
        from ..clock import RealClock

        self.config = config
        self.state_dir = state_dir
        self.clock = RealClock()
        self.log = logging.getLogger("cfemu.d1")

    def spawn(self, awaitable: Any, *, name: str | None = None) -> Any:  # pragma: no cover - unused
        return asyncio.ensure_future(awaitable)

    def service(self, kind: str) -> None:
        return None


def _service(config_path: str, env: str | None, persist_to: str | None):
    from .service import D1Service

    config, state = open_state(config_path, env, persist_to)
    if not config.d1_databases:
        raise click.ClickException(f"{config.path}: no [[d1_databases]] configured")
    service = D1Service(_CliHost(config, state))
    try:
        _sync(service.start())
    except (apsw.Error, OSError) as e:
        _sync(service.close())
        raise click.ClickException(f"cannot open the D1 database files under {state / 'd1'}: {e}") from None
    return service


def _pick(service: Any, database: str) -> Any:
    try:
        return service.config_for(database)
    except KeyError as e:
        raise click.ClickException(str(e.args[0])) from None


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


def _cell(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, list):
        return json.dumps(value)
    return str(value)


def _table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(no rows)"
    columns = list(rows[0].keys())
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    line = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    out = [line, "| " + " | ".join(c.ljust(w) for c, w in zip(columns, widths)) + " |", line]
    out += ["| " + " | ".join(v.ljust(w) for v, w in zip(r, widths)) + " |" for r in cells]
    out.append(line)
    return "\n".join(out)


@click.group()
def d1() -> None:
    """D1 databases: execute SQL, apply migrations."""


@d1.command()
@click.argument("database")
@state_options
@click.option("--command", "command", default=None, help="SQL to run.")
@click.option("--file", "file", type=click.Path(exists=True, dir_okay=False), default=None, help="A .sql file to run.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.option("--local/--remote", default=True, hidden=True, help="Accepted for wrangler compatibility; always local.")
def execute(database: str, config_path: str, env: str | None, persist_to: str | None, command: str | None,
            file: str | None, as_json: bool, local: bool) -> None:
    """Run SQL against DATABASE (binding or database_name), as one transaction."""
    if (command is None) == (file is None):
        raise click.UsageError("give exactly one of --command or --file")
    sql = command if command is not None else Path(file).read_text(encoding="utf-8")
    service = _service(config_path, env, persist_to)
    try:
        db = _pick(service, database)
        statements = split_statements(sql)
        if not statements:
            raise click.ClickException(NO_STATEMENTS)
        storage = service.storage(db.binding)
        try:
            results = storage.batch([(s, ()) for s in statements])
        except JsException as e:
            raise click.ClickException(str(e)) from None
        envelopes = [
            {"results": [dict(zip(r.columns or [], row)) for row in r.rows], "success": True, "meta": r.meta}
            for r in results
        ]
        if as_json:
            click.echo(json.dumps(envelopes, indent=2))
            return
        click.echo(f"Executing on local database {db.database_name} ({db.database_id}):")
        for envelope in envelopes:
            meta = envelope["meta"]
            if envelope["results"] or not meta["changed_db"]:
                click.echo(_table(envelope["results"]))
            else:
                click.echo(f"OK: {meta['changes']} change(s), last_row_id {meta['last_row_id']}")
    finally:
        _sync(service.close())


@d1.group()
def migrations() -> None:
    """List and apply the migrations in a database's migrations_dir."""


@migrations.command("list")
@click.argument("database")
@state_options
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def list_(database: str, config_path: str, env: str | None, persist_to: str | None, as_json: bool) -> None:
    """Show every migration file of DATABASE and whether it has been applied."""
    service = _service(config_path, env, persist_to)
    try:
        db = _pick(service, database)
        items = service.list_migrations(db.binding)
        if as_json:
            click.echo(json.dumps([{"name": m.name, "applied_at": m.applied_at} for m in items], indent=2))
            return
        if not items:
            click.echo(f"No migrations found in {db.migrations_dir}")
            return
        pending = [m for m in items if m.applied_at is None]
        click.echo(_table([{"name": m.name, "status": "applied " + m.applied_at if m.applied_at else "pending"} for m in items]))
        click.echo(f"{len(pending)} migration(s) to apply." if pending else "No migrations to apply!")
    finally:
        _sync(service.close())


@migrations.command("apply")
@click.argument("database")
@state_options
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def apply(database: str, config_path: str, env: str | None, persist_to: str | None, as_json: bool) -> None:
    """Apply DATABASE's pending migrations in order, each in its own transaction."""
    service = _service(config_path, env, persist_to)
    try:
        db = _pick(service, database)
        try:
            applied = _sync(service.apply_migrations(db.binding))
        except JsException as e:
            raise click.ClickException(str(e)) from None
        if as_json:
            click.echo(json.dumps([{"name": m.name, "status": "applied"} for m in applied], indent=2))
            return
        if not applied:
            click.echo("No migrations to apply!")
            return
        click.echo(_table([{"name": m.name, "status": "applied"} for m in applied]))
    finally:
        _sync(service.close())
