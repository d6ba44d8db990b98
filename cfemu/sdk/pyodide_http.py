"""`pyodide.http`: `pyfetch`, which Python Workers code often uses for outbound requests."""

from __future__ import annotations

from typing import Any

from ..http import Request, Response, fetch

__cfemu__ = True
__all__ = ["pyfetch", "FetchResponse"]

FetchResponse = Response  # status, status_text, ok, headers, url, text()/json()/bytes(), raise_for_status()


async def pyfetch(url: str | Request, **kwargs: Any) -> Response:
    """`await pyfetch(url, method=..., headers=..., body=...)`: the same outbound fetch as `workers.fetch`."""
    kwargs.pop("fetcher", None)
    return await fetch(url, **kwargs)
