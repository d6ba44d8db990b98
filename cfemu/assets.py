"""Static assets from `[assets]`, served before the worker (or through `env.ASSETS.fetch`)."""

from __future__ import annotations

import hashlib
import mimetypes
from pathlib import Path
from urllib.parse import unquote, urlsplit

from .config import AssetsConfig
from .http import Request, Response

__all__ = ["Assets"]


class Assets:
    """Mirrors Workers Static Assets: html_handling, not_found_handling, ETags, and the `ASSETS` binding."""

    def __init__(self, config: AssetsConfig) -> None:
        self.config = config
        self.root = config.directory
        self.run_worker_first = config.run_worker_first

    def _file(self, relative: str) -> Path | None:
        if "\0" in relative:  # no file name holds a NUL; the OS would refuse it with ValueError
            return None
        try:
            candidate = (self.root / relative).resolve()
            found = candidate.is_file()
        except OSError:  # a name longer than the file system allows: there is no such asset
            return None
        if found and (candidate == self.root or self.root in candidate.parents):
            return candidate
        return None

    def _resolve(self, path: str) -> tuple[Path | None, str | None]:
        """The file for a URL path, or a redirect target (trailing-slash rules)."""
        rel = unquote(path).lstrip("/")
        handling = self.config.html_handling
        if handling == "none":
            return self._file(rel), None
        if rel == "" or rel.endswith("/"):
            found = self._file(rel + "index.html")
            if found:
                if handling == "drop-trailing-slash" and rel:
                    return None, "/" + rel.rstrip("/")
                return found, None
            found = self._file(rel.rstrip("/") + ".html") if rel else None
            if found and handling != "force-trailing-slash":
                return None, "/" + rel.rstrip("/")
            return found, None
        exact = self._file(rel)
        if exact is not None:
            if rel == "index.html" or rel.endswith("/index.html"):
                return None, "/" + rel[: -len("index.html")]
            if rel.endswith(".html"):
                return None, "/" + rel[: -len(".html")]
            return exact, None
        found = self._file(rel + ".html")
        if found:
            return (None, "/" + rel + "/") if handling == "force-trailing-slash" else (found, None)
        found = self._file(rel + "/index.html")
        if found:
            return (found, None) if handling == "drop-trailing-slash" else (None, "/" + rel + "/")
        return None, None

    def match(self, request: Request) -> Response | None:
        """The asset response for this request, or None to let the worker answer."""
        path = urlsplit(request.url).path
        file, redirect = self._resolve(path)
        if redirect is not None:
            return Response(None, status=307, headers={"location": redirect})
        if file is None:
            return None
        return self._respond(file, request)

    def serve(self, request: Request) -> Response:
        """Serve or apply `not_found_handling` (the `env.ASSETS.fetch` behaviour)."""
        found = self.match(request)
        if found is not None:
            return found
        mode = self.config.not_found_handling
        if mode == "single-page-application":
            index = self._file("index.html")
            if index:
                return self._respond(index, request)
        elif mode == "404-page":
            parts = unquote(urlsplit(request.url).path).strip("/").split("/")
            for depth in range(len(parts), -1, -1):
                page = self._file("/".join(parts[:depth] + ["404.html"]))
                if page:
                    return self._respond(page, request, status=404)
        return Response("Not Found", status=404)

    async def fetch(self, request: Request | str, **init) -> Response:
        if isinstance(request, str):
            request = Request(request, **init)
        return self.serve(request)

    def _respond(self, file: Path, request: Request, status: int = 200) -> Response:
        data = file.read_bytes()
        etag = '"' + hashlib.sha1(data).hexdigest() + '"'
        if status == 200 and request.headers.get("if-none-match") == etag:
            return Response(None, status=304, headers={"etag": etag})
        kind = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        if kind.startswith("text/") or kind in ("application/javascript", "application/json"):
            kind += "; charset=utf-8"
        headers = {"content-type": kind, "etag": etag, "cache-control": "public, max-age=0, must-revalidate"}
        return Response(data if request.method != "HEAD" else None, status=status, headers=headers)
