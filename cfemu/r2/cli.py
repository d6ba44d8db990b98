"""`cfemu r2 object put|get|delete|list`: wrangler's R2 object verbs on the local state.

When a `cfemu dev` serves the same state directory these commands act through it, on the bucket its
worker uses (`cfemu.r2.admin`), so nothing races the server's open files; otherwise they open the
bucket directly (never running the start-up clean-up).  Both paths run the same operations and
print the same.
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
from ..devclient import call, call_json, quote
from ..errors import JsException
from . import admin

__all__ = ["r2"]


def _sync(coroutine: Any) -> Any:
    # A binding error (bad key, too large...) is the user's to fix: its text, not a traceback.
    try:
        return run_nonsuspending(coroutine, "R2 operation")
    except JsException as e:
        raise click.ClickException(str(e)) from None
    except apsw.Error as e:
        # e.g. the metadata file is locked by another writer for longer than the busy timeout
        raise click.ClickException(admin.METADATA_UNUSABLE.format(error=e)) from None


def _resolve(path: str, config_path: str, env: str | None, persist_to: str | None) -> tuple[Path, str, str]:
    """The state directory, the bucket_name and the key `<bucket>/<key>` names."""
    name, sep, key = path.partition("/")
    if not sep or not key:
        raise click.BadParameter(f"{path!r} is not <bucket>/<key>", param_hint="OBJECT_PATH")
    config, state = open_state(config_path, env, persist_to)
    for bucket in config.r2_buckets:
        if name in (bucket.bucket_name, bucket.binding):
            return state, bucket.bucket_name, key
    known = ", ".join(b.bucket_name for b in config.r2_buckets) or "none"
    raise click.ClickException(f"no R2 bucket {name!r} in the config (buckets: {known})")


def _direct(state: Path, bucket_name: str, operation: Any, *args: Any) -> Any:
    """Run an operation of `cfemu.r2.admin` on the bucket's files themselves."""
    from ..clock import RealClock
    from .bucket import R2Bucket
    from .storage import R2Storage

    root = state / "r2" / bucket_name
    try:
        storage = R2Storage(root, recover=False)
    except (apsw.Error, OSError) as e:
        raise click.ClickException(f"cannot open the R2 bucket at {root}: {e}") from None
    try:
        return _sync(operation(R2Bucket(storage, RealClock(), name=bucket_name), *args))
    finally:
        storage.close()


def _endpoint(bucket_name: str, verb: str) -> str:
    return f"r2/{quote(bucket_name)}/{verb}"


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
    state, name, key = _resolve(object_path, config_path, env, persist_to)
    http = {k: v for k, v in (("contentType", content_type), ("cacheControl", cache_control)) if v}
    obj = call_json(state, "POST", _endpoint(name, "put"), query={"key": key, **http}, body=data)
    if obj is None:
        obj = _direct(state, name, admin.put_object, key, data, http)
    if as_json:
        click.echo(json.dumps(obj, indent=2))
    else:
        click.echo(f"Uploaded {name}/{key} ({obj['size']} bytes, etag {obj['etag']})")


@object_.command()
@click.argument("object_path")
@state_options
@click.option("--file", "-f", "file", type=click.Path(dir_okay=False), default=None, help="Write the body here.")
@click.option("--pipe", "-p", is_flag=True, help="Write the body to stdout.")
def get(object_path: str, config_path: str, env: str | None, persist_to: str | None, file: str | None,
        pipe: bool) -> None:
    """Fetch an object's body."""
    state, name, key = _resolve(object_path, config_path, env, persist_to)
    answer = call(state, "GET", _endpoint(name, "get"), query={"key": key})
    data = answer.body if answer is not None else _direct(state, name, admin.get_object, key)
    if data is None:
        raise click.ClickException(admin.NO_SUCH_KEY.format(bucket=name, key=key))
    if file:
        Path(file).write_bytes(data)
        click.echo(f"Downloaded {name}/{key} to {file} ({len(data)} bytes)", err=True)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()


@object_.command()
@click.argument("object_path")
@state_options
def delete(object_path: str, config_path: str, env: str | None, persist_to: str | None) -> None:
    """Delete an object."""
    state, name, key = _resolve(object_path, config_path, env, persist_to)
    if call(state, "POST", _endpoint(name, "delete"), query={"key": key}) is None:
        _direct(state, name, admin.delete_object, key)
    click.echo(f"Deleted {name}/{key}")


@object_.command("list")
@click.argument("bucket_name")
@state_options
@click.option("--prefix", default="", help="Only keys starting with this.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def list_(bucket_name: str, config_path: str, env: str | None, persist_to: str | None, prefix: str,
          as_json: bool) -> None:
    """List the objects of a bucket (every page)."""
    state, name, _ = _resolve(f"{bucket_name}/-", config_path, env, persist_to)
    answer = call_json(state, "GET", _endpoint(name, "list"), query={"prefix": prefix})
    objects = answer["objects"] if answer is not None else _direct(state, name, admin.list_objects, prefix)
    if as_json:
        click.echo(json.dumps(objects, indent=2))
        return
    for o in objects:
        click.echo(f"{o['key']}\t{o['size']}\t{o['uploaded']}\t{o['etag']}")
