"""`cfemu kv key put|get|list|delete` and `cfemu kv namespace list`: wrangler's KV verbs on local state.

When a `cfemu dev` serves the same state directory the commands act through it, on the very
namespace its worker uses (`cfemu.kv.admin`), so nothing races the server's open file; otherwise
they open the namespace file directly.  Both paths run the same operations and print the same.
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
from ..devclient import call, call_json, quote

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


def _resolve(config_path: str, env: str | None, persist_to: str | None, binding: str | None,
             namespace_id: str | None) -> tuple[Path, str]:
    """The state directory and the namespace id the options name."""
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
    return state, namespace_id  # type: ignore[return-value]


def _direct(state: Path, namespace_id: str, operation: Any, *args: Any, **kwargs: Any) -> Any:
    """Run an operation of `cfemu.kv.admin` on the namespace file itself."""
    from ..clock import RealClock
    from . import KVNamespace, namespace_path

    path = namespace_path(state, namespace_id)
    try:
        ns = KVNamespace.open(path, clock=RealClock())
    except (sqlite3.Error, OSError) as e:
        raise click.ClickException(f"cannot open the KV namespace file {path}: {e}") from None
    try:
        return _run(operation(ns, *args, **kwargs))
    finally:
        ns.close()


def _endpoint(namespace_id: str, verb: str) -> str:
    return f"kv/{quote(namespace_id)}/{verb}"


def _run(coro: Any) -> Any:
    from ..errors import JsException
    from .admin import FILE_UNUSABLE

    try:
        return asyncio.run(coro)
    except JsException as e:
        raise click.ClickException(str(e)) from None
    except sqlite3.Error as e:
        # e.g. the file is locked by another writer for longer than the busy timeout
        raise click.ClickException(FILE_UNUSABLE.format(error=e)) from None


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
    from . import admin

    state, ns_id = _resolve(config_path, env, persist_to, binding, namespace_id)
    query = {"key": name, "ttl": ttl, "expiration": expiration,
             "metadata": None if metadata is None else json.dumps(meta)}
    body = data.encode() if isinstance(data, str) else data
    if call(state, "POST", _endpoint(ns_id, "put"), query=query, body=body) is None:
        _direct(state, ns_id, admin.put_value, name, data, ttl=ttl, expiration=expiration, metadata=meta)
    click.echo(f"Wrote {len(data.encode() if isinstance(data, str) else data)} bytes to {name!r}.", err=True)


@key.command("get", help="Print the value of KEY (raw bytes unless --text).")
@_namespace_options
@click.argument("name", metavar="KEY")
@click.option("--text", is_flag=True, help="Decode the value as UTF-8 text.")
@click.option("--json", "as_json", is_flag=True,
              help="Print {key, value, encoding, metadata, expiration} as JSON (value in base64 when not UTF-8).")
def get(config_path: str, env: str | None, persist_to: str | None, binding: str | None, namespace_id: str | None,
        name: str, text: bool, as_json: bool) -> None:
    from . import admin

    state, ns_id = _resolve(config_path, env, persist_to, binding, namespace_id)
    answer = call(state, "GET", _endpoint(ns_id, "get"), query={"key": name, "expiration": "1" if as_json else None})
    if answer is not None:
        entry = json.loads(answer.headers[admin.ENTRY_HEADER])
        result = {"value": answer.body if entry["found"] else None, "metadata": entry["metadata"],
                  "expiration": entry["expiration"]}
    else:
        result = _direct(state, ns_id, admin.get_value, name, with_expiration=as_json)
    value, expiration = result["value"], result["expiration"]
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
    from . import admin

    state, ns_id = _resolve(config_path, env, persist_to, binding, namespace_id)
    if call(state, "POST", _endpoint(ns_id, "delete"), query={"key": name}) is None:
        _direct(state, ns_id, admin.delete_key, name)
    click.echo(f"Deleted {name!r}.", err=True)


@key.command("list", help="List the keys (all pages), in UTF-8 byte order.")
@_namespace_options
@click.option("--prefix", default=None, help="Only keys starting with this.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of {name, expiration?, metadata?}.")
def list_(config_path: str, env: str | None, persist_to: str | None, binding: str | None, namespace_id: str | None,
          prefix: str | None, as_json: bool) -> None:
    from . import admin

    state, ns_id = _resolve(config_path, env, persist_to, binding, namespace_id)
    answer = call_json(state, "GET", _endpoint(ns_id, "list"), query={"prefix": prefix})
    keys = answer["keys"] if answer is not None else _direct(state, ns_id, admin.list_keys, prefix)
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
        answer = call_json(state, "GET", _endpoint(ns.id, "count"))
        if answer is not None:
            count = answer["keys"]
        elif path.exists():
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
