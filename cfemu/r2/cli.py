"""`cfemu r2 object put|get|delete|list`: wrangler's R2 object verbs on the local state.

R2 keeps no state in memory between calls and SQLite (WAL) lets processes share the metadata, so
these commands open the bucket directly even while a `cfemu dev` serves it; they never run the
start-up clean-up, which could remove a file the server is still writing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import apsw
import click

from ..cli import open_state, state_options
from ..coro import run_nonsuspending
from ..errors import JsException

__all__ = ["r2"]


def _sync(coroutine: Any) -> Any:
    # A binding error (bad key, too large...) is the user's to fix: its text, not a traceback.
    try:
        return run_nonsuspending(coroutine, "R2 operation")
    except JsException as e:
        raise click.ClickException(str(e)) from None
    except apsw.Error as e:
        # e.g. the metadata file is locked by another writer for longer than the busy timeout
        raise click.ClickException(f"the R2 bucket's metadata file could not be used: {e}") from None


def _open(path: str, config_path: str, env: str | None, persist_to: str | None) -> tuple[Any, str]:
    from ..clock import RealClock
    from .bucket import R2Bucket
    from .storage import R2Storage

    name, sep, key = path.partition("/")
    if not sep or not key:
        raise click.BadParameter(f"{path!r} is not <bucket>/<key>", param_hint="OBJECT_PATH")
    config, state = open_state(config_path, env, persist_to)
    for bucket in config.r2_buckets:
        if name in (bucket.bucket_name, bucket.binding):
            root = state / "r2" / bucket.bucket_name
            try:
                storage = R2Storage(root, recover=False)
            except (apsw.Error, OSError) as e:
                raise click.ClickException(f"cannot open the R2 bucket at {root}: {e}") from None
            return R2Bucket(storage, RealClock(), name=bucket.bucket_name), key
    known = ", ".join(b.bucket_name for b in config.r2_buckets) or "none"
    raise click.ClickException(f"no R2 bucket {name!r} in the config (buckets: {known})")


@click.group()
def r2() -> None:
    """R2 buckets: put, get, delete and list objects."""


@r2.group("object")
def object_() -> None:
    """Objects in a bucket, addressed as <bucket>/<key>."""


@object_.command()
@click.argument("object_path")
@state_options
@click.option("--file", "-f", "file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Upload this file.")
@click.option("--pipe", "-p", is_flag=True, help="Read the body from stdin.")
@click.option("--content-type", "-ct", default=None, help="Content-Type to store.")
@click.option("--cache-control", "-cc", default=None, help="Cache-Control to store.")
@click.option("--json", "as_json", is_flag=True, help="Print the stored object's metadata as JSON.")
def put(object_path: str, config_path: str, env: str | None, persist_to: str | None, file: str | None, pipe: bool,
        content_type: str | None, cache_control: str | None, as_json: bool) -> None:
    """Store an object."""
    if (file is None) == (not pipe):
        raise click.UsageError("give exactly one of --file or --pipe")
    data = Path(file).read_bytes() if file else sys.stdin.buffer.read()
    bucket, key = _open(object_path, config_path, env, persist_to)
    http = {k: v for k, v in (("contentType", content_type), ("cacheControl", cache_control)) if v}
    try:
        obj = _sync(bucket.put(key, data, httpMetadata=http))
    finally:
        bucket._storage.close()
    if as_json:
        click.echo(json.dumps(_describe(obj), indent=2))
    else:
        click.echo(f"Uploaded {bucket.name}/{key} ({obj.size} bytes, etag {obj.etag})")


@object_.command()
@click.argument("object_path")
@state_options
@click.option("--file", "-f", "file", type=click.Path(dir_okay=False), default=None, help="Write the body here.")
@click.option("--pipe", "-p", is_flag=True, help="Write the body to stdout.")
def get(object_path: str, config_path: str, env: str | None, persist_to: str | None, file: str | None,
        pipe: bool) -> None:
    """Fetch an object's body."""
    bucket, key = _open(object_path, config_path, env, persist_to)
    try:
        obj = _sync(bucket.get(key))
        if obj is None:
            raise click.ClickException(f"The specified key does not exist: {bucket.name}/{key}")
        data = _sync(obj.bytes())
    finally:
        bucket._storage.close()
    if file:
        Path(file).write_bytes(data)
        click.echo(f"Downloaded {bucket.name}/{key} to {file} ({len(data)} bytes)", err=True)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()


@object_.command()
@click.argument("object_path")
@state_options
def delete(object_path: str, config_path: str, env: str | None, persist_to: str | None) -> None:
    """Delete an object."""
    bucket, key = _open(object_path, config_path, env, persist_to)
    try:
        _sync(bucket.delete(key))
    finally:
        bucket._storage.close()
    click.echo(f"Deleted {bucket.name}/{key}")


@object_.command("list")
@click.argument("bucket_name")
@state_options
@click.option("--prefix", default="", help="Only keys starting with this.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def list_(bucket_name: str, config_path: str, env: str | None, persist_to: str | None, prefix: str,
          as_json: bool) -> None:
    """List the objects of a bucket (every page)."""
    bucket, _ = _open(f"{bucket_name}/-", config_path, env, persist_to)
    objects = []
    try:
        cursor = None
        while True:
            page = _sync(bucket.list(prefix=prefix, cursor=cursor, include=["httpMetadata", "customMetadata"]))
            objects += page["objects"]
            if not page["truncated"]:
                break
            cursor = page["cursor"]
    finally:
        bucket._storage.close()
    if as_json:
        click.echo(json.dumps([_describe(o) for o in objects], indent=2))
        return
    for o in objects:
        click.echo(f"{o.key}\t{o.size}\t{o.uploaded.isoformat()}\t{o.etag}")


def _describe(obj: Any) -> dict[str, Any]:
    http = dict(obj.httpMetadata or {})
    if "cacheExpiry" in http:
        http["cacheExpiry"] = http["cacheExpiry"].isoformat()
    return {"key": obj.key, "size": obj.size, "etag": obj.etag, "version": obj.version,
            "uploaded": obj.uploaded.isoformat(), "httpMetadata": http, "customMetadata": dict(obj.customMetadata or {})}
