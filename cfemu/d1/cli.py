"""`cfemu d1 ...`: wrangler's D1 verbs (`execute`, `migrations list|apply`) on the local state.

When a `cfemu dev` serves the same state directory these commands act through it, on the database
connections its worker uses (`cfemu.d1.admin`), so nothing races the server's open files; otherwise
they open the database files directly.  Both paths run the same operations and print the same.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from pathlib import Path
from typing import Any

import apsw
import click

from ..cli import open_state, state_options
from ..coro import run_nonsuspending
from ..devclient import call_json, quote
from ..errors import JsException
from . import admin
from .admin import split_statements  # re-exported: it lived here first

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


def _state(config_path: str, env: str | None, persist_to: str | None) -> tuple[Any, Path]:
    config, state = open_state(config_path, env, persist_to)
    if not config.d1_databases:
        raise click.ClickException(f"{config.path}: no [[d1_databases]] configured")
    return config, state


def _direct(config: Any, state: Path, operation: Any, *args: Any) -> Any:
    """Run an operation of `cfemu.d1.admin` on a `D1Service` over the files themselves."""
    from .service import D1Service

    service = D1Service(_CliHost(config, state))
    try:
        try:
            _sync(service.start())
        except (apsw.Error, OSError) as e:
            raise click.ClickException(f"cannot open the D1 database files under {state / 'd1'}: {e}") from None
        result = operation(service, *args)
        return _sync(result) if inspect.iscoroutine(result) else result
    except KeyError as e:
        raise click.ClickException(str(e.args[0])) from None
    except JsException as e:
        raise click.ClickException(str(e)) from None
    finally:
        _sync(service.close())


def _through(config_path: str, env: str | None, persist_to: str | None, method: str, database: str, verb: str,
             operation: Any, *args: Any, body: bytes | None = None) -> dict[str, Any]:
    """The operation's answer from the running `cfemu dev`, or from the files when none serves them."""
    config, state = _state(config_path, env, persist_to)
    answer = call_json(state, method, f"d1/{quote(database)}/{verb}", body=body,
                       headers={"Content-Type": "application/json"} if body is not None else None)
    return answer if answer is not None else _direct(config, state, operation, database, *args)


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
    out = _through(config_path, env, persist_to, "POST", database, "execute", admin.execute, sql,
                   body=json.dumps({"sql": sql}).encode())
    envelopes, db = out["results"], out["database"]
    if as_json:
        click.echo(json.dumps(envelopes, indent=2))
        return
    click.echo(f"Executing on local database {db['database_name']} ({db['database_id']}):")
    for envelope in envelopes:
        meta = envelope["meta"]
        if envelope["results"] or not meta["changed_db"]:
            click.echo(_table(envelope["results"]))
        else:
            click.echo(f"OK: {meta['changes']} change(s), last_row_id {meta['last_row_id']}")


@d1.group()
def migrations() -> None:
    """List and apply the migrations in a database's migrations_dir."""


@migrations.command("list")
@click.argument("database")
@state_options
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def list_(database: str, config_path: str, env: str | None, persist_to: str | None, as_json: bool) -> None:
    """Show every migration file of DATABASE and whether it has been applied."""
    out = _through(config_path, env, persist_to, "GET", database, "migrations/list", admin.list_migrations)
    items = out["migrations"]
    if as_json:
        click.echo(json.dumps(items, indent=2))
        return
    if not items:
        click.echo(f"No migrations found in {out['database']['migrations_dir']}")
        return
    pending = [m for m in items if m["applied_at"] is None]
    click.echo(_table([{"name": m["name"], "status": "applied " + m["applied_at"] if m["applied_at"] else "pending"}
                       for m in items]))
    click.echo(f"{len(pending)} migration(s) to apply." if pending else "No migrations to apply!")


@migrations.command("apply")
@click.argument("database")
@state_options
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def apply(database: str, config_path: str, env: str | None, persist_to: str | None, as_json: bool) -> None:
    """Apply DATABASE's pending migrations in order, each in its own transaction."""
    applied = _through(config_path, env, persist_to, "POST", database, "migrations/apply", admin.apply_migrations)["applied"]
    if as_json:
        click.echo(json.dumps(applied, indent=2))
        return
    if not applied:
        click.echo("No migrations to apply!")
        return
    click.echo(_table(applied))
