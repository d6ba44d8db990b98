"""The `cfemu` command: `cfemu dev` and the commands that read or change local state."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import click

__all__ = ["main", "state_options", "open_state"]

DEFAULT_STATE = ".cfemu/state"

# Subcommands that live beside the binding they serve, imported only when used.
_LAZY_COMMANDS = {
    "d1": ("cfemu.d1.cli:d1", "D1 databases: execute SQL, apply migrations."),
    "analytics": ("cfemu.analytics.cli:analytics", "Analytics Engine: query the stored data points with SQL."),
    "kv": ("cfemu.kv.cli:kv", "Workers KV: get, put, list and delete keys."),
    "r2": ("cfemu.r2.cli:r2", "R2 buckets: put, get, delete and list objects."),
    "queues": ("cfemu.queues.cli:queues", "Queues: depth, in flight, dead-lettered; purge."),
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(_LAZY_COMMANDS))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        command = super().get_command(ctx, name)
        if command is not None or name not in _LAZY_COMMANDS:
            return command
        target, help_text = _LAZY_COMMANDS[name]
        module_name, attr = target.split(":")
        try:
            return getattr(importlib.import_module(module_name), attr)
        except ModuleNotFoundError as error:
            # Name what is really missing: a dependency of the command is not the command.
            problem = (f"`cfemu {name}` is not available in this build" if error.name == module_name
                       else f"`cfemu {name}` needs the Python package {error.name!r}: pip install it")

            @click.command(name=name, help=help_text)
            def missing() -> None:
                raise click.ClickException(problem)

            return missing


def state_options(func: Any) -> Any:
    """--config, --env and --persist-to, shared by every command that touches state."""
    func = click.option("--persist-to", "persist_to", type=click.Path(file_okay=False), default=None,
                        help=f"State directory (default: {DEFAULT_STATE} beside the config).")(func)
    func = click.option("--env", "-e", "env", default=None, help="Environment ([env.<name>]) to use.")(func)
    func = click.option("--config", "-c", "config_path", type=click.Path(exists=True), default=".",
                        help="wrangler.toml (or its directory).")(func)
    return func


def open_state(config_path: str, env: str | None, persist_to: str | None):
    """Load the config and pick the state directory, turning config errors into clean CLI errors."""
    from .config import find_config, load_config
    from .errors import ConfigError

    try:
        config = load_config(config_path, env)
    except ConfigError as e:
        raise click.ClickException(str(e)) from None
    state = Path(persist_to) if persist_to else find_config(Path(config_path)).resolve().parent / DEFAULT_STATE
    return config, state.resolve()


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cfemu")
def main() -> None:
    """cfemu: run Cloudflare Workers written in Python on your machine."""


@main.command()
@state_options
@click.option("--port", "-p", type=click.IntRange(0, 65535), default=8787, show_default=True,
              help="Port to listen on (0 picks a free one).")
@click.option("--host", "-H", "--ip", "host", default="127.0.0.1", show_default=True,
              help="Address to listen on (--ip as in wrangler).")
@click.option("--var", "vars_", multiple=True, metavar="KEY:VALUE", help="Add or override a var (repeatable).")
@click.option("--live-reload/--no-live-reload", default=True, show_default=True, help="Reload worker code on change.")
@click.option("--log-level", default="info", type=click.Choice(["debug", "info", "warning", "error"]))
@click.option("--local-protocol", type=click.Choice(["http", "https"]), default="http", hidden=True)
@click.option("--test-scheduled", is_flag=True, hidden=True,
              help="Accepted for wrangler users: /cdn-cgi/handler/scheduled is always on.")
@click.option("--remote", is_flag=True, hidden=True)
def dev(config_path: str, env: str | None, persist_to: str | None, port: int, host: str, vars_: tuple[str, ...],
        live_reload: bool, log_level: str, local_protocol: str, test_scheduled: bool, remote: bool) -> None:
    """Serve the worker over HTTP and WebSockets, with state persisted locally."""
    from .server import run_dev

    # wrangler dev options a user may carry over: refuse clearly what cfemu cannot do
    if local_protocol == "https":
        raise click.UsageError("cfemu dev serves plain HTTP only; --local-protocol https is not supported")
    if remote:
        raise click.UsageError("cfemu runs workers locally only; --remote is not supported")
    extra = {}
    for item in vars_:
        key, sep, value = item.partition(":")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY:VALUE", param_hint="--var")
        extra[key] = value
    code = run_dev(config_path=config_path, env=env, persist_to=persist_to, port=port, host=host,
                   extra_vars=extra, live_reload=live_reload, log_level=log_level)
    sys.exit(code)
