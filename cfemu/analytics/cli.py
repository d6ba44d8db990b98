"""`cfemu analytics`: query the stored Analytics Engine data points with SQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from ..cli import open_state, state_options

__all__ = ["analytics"]

_FORMATS = ["json", "JSONEachRow", "TabSeparated"]


@click.group()
def analytics() -> None:
    """Analytics Engine: query the stored data points with SQL."""


def _via_server(state: Path, sql: str, fmt: str | None) -> tuple[int, Any] | None:
    """The SQL API's answer from the `cfemu dev` serving `state`, or None when none serves it."""
    from ..devclient import request

    answer = request(state, "POST", "/client/v4/accounts/local/analytics_engine/sql", query={"format": fmt or None},
                     body=sql.encode(), headers={"Content-Type": "text/plain", "Authorization": "Bearer local"})
    if answer is None:
        return None
    text = answer.body.decode()
    if answer.status >= 400 or answer.content_type != "application/json":
        return answer.status, text
    return answer.status, json.loads(text)


def _direct(state: Path, sql: str, fmt: str | None) -> tuple[int, Any]:
    from ..clock import RealClock
    from .engine import run_query
    from .errors import AnalyticsQueryError
    from .storage import AnalyticsStore, StoreBusyError

    try:
        store = AnalyticsStore(state / "analytics", read_only=True)
    except StoreBusyError as e:
        raise click.ClickException(f"{e}; stop it or query through its `cfemu dev` server") from None
    try:
        body = run_query(store if not store.closed else None, sql, now=RealClock().now(), fmt=fmt)
    except AnalyticsQueryError as e:
        return e.status, e.message
    finally:
        store.close()
    return 200, body


@analytics.command()
@click.argument("sql")
@click.option("--format", "-f", "fmt", type=click.Choice(_FORMATS, case_sensitive=False), default=None,
              help="Output format (overrides a FORMAT clause in the query).")
@state_options
def query(sql: str, fmt: str | None, config_path: str, env: str | None, persist_to: str | None) -> None:
    """Run SQL as the Analytics Engine SQL API would, e.g. "SELECT count() FROM my_dataset".

    Talks to the `cfemu dev` serving this state directory when there is one (it holds the
    database open); otherwise reads the files directly.
    """
    _, state = open_state(config_path, env, persist_to)
    status, body = _via_server(state, sql, fmt) or _direct(state, sql, fmt)
    if status >= 400:
        raise click.ClickException(str(body).strip())
    if isinstance(body, dict):
        click.echo(json.dumps(body, indent=2, ensure_ascii=False))
    else:
        click.echo(body, nl=False)
