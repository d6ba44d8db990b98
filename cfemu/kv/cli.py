"""`cfemu kv key put|get|list|delete` and `cfemu kv namespace list`: wrangler's KV verbs on local state.

The namespace file is opened directly: SQLite's WAL lets this run beside a `cfemu dev` serving the
same state directory (each write is committed before the command returns, and the server reads it on
its next access).
"""

from __future__ import annotations

import asyncio
import base64
import json
import sqlite3
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click

from ..cli import open_state, state_options

__all__ = ["kv"]


@click.group(help="Workers KV: get, put, list and delete keys.")
def kv() -> None:
    pass


@kv.group(help="Read and change the keys of a namespace.")
def key() -> None:
    pass


def _namespace_options(func: Any) -> Any:
    func = click.option("--namespace-id", "namespace_id", default=None, help="The namespace id (instead of --binding).")(func)
    func = click.option("--binding", "binding", default=None, help="The namespace's binding name in wrangler.toml.")(func)
    return state_options(func)


def _open(config_path: str, env: str | None, persist_to: str | None, binding: str | None, namespace_id: str | None):
    from ..clock import RealClock
    from . import KVNamespace, namespace_path

    config, state = open_state(config_path, env, persist_to)
    if (binding is None) == (namespace_id is None):
        bound = ", ".join(ns.binding for ns in config.kv_namespaces) or "none"
        raise click.UsageError(f"give exactly one of --binding or --namespace-id (KV bindings in the config: {bound})")
    if binding is not None:
        match = [ns for ns in config.kv_namespaces if ns.binding == binding]
        if not match:
            bound = ", ".join(ns.binding for ns in config.kv_namespaces) or "none"
            raise click.ClickException(f"no KV namespace is bound as {binding!r} in {config.path} (bound: {bound})")
        namespace_id = match[0].id
    path = namespace_path(state, namespace_id)
    try:
        return KVNamespace.open(path, clock=RealClock())
    except (sqlite3.Error, OSError) as e:
        raise click.ClickException(f"cannot open the KV namespace file {path}: {e}") from None


def _run(coro: Any) -> Any:
    from ..errors import JsException

    try:
        return asyncio.run(coro)
    except JsException as e:
        raise click.ClickException(str(e)) from None
    except sqlite3.Error as e:
        # e.g. the file is locked by another writer for longer than the busy timeout
        raise click.ClickException(f"the KV namespace file could not be used: {e}") from None


@key.command("put", help="Write KEY. The value is VALUE, or the contents of --path.")
@_namespace_options
@click.argument("name", metavar="KEY")
@click.argument("value", required=False)
@click.option("--path", "path", type=click.Path(exists=True, dir_okay=False), help="Read the value from this file.")
@click.option("--ttl", type=int, default=None, help="Expire the key this many seconds from now (>= 60).")
@click.option("--expiration", type=int, default=None, help="Expire the key at this time (seconds since the epoch).")
@click.option("--metadata", default=None, help="Metadata as JSON.")
def put(config_path: str, env: str | None, persist_to: str | None, binding: str | None, namespace_id: str | None,
        name: str, value: str | None, path: str | None, ttl: int | None, expiration: int | None,
        metadata: str | None) -> None:
    if (value is None) == (path is None):
        raise click.UsageError("give exactly one of VALUE or --path")
    data: str | bytes = Path(path).read_bytes() if path is not None else value  # type: ignore[assignment]
    meta = None
    if metadata is not None:
        try:
            meta = json.loads(metadata)
        except ValueError as e:
            raise click.BadParameter(f"not valid JSON: {e}", param_hint="--metadata") from None
    ns = _open(config_path, env, persist_to, binding, namespace_id)
    try:
        _run(ns.put(name, data, expirationTtl=ttl, expiration=expiration, metadata=meta))
    finally:
        ns.close()
    click.echo(f"Wrote {len(data.encode() if isinstance(data, str) else data)} bytes to {name!r}.", err=True)


@key.command("get", help="Print the value of KEY (raw bytes unless --text).")
@_namespace_options
@click.argument("name", metavar="KEY")
@click.option("--text", is_flag=True, help="Decode the value as UTF-8 text.")
@click.option("--json", "as_json", is_flag=True,
              help="Print {key, value, encoding, metadata, expiration} as JSON (value in base64 when not UTF-8).")
def get(config_path: str, env: str | None, persist_to: str | None, binding: str | None, namespace_id: str | None,
        name: str, text: bool, as_json: bool) -> None:
    ns = _open(config_path, env, persist_to, binding, namespace_id)
    try:
        result = _run(ns.getWithMetadata(name, type="arrayBuffer"))
        expiration = None
        if as_json and result["value"] is not None:
            listed = _run(ns.list(prefix=name, limit=1))
            if listed["keys"] and listed["keys"][0]["name"] == name:
                expiration = listed["keys"][0].get("expiration")
    finally:
        ns.close()
    value = result["value"]
    if as_json:
        # A value that is not UTF-8 text goes out as base64 rather than being silently mangled.
        encoding, text = "utf-8", None
        if value is not None:
            try:
                text = value.decode("utf-8")
            except UnicodeDecodeError:
                encoding, text = "base64", base64.b64encode(value).decode()
        out = {"key": name, "value": text, "encoding": encoding, "metadata": result["metadata"],
               "expiration": expiration}
        click.echo(json.dumps(out, ensure_ascii=False))
        return
    if value is None:
        raise click.ClickException(f"Value not found for key {name!r}.")
    if text:
        click.echo(value.decode("utf-8", errors="replace"))
    else:
        sys.stdout.buffer.write(value)
        sys.stdout.buffer.flush()


@key.command("delete", help="Delete KEY (deleting a missing key is not an error).")
@_namespace_options
@click.argument("name", metavar="KEY")
def delete(config_path: str, env: str | None, persist_to: str | None, binding: str | None, namespace_id: str | None,
           name: str) -> None:
    ns = _open(config_path, env, persist_to, binding, namespace_id)
    try:
        _run(ns.delete(name))
    finally:
        ns.close()
    click.echo(f"Deleted {name!r}.", err=True)


@key.command("list", help="List the keys (all pages), in UTF-8 byte order.")
@_namespace_options
@click.option("--prefix", default=None, help="Only keys starting with this.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of {name, expiration?, metadata?}.")
def list_(config_path: str, env: str | None, persist_to: str | None, binding: str | None, namespace_id: str | None,
          prefix: str | None, as_json: bool) -> None:
    ns = _open(config_path, env, persist_to, binding, namespace_id)
    keys: list[dict[str, Any]] = []
    try:
        cursor = None
        while True:
            page = _run(ns.list(prefix=prefix, cursor=cursor))
            keys.extend(dict(k) for k in page["keys"])
            if page["list_complete"]:
                break
            cursor = page["cursor"]
    finally:
        ns.close()
    if as_json:
        click.echo(json.dumps(keys, ensure_ascii=False))
        return
    if not keys:
        click.echo("(no keys)", err=True)
    for item in keys:
        parts = [item["name"]]
        if "expiration" in item:
            when = datetime.fromtimestamp(item["expiration"], tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
            parts.append(f"expires {when}")
        if "metadata" in item:
            parts.append("metadata " + json.dumps(item["metadata"], ensure_ascii=False))
        click.echo("  ".join(parts))


@kv.group(help="The namespaces of the config.")
def namespace() -> None:
    pass


@namespace.command("list", help="List the KV namespaces bound in the config, with their local key counts.")
@state_options
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of {binding, id, keys}.")
def namespace_list(config_path: str, env: str | None, persist_to: str | None, as_json: bool) -> None:
    from . import KVStore, namespace_path

    config, state = open_state(config_path, env, persist_to)
    rows = []
    for ns in config.kv_namespaces:
        path = namespace_path(state, ns.id)
        count = 0
        if path.exists():
            try:
                store = KVStore(path)
                try:
                    count = store.count()
                finally:
                    store.close()
            except (sqlite3.Error, OSError) as e:
                raise click.ClickException(f"cannot open the KV namespace file {path}: {e}") from None
        rows.append({"binding": ns.binding, "id": ns.id, "keys": count})
    if as_json:
        click.echo(json.dumps(rows))
        return
    if not rows:
        click.echo(f"(no [[kv_namespaces]] in {config.path})", err=True)
    for row in rows:
        click.echo(f"{row['binding']}  id={row['id']}  {row['keys']} key(s) stored")
