"""`cfemu queues list|purge`: queue depth, messages in flight and dead-lettered, and purging.

When a `cfemu dev` serves the same state directory, the command asks it (only the running broker
knows what is in flight, and a purge must also drop its in-memory schedule); otherwise it reads and
writes the queue store directly.
"""

from __future__ import annotations

import json
from dataclasses import asdict

import click

from ..cli import open_state, state_options
from ..devclient import call_json

__all__ = ["queues"]


def _configured(config) -> list[str]:
    names = {p.queue for p in config.queue_producers} | {c.queue for c in config.queue_consumers}
    names |= {c.dead_letter_queue for c in config.queue_consumers if c.dead_letter_queue}
    return sorted(names)


def _store(state):
    from .service import STORE_NAME
    from .storage import QueueStore

    path = state / "queues" / STORE_NAME
    if not path.exists():
        return None
    return QueueStore(path)


@click.group()
def queues() -> None:
    """Queues: depth, in flight, dead-lettered; purge."""


@queues.command("list")
@state_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_queues(config_path: str, env: str | None, persist_to: str | None, as_json: bool) -> None:
    """Every queue with its depth, delayed, in-flight and lifetime counters."""
    config, state = open_state(config_path, env, persist_to)
    answer = call_json(state, "GET", "queues")
    if answer is not None:
        rows = answer["queues"]
    else:
        from ..clock import RealClock

        store = _store(state)
        now = RealClock().now()  # offline there is no runtime: its clock would be the real one
        rows = [] if store is None else [asdict(c) for c in store.counts(now, _configured(config))]
        if store is not None:
            store.close()
        known = {r["queue"] for r in rows}
        rows += [{"queue": q, "depth": 0, "delayed": 0, "in_flight": 0, "acked": 0, "retried": 0,
                  "dead_lettered": 0, "dropped": 0} for q in _configured(config) if q not in known]
    rows.sort(key=lambda r: r["queue"])
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    columns = ["queue", "depth", "delayed", "in_flight", "acked", "retried", "dead_lettered", "dropped"]
    widths = [max(len(c), *(len(str(r[c])) for r in rows)) if rows else len(c) for c in columns]
    click.echo("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    for row in rows:
        click.echo("  ".join(str(row[c]).ljust(w) for c, w in zip(columns, widths)))
    if answer is None:
        click.echo("(no cfemu dev running on this state: in_flight is not known)", err=True)


@queues.command("purge")
@state_options
@click.argument("queue")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def purge(config_path: str, env: str | None, persist_to: str | None, queue: str, as_json: bool) -> None:
    """Delete every stored message of QUEUE that is not being handled right now."""
    config, state = open_state(config_path, env, persist_to)
    answer = call_json(state, "POST", "queues/purge", query={"queue": queue})
    if answer is not None:
        count = answer["purged"]
    else:
        store = _store(state)
        count = 0 if store is None else len(store.purge(queue))
        if store is not None:
            store.close()
    click.echo(json.dumps({"queue": queue, "purged": count}) if as_json else f"Purged {count} message(s) from {queue}")
