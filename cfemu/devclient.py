"""The CLI side of talking to a `cfemu dev` that serves the same state directory.

`request` sends one HTTP request to the server `running_server` names and gives back its answer, or
None when there is no server to ask (no dev.json, a dead pid, or a dev.json left by a killed server
whose port now refuses connections): the caller then opens the files itself.  `call` does the same
for the internal endpoints under `/cdn-cgi/cfemu/`, whose errors are `{"error": message}`: it turns
them into the one-line `click` error the direct path gives, and treats an endpoint that answers
"not served here" (the server's config has no such binding) as no server.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from .devinfo import INTERNAL_PREFIX, NOT_SERVED, running_server

__all__ = ["Answer", "request", "call", "call_json", "quote"]


@dataclass
class Answer:
    """A server's answer: status, headers and the whole body."""

    status: int
    headers: Any
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get_content_type() if self.headers is not None else ""

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            raise click.ClickException("cfemu dev gave an answer that is not JSON") from None


def request(state_dir: Path, method: str, path: str, *, query: dict[str, Any] | None = None,
            body: bytes | None = None, headers: dict[str, str] | None = None,
            timeout: float = 60) -> Answer | None:
    """The answer of the `cfemu dev` serving `state_dir` (any status), or None when none serves it."""
    url = running_server(state_dir)
    if url is None:
        return None
    target = url.rstrip("/") + path
    if query:
        target += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
    if body is None and method == "POST":
        body = b""
    req = urllib.request.Request(target, method=method, data=body, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return Answer(resp.status, resp.headers, resp.read())
    except urllib.error.HTTPError as error:
        return Answer(error.code, error.headers, error.read())
    except (ConnectionRefusedError, urllib.error.URLError) as error:
        reason = getattr(error, "reason", error)
        if isinstance(reason, ConnectionRefusedError):
            return None  # a stale dev.json (its pid possibly reused): nothing serves the files
        raise click.ClickException(f"cannot reach cfemu dev at {url}: {reason}") from None
    except OSError as error:  # e.g. a timeout while reading the answer
        raise click.ClickException(f"cannot reach cfemu dev at {url}: {error}") from None


def call(state_dir: Path, method: str, endpoint: str, **kwargs: Any) -> Answer | None:
    """POST/GET `/cdn-cgi/cfemu/<endpoint>`: a 2xx answer, None when no server serves it, or a clean error."""
    answer = request(state_dir, method, INTERNAL_PREFIX + endpoint, **kwargs)
    if answer is None or answer.status < 400:
        return answer
    detail: Any = None
    if answer.content_type == "application/json":
        try:
            detail = json.loads(answer.body)
        except ValueError:
            detail = None
    if isinstance(detail, dict) and detail.get(NOT_SERVED):
        return None  # the running server has no such binding: the files are not its to guard
    if isinstance(detail, dict) and isinstance(detail.get("error"), str):
        raise click.ClickException(detail["error"])
    text = answer.body.decode("utf-8", "replace").strip()
    raise click.ClickException(f"cfemu dev at {running_server(state_dir)} answered {answer.status}: {text}")


def call_json(state_dir: Path, method: str, endpoint: str, **kwargs: Any) -> Any | None:
    """`call`, with the answer's JSON body (None when no server serves it)."""
    answer = call(state_dir, method, endpoint, **kwargs)
    return None if answer is None else answer.json()


def quote(segment: str) -> str:
    """A name as one path segment of an endpoint."""
    return urllib.parse.quote(segment, safe="")
