"""Static assets from `[assets]`, served before the worker (or through `env.ASSETS.fetch`)."""

from __future__ import annotations

import hashlib
import mimetypes
import re
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

from .assets_rules import IGNORED_FILES, AssetRules, apply_headers
from .config import AssetsConfig
from .http import Request, Response

__all__ = ["Assets"]


class Assets:
    """Mirrors Workers Static Assets: html_handling, not_found_handling, ETags, `_headers`, `_redirects`, `ASSETS`."""

    def __init__(self, config: AssetsConfig) -> None:
        self.config = config
        self.root = config.directory
        self.run_worker_first = config.run_worker_first
        self._worker_routes = _route_patterns(config.run_worker_first)
        self.rules = AssetRules(self.root, config.html_handling)

    def worker_first(self, request: Request) -> bool:
        """Whether the worker runs before the assets for this request (`run_worker_first`)."""
        if self._worker_routes is None:
            return bool(self.run_worker_first)
        include, exclude = self._worker_routes
        path = urlsplit(request.url).path
        return include.fullmatch(path) is not None and (exclude is None or exclude.fullmatch(path) is None)

    def reload(self) -> None:
        """Parse `_headers` and `_redirects` again on the next request (they are also re-read when they change)."""
        self.rules.reload()

    def _file(self, relative: str) -> Path | None:
        if "\0" in relative:  # no file name holds a NUL; the OS would refuse it with ValueError
            return None
        try:
            candidate = (self.root / relative).resolve()
            found = candidate.is_file()
        except OSError:  # a name longer than the file system allows: there is no such asset
            return None
        if found and self.root in candidate.parents and str(candidate.relative_to(self.root)) not in IGNORED_FILES:
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
        """The asset (or `_redirects`) response for this request, or None to let the worker answer."""
        rules = self.rules.current()
        response = self._match(request, rules)
        if response is not None:
            apply_headers(rules.headers, request.url, response.headers)
        return response

    def serve(self, request: Request) -> Response:
        """Serve or apply `not_found_handling` (the `env.ASSETS.fetch` behaviour)."""
        rules = self.rules.current()
        response = self._match(request, rules)
        if response is None:
            response = self._not_found(urlsplit(request.url).path, request)
        apply_headers(rules.headers, request.url, response.headers)
        return response

    def _match(self, request: Request, rules: AssetRules) -> Response | None:
        parts = urlsplit(request.url)
        path, proxied = parts.path, False
        # _redirects comes before any asset lookup: a rule wins even where a file exists at that path.
        hit = rules.redirects.match(path)
        if hit is not None:
            rule, target = hit
            if rule.status != 200:
                return Response(None, status=rule.status, headers={"location": _location(request.url, target)})
            path, proxied = urlsplit(urljoin(request.url, target)).path, True
        file, redirect = self._resolve(path)
        if redirect is not None:
            location = redirect + ("?" + parts.query if parts.query else "")
            return Response(None, status=307, headers={"location": location})
        if file is not None:
            return self._respond(file, request)
        # A 200 rule's target is answered by the assets even when missing: the worker never sees it.
        return self._not_found(path, request) if proxied else None

    def _not_found(self, path: str, request: Request) -> Response:
        mode = self.config.not_found_handling
        if mode == "single-page-application":
            index = self._file("index.html")
            if index:
                return self._respond(index, request)
        elif mode == "404-page":
            parts = unquote(path).strip("/").split("/")
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


def _location(request_url: str, target: str) -> str:
    """A `_redirects` Location: path-only on the same origin; the request's query unless the target has one."""
    dest, req = urlsplit(urljoin(request_url, target)), urlsplit(request_url)
    query = dest.query or req.query
    if (dest.scheme, dest.netloc) == (req.scheme, req.netloc):
        return dest.path + ("?" + query if query else "") + ("#" + dest.fragment if dest.fragment else "")
    return urlunsplit((dest.scheme, dest.netloc, dest.path, query, dest.fragment))


def _route_patterns(rules: bool | tuple[str, ...]) -> tuple[re.Pattern, re.Pattern | None] | None:
    """`run_worker_first` route patterns as (include, exclude) regexes; `*` matches anything, `!` negates."""
    if isinstance(rules, bool):
        return None

    def compile_(patterns: list[str]) -> re.Pattern | None:
        if not patterns:
            return None
        return re.compile("|".join("(?:" + ".*".join(map(re.escape, p.split("*"))) + ")" for p in patterns))

    include = compile_([r for r in rules if not r.startswith("!")]) or re.compile(r"(?!)")
    return include, compile_([r[1:] for r in rules if r.startswith("!")])
