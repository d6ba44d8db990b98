"""The one error root of cfemu, shaped like the JS errors the Python Workers SDK surfaces.

`str(e)` is Cloudflare's bare message text.  Each class subclasses the Python built-in that the
official SDK raises for the JS error (TypeError -> TypeError, RangeError -> ValueError), and carries
`.name` and `.message` like Pyodide's `JsException`.
"""

from __future__ import annotations

__all__ = [
    "JsException",
    "JsTypeError",
    "JsRangeError",
    "ConfigError",
    "WorkerLoadError",
]


class JsException(Exception):
    """A JS `Error` (and root of every cfemu error a worker can see); mirrors `pyodide.ffi.JsException`."""

    name = "Error"

    def __init__(self, message: str = "", *, name: str | None = None, retryable: bool = False,
                 overloaded: bool = False, remote: bool = False) -> None:
        super().__init__(message)
        self.message = message
        if name is not None:
            self.name = name
        # workerd tags errors that crossed an RPC boundary or may succeed on retry.
        self.retryable = retryable
        self.overloaded = overloaded
        self.remote = remote

    def __str__(self) -> str:
        return self.message


class JsTypeError(JsException, TypeError):
    """A JS `TypeError`."""

    name = "TypeError"


class JsRangeError(JsException, ValueError):
    """A JS `RangeError`."""

    name = "RangeError"


class ConfigError(Exception):
    """wrangler.toml (or wrangler.json) is invalid; the message names the file and the key."""


class WorkerLoadError(Exception):
    """The worker's code failed to import; the message names the file and line."""

    def __init__(self, message: str, *, filename: str | None = None, lineno: int | None = None) -> None:
        super().__init__(message)
        self.filename = filename
        self.lineno = lineno
