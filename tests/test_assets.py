"""Static assets from [assets]: served before the worker, html_handling, not_found_handling, ETags, ASSETS."""

from __future__ import annotations

import pytest

from cfemu.testing import Runtime

WORKER = '''
from workers import Response, WorkerEntrypoint

class Default(WorkerEntrypoint):
    async def fetch(self, request):
        if request.path.startswith("/via-binding/"):
            return await self.env.ASSETS.fetch("http://assets" + request.path[len("/via-binding"):])
        return Response("from the worker: " + request.path, status=200)
'''

FILES = {
    "index.html": "<h1>home</h1>",
    "about.html": "<h1>about</h1>",
    "docs/index.html": "<h1>docs</h1>",
    "docs/404.html": "docs missing",
    "404.html": "top missing",
    "app.js": "console.log(1)",
    "data.bin": "\x00\x01",
    "sp ace.txt": "spaced",
}


@pytest.fixture
def site(tmp_path, write_worker):
    def make(assets_toml: str = "") -> Runtime:
        public = tmp_path / "public"
        for rel, text in FILES.items():
            (public / rel).parent.mkdir(parents=True, exist_ok=True)
            (public / rel).write_text(text)
        (tmp_path / "secret.txt").write_text("outside the asset directory")
        config = write_worker(tmp_path, WORKER, '[assets]\ndirectory = "public"\nbinding = "ASSETS"\n' + assets_toml)
        return Runtime.from_config(config)
    return make


async def _get(rt, path, **kw):
    resp = await rt.fetch(path, **kw)
    return resp.status, resp.headers.get("location"), (await resp.text()) if resp.body is not None else None


async def test_assets_before_the_worker_with_auto_trailing_slash(site):
    async with site() as rt:
        assert await _get(rt, "/") == (200, None, "<h1>home</h1>")
        assert await _get(rt, "/about") == (200, None, "<h1>about</h1>")
        assert await _get(rt, "/about.html") == (307, "/about", None)
        assert await _get(rt, "/index.html") == (307, "/", None)
        assert await _get(rt, "/docs/") == (200, None, "<h1>docs</h1>")
        assert await _get(rt, "/docs") == (307, "/docs/", None)
        assert await _get(rt, "/docs/index.html") == (307, "/docs/", None)
        assert await _get(rt, "/sp%20ace.txt") == (200, None, "spaced")
        assert await _get(rt, "/nope") == (200, None, "from the worker: /nope")
        # only GET and HEAD go to assets first
        assert await _get(rt, "/about", method="POST", body="x") == (200, None, "from the worker: /about")


async def test_content_types_etags_and_head(site):
    async with site() as rt:
        resp = await rt.fetch("/app.js")
        assert resp.headers.get("content-type") == "text/javascript; charset=utf-8" or \
            resp.headers.get("content-type") == "application/javascript; charset=utf-8"
        etag = resp.headers.get("etag")
        assert etag.startswith('"') and etag.endswith('"')
        assert (await rt.fetch("/data.bin")).headers.get("content-type") == "application/octet-stream"
        again = await rt.fetch("/app.js", headers={"if-none-match": etag})
        assert again.status == 304 and again.body is None
        head = await rt.fetch("/app.js", method="HEAD")
        assert head.status == 200 and head.body is None and head.headers.get("etag") == etag


@pytest.mark.parametrize("path", ["/../secret.txt", "/%2e%2e/secret.txt", "/docs/../../secret.txt", "/..%2fsecret.txt"])
async def test_no_path_escapes_the_directory(site, path):
    async with site() as rt:
        status, _, body = await _get(rt, path)
        assert "outside the asset directory" not in (body or "")


async def test_force_and_drop_trailing_slash(site):
    async with site('html_handling = "force-trailing-slash"\n') as rt:
        assert await _get(rt, "/about") == (307, "/about/", None)
        assert await _get(rt, "/about/") == (200, None, "<h1>about</h1>")
        assert await _get(rt, "/docs/") == (200, None, "<h1>docs</h1>")
    async with site('html_handling = "drop-trailing-slash"\n') as rt:
        assert await _get(rt, "/docs") == (200, None, "<h1>docs</h1>")
        assert await _get(rt, "/docs/") == (307, "/docs", None)
        assert await _get(rt, "/about") == (200, None, "<h1>about</h1>")
    async with site('html_handling = "none"\n') as rt:
        assert await _get(rt, "/about.html") == (200, None, "<h1>about</h1>")
        assert await _get(rt, "/about") == (200, None, "from the worker: /about")


async def test_assets_binding_and_not_found_handling(site):
    async with site() as rt:
        assert await _get(rt, "/via-binding/about") == (200, None, "<h1>about</h1>")
        assert await _get(rt, "/via-binding/missing") == (404, None, "Not Found")
    async with site('not_found_handling = "404-page"\n') as rt:
        assert await _get(rt, "/via-binding/docs/deep/missing") == (404, None, "docs missing")
        assert await _get(rt, "/via-binding/elsewhere") == (404, None, "top missing")
    async with site('not_found_handling = "single-page-application"\n') as rt:
        assert await _get(rt, "/via-binding/some/route") == (200, None, "<h1>home</h1>")


async def test_run_worker_first(site):
    async with site("run_worker_first = true\n") as rt:
        assert await _get(rt, "/about") == (200, None, "from the worker: /about")
        assert await _get(rt, "/via-binding/about") == (200, None, "<h1>about</h1>")


async def test_run_worker_first_route_patterns(site):
    """A list runs the worker first only where a pattern matches and no `!` pattern excludes it."""
    async with site('run_worker_first = ["/docs/*", "/about", "!/docs/deep/*"]\n') as rt:
        assert await _get(rt, "/docs/") == (200, None, "from the worker: /docs/")
        assert await _get(rt, "/docs/index.html") == (200, None, "from the worker: /docs/index.html")
        assert await _get(rt, "/about") == (200, None, "from the worker: /about")
        assert await _get(rt, "/about.html") == (307, "/about", None)  # not listed: assets first
        assert await _get(rt, "/docs/deep/x") == (200, None, "from the worker: /docs/deep/x")  # no asset: worker
        assert await _get(rt, "/") == (200, None, "<h1>home</h1>")
        assert await _get(rt, "/app.js") == (200, None, "console.log(1)")


async def test_run_worker_first_patterns_are_checked(tmp_path, write_worker):
    from cfemu.config import ConfigError, load_config

    (tmp_path / "public").mkdir()
    config = write_worker(tmp_path, WORKER, '[assets]\ndirectory = "public"\nrun_worker_first = ["api/*"]\n')
    with pytest.raises(ConfigError, match=r"assets\.run_worker_first\[0\].*starting with '/' or '!/'"):
        load_config(config)


async def test_assets_only_worker(tmp_path):
    (tmp_path / "public").mkdir()
    (tmp_path / "public" / "index.html").write_text("static only")
    (tmp_path / "worker.py").write_text("from workers import WorkerEntrypoint\nclass Default(WorkerEntrypoint):\n    pass\n")
    (tmp_path / "wrangler.toml").write_text('name = "s"\nmain = "worker.py"\n[assets]\ndirectory = "public"\n')
    async with Runtime.from_config(tmp_path) as rt:
        assert await _get(rt, "/") == (200, None, "static only")
        assert await _get(rt, "/missing") == (404, None, "Not Found")


@pytest.mark.parametrize("path", ["/a%00b", "/%00", "/" + "u" * 5000, "/docs/" + "x" * 300 + "/y"])
async def test_odd_paths_fall_through_to_the_worker(site, path):
    # Was: a NUL byte raised ValueError and an over-long name raised OSError out of the asset lookup.
    async with site() as rt:
        status, _, _ = await _get(rt, path)
        assert status != 500


async def test_html_handling_redirects_keep_the_query(site):
    # Was: /about.html?x=1 redirected to /about and lost ?x=1 (Cloudflare appends the request's query).
    async with site() as rt:
        assert await _get(rt, "/about.html?x=1&y=2") == (307, "/about?x=1&y=2", None)
        assert await _get(rt, "/docs?x=1") == (307, "/docs/?x=1", None)
