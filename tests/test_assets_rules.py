"""`_headers` and `_redirects` in the assets directory: syntax, precedence, limits, reload, `cfemu dev`."""

from __future__ import annotations

import logging
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cfemu import assets_rules as ar
from cfemu.testing import Runtime

WORKER = '''
from workers import Response, WorkerEntrypoint

class Default(WorkerEntrypoint):
    async def fetch(self, request):
        if request.path.startswith("/via-binding/"):
            return await self.env.ASSETS.fetch("http://assets" + request.path[len("/via-binding"):])
        return Response("from the worker: " + request.path, headers={"x-from": "worker"})
'''

FILES = {
    "index.html": "<h1>home</h1>",
    "about.html": "<h1>about</h1>",
    "docs/index.html": "<h1>docs</h1>",
    "blog/post.html": "<h1>post</h1>",
    "app.js": "console.log(1)",
    "static/a.css": "a{}",
    "old.html": "<h1>old</h1>",
}


@pytest.fixture
def site(tmp_path, write_worker):
    def make(headers: str | None = None, redirects: str | None = None, assets_toml: str = "") -> Runtime:
        public = tmp_path / "public"
        for rel, text in FILES.items():
            (public / rel).parent.mkdir(parents=True, exist_ok=True)
            (public / rel).write_text(text)
        for name, text in (("_headers", headers), ("_redirects", redirects)):
            if text is not None:
                (public / name).write_text(text)
        config = write_worker(tmp_path, WORKER, '[assets]\ndirectory = "public"\nbinding = "ASSETS"\n' + assets_toml)
        return Runtime.from_config(config)
    return make


async def _get(rt, path, **kw):
    resp = await rt.fetch(path, **kw)
    body = (await resp.text()) if resp.body is not None else None
    return resp, body


# -- _headers through the runtime -------------------------------------------------------------------

HEADERS = """\
# comment lines and blank lines are ignored

/*
  X-Frame-Options: DENY
  X-Robots-Tag: all
/static/*
  Cache-Control: public, max-age=31536000, immutable
  X-Splat: got-:splat
/blog/:slug
  X-Slug: :slug
  X-Robots-Tag: noindex
  ! X-Frame-Options
/app.js
  ! Cache-Control
  Link: </a.css>; rel=preload
  Link: </b.css>; rel=preload
"""


async def test_headers_set_placeholders_splat_unset_and_append(site):
    async with site(headers=HEADERS) as rt:
        resp, body = await _get(rt, "/")
        assert body == "<h1>home</h1>" and resp.headers.get("x-frame-options") == "DENY"
        assert resp.headers.get("cache-control") == "public, max-age=0, must-revalidate"  # default kept
        resp, _ = await _get(rt, "/static/a.css")
        # a rule's header replaces the default one; the splat fills :splat
        assert resp.headers.get("cache-control") == "public, max-age=31536000, immutable"
        assert resp.headers.get("x-splat") == "got-a.css"
        resp, body = await _get(rt, "/blog/post")
        assert body == "<h1>post</h1>"
        assert resp.headers.get("x-slug") == "post"
        assert "x-frame-options" not in resp.headers  # `! Name` removes what an earlier rule set
        # a name set by two matching rules: the later one appends
        assert resp.headers.get("x-robots-tag") == "all, noindex"
        resp, _ = await _get(rt, "/app.js")
        assert "cache-control" not in resp.headers
        assert resp.headers.get("link") == "</a.css>; rel=preload, </b.css>; rel=preload"
        assert resp.headers.get("etag") and resp.headers.get("content-type").endswith("charset=utf-8")


async def test_headers_apply_to_asset_responses_only(site):
    async with site(headers=HEADERS) as rt:
        resp, body = await _get(rt, "/not-an-asset")
        assert body == "from the worker: /not-an-asset"
        assert "x-frame-options" not in resp.headers and resp.headers.get("x-from") == "worker"
        # ...but through the binding the asset response (here a 404) gets them
        resp, body = await _get(rt, "/via-binding/missing")
        assert resp.status == 404 and resp.headers.get("x-frame-options") == "DENY"


async def test_headers_on_304_head_redirects_and_spa_fallback(site):
    rules = "/*\n  X-All: yes\n/app/*\n  X-App: :splat\n"
    async with site(headers=rules, assets_toml='not_found_handling = "single-page-application"\n') as rt:
        resp, _ = await _get(rt, "/app.js")
        again, _ = await _get(rt, "/app.js", headers={"if-none-match": resp.headers.get("etag")})
        assert again.status == 304 and again.headers.get("x-all") == "yes"
        head, _ = await _get(rt, "/app.js", method="HEAD")
        assert head.body is None and head.headers.get("x-all") == "yes"
        redirect, _ = await _get(rt, "/about.html")
        assert redirect.status == 307 and redirect.headers.get("x-all") == "yes"
        # The SPA fallback is matched against the URL asked for, not /index.html.
        spa, body = await _get(rt, "/via-binding/app/settings/profile")
        assert body == "<h1>home</h1>" and spa.headers.get("x-app") == "settings/profile"


async def test_absolute_url_header_rules_match_the_host(site):
    rules = "https://:sub.example.com/*\n  X-Sub: :sub\nhttps://other.example.com/*\n  X-Other: yes\n"
    async with site(headers=rules) as rt:
        resp = await rt.fetch("http://shop.example.com:8787/about")
        assert resp.headers.get("x-sub") == "shop" and "x-other" not in resp.headers


async def test_headers_and_redirects_files_are_never_served(site):
    async with site(headers="/*\n  X-A: b\n", redirects="/x /y\n") as rt:
        for path in ("/_headers", "/_redirects", "/via-binding/_headers", "/via-binding/_redirects"):
            resp, body = await _get(rt, path)
            assert "X-A" not in (body or "") and "/x /y" not in (body or "")


async def test_malformed_header_lines_warn_with_file_and_line(site, caplog):
    text = "X-Before: path\n/about\n  X-Good: 1\n  Bad Name: 2\n  NoColon\n  X-Empty:\n/empty\n/app.js\n  X-More: 3\n"
    caplog.set_level(logging.WARNING, logger="cfemu.assets")
    async with site(headers=text) as rt:
        resp, _ = await _get(rt, "/about")
        assert resp.headers.get("x-good") == "1" and "bad name" not in resp.headers
        resp, _ = await _get(rt, "/app.js")
        assert resp.headers.get("x-more") == "3"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(w.endswith("_headers:1: Path should come before header (x-before: path); skipped: X-Before: path")
               for w in warnings), warnings
    assert any("_headers:4: Header name cannot include spaces" in w for w in warnings)
    assert any("_headers:5: Expected a colon-separated header pair (e.g. name: value)" in w for w in warnings)
    assert any("_headers:6: No header value specified" in w for w in warnings)
    assert any("_headers:7: No headers specified" in w for w in warnings)


# -- _redirects through the runtime -----------------------------------------------------------------

REDIRECTS = """\
/home / 301
/old /about            # inline comment
/about /docs/ 308
/ext https://example.com/landing?src=cf
/moved/* /new/:splat 301
/news/:year/:month /archive/:year-:month.html 303
/pretty/:slug /blog/:slug 200
/ghost /nothing-here 200
/old2 /about
"""


async def test_redirect_statuses_static_and_dynamic(site):
    async with site(redirects=REDIRECTS) as rt:
        resp, _ = await _get(rt, "/home")
        assert (resp.status, resp.headers.get("location")) == (301, "/")
        resp, _ = await _get(rt, "/old?x=1")  # default 302; the request's query carries over
        assert (resp.status, resp.headers.get("location")) == (302, "/about?x=1")
        resp, _ = await _get(rt, "/ext?x=1")  # the target's own query wins
        assert (resp.status, resp.headers.get("location")) == (302, "https://example.com/landing?src=cf")
        resp, _ = await _get(rt, "/moved/a/b/c")
        assert (resp.status, resp.headers.get("location")) == (301, "/new/a/b/c")
        resp, _ = await _get(rt, "/moved/")  # empty splat: no double slash
        assert resp.headers.get("location") == "/new/"
        resp, _ = await _get(rt, "/news/2026/11")
        assert (resp.status, resp.headers.get("location")) == (303, "/archive/2026-11.html")
        resp, body = await _get(rt, "/news/2026/11/extra")  # a placeholder is one segment
        assert resp.status == 200 and body.startswith("from the worker")


async def test_redirects_win_over_existing_assets(site):
    async with site(redirects=REDIRECTS) as rt:
        resp, _ = await _get(rt, "/about")
        assert (resp.status, resp.headers.get("location")) == (308, "/docs/")


async def test_proxy_200_serves_another_asset_at_the_same_url(site):
    async with site(redirects=REDIRECTS, headers="/pretty/*\n  X-Pretty: yes\n") as rt:
        resp, body = await _get(rt, "/pretty/post")
        assert (resp.status, body) == (200, "<h1>post</h1>") and "location" not in resp.headers
        assert resp.headers.get("x-pretty") == "yes"  # headers match the URL asked for
        # A proxied target that does not exist is a 404 from the assets; the worker is not asked.
        resp, body = await _get(rt, "/ghost")
        assert (resp.status, body) == (404, "Not Found")
    async with site(redirects=REDIRECTS, assets_toml='not_found_handling = "single-page-application"\n') as rt:
        resp, body = await _get(rt, "/ghost")
        assert (resp.status, body) == (200, "<h1>home</h1>")


async def test_static_rules_before_dynamic_and_first_match_wins(site):
    text = "/a/* /first 301\n/a/* /dup 302\n/a/:x /second 301\n/a/exact /static 301\n"
    async with site(redirects=text) as rt:
        resp, _ = await _get(rt, "/a/exact")  # after a dynamic rule, a plain path is matched in order
        assert resp.headers.get("location") == "/first"
    text = "/a/exact /static 301\n/a/* /first 301\n"
    async with site(redirects=text) as rt:
        resp, _ = await _get(rt, "/a/exact")
        assert resp.headers.get("location") == "/static"
        resp, _ = await _get(rt, "/a/other")
        assert resp.headers.get("location") == "/first"


async def test_redirects_and_run_worker_first(site):
    async with site(redirects=REDIRECTS, assets_toml="run_worker_first = true\n") as rt:
        resp, body = await _get(rt, "/home")
        assert body == "from the worker: /home"
        resp, _ = await _get(rt, "/via-binding/home")
        assert (resp.status, resp.headers.get("location")) == (301, "/")


async def test_proxy_to_html_follows_html_handling(site):
    async with site(redirects="/p /about.html 200\n/q /about 200\n") as rt:
        resp, _ = await _get(rt, "/p")  # the asset worker would strip .html from the proxied path
        assert (resp.status, resp.headers.get("location")) == (307, "/about")
        resp, body = await _get(rt, "/q")
        assert (resp.status, body) == (200, "<h1>about</h1>")
    async with site(redirects="/p /about.html 200\n", assets_toml='html_handling = "none"\n') as rt:
        resp, body = await _get(rt, "/p")
        assert (resp.status, body) == (200, "<h1>about</h1>")


async def test_malformed_redirect_lines_warn_and_are_skipped(site, caplog):
    text = ("/a\n/b /c 404\nhttps://example.com/x /y\n/d http://insecure.example.com/\n/* /index.html 200\n"
            "/e https://example.com/ 200\n/f /g\n/f /h\n/ok /fine 301\n")
    caplog.set_level(logging.WARNING, logger="cfemu.assets")
    async with site(redirects=text) as rt:
        resp, _ = await _get(rt, "/ok")
        assert (resp.status, resp.headers.get("location")) == (301, "/fine")
        resp, _ = await _get(rt, "/f")
        assert resp.headers.get("location") == "/g"
        resp, body = await _get(rt, "/b")
        assert body == "from the worker: /b"
    w = "\n".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "_redirects:1: Expected exactly 2 or 3 whitespace-separated tokens. Got 1.; skipped: /a" in w
    assert "_redirects:2: Valid status codes are 200, 301, 302 (default), 303, 307, or 308. Got 404." in w
    assert "_redirects:3: Only relative URLs are allowed. Skipping absolute URL https://example.com/x." in w
    assert "_redirects:4: " + ar.RELATIVE_OR_HTTPS in w
    assert "_redirects:5: Infinite loop detected in this rule" in w
    assert "_redirects:6: Proxy (200) redirects can only point to relative paths. Got https://example.com/" in w
    assert "_redirects:8: Ignoring duplicate rule for path /f." in w


async def test_rules_reload_when_the_files_change(site, tmp_path):
    async with site(headers="/*\n  X-V: 1\n") as rt:
        resp, _ = await _get(rt, "/")
        assert resp.headers.get("x-v") == "1"
        _rewrite(tmp_path / "public" / "_headers", "/*\n  X-V: 2\n")
        _rewrite(tmp_path / "public" / "_redirects", "/ /about 302\n")
        resp, _ = await _get(rt, "/about")
        assert resp.headers.get("x-v") == "2"
        resp, _ = await _get(rt, "/")
        assert (resp.status, resp.headers.get("location")) == (302, "/about")
        (tmp_path / "public" / "_headers").unlink()
        (tmp_path / "public" / "_redirects").unlink()
        resp, _ = await _get(rt, "/")
        assert resp.status == 200 and "x-v" not in resp.headers


def _rewrite(path: Path, text: str) -> None:
    """Write and move the mtime on (a same-size rewrite within one clock tick must still be seen)."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text)
    os.utime(path, ns=(before + 10**9, before + 10**9))


# -- parser units: exact texts and limits -------------------------------------------------------------

def test_header_limits():
    text = "".join(f"/r{i}\n  X-N: {i}\n" for i in range(101))
    rules, invalid = ar.parse_headers(text)
    assert len(rules) == 100 and rules[-1].path == "/r99"
    assert [i.message for i in invalid] == ["Maximum number of rules supported is 100. Skipping remaining 3 lines of file."]
    long = "/x\n  X-Long: " + "v" * 2000 + "\n  X-Ok: 1\n"
    rules, invalid = ar.parse_headers(long)
    assert rules[0].set == {"x-ok": "1"}
    assert invalid[0].message == "Ignoring line 2 as it exceeds the maximum allowed length of 2000."
    rules, invalid = ar.parse_headers("https://example.com:8443/*\n  X: 1\n/a/*/b/*\n  X: 1\n")
    # the headers under a rejected path are reported too (they have no path to belong to)
    assert [i.message for i in invalid] == ["Specifying ports is not supported. Skipping absolute URL https://example.com:8443/*.",
                                            "Path should come before header (x: 1)", ar.ONE_WILDCARD,
                                            "Path should come before header (x: 1)"]


def test_a_wildcard_and_a_splat_placeholder_do_not_mix():
    rules, invalid = ar.parse_headers("/a/*/:splat\n  X: 1\n/b/:id/:id\n  X: 1\n")
    assert not rules
    assert [i.message for i in invalid][::2] == [
        "Cannot combine wildcard (*) with :splat placeholder. The wildcard already captures as :splat.",
        "Placeholder :id is used more than once in this rule."]
    redirects, invalid = ar.parse_redirects("/a/*/:splat /x\n/ok/* /y\n")
    assert [r.source for r in redirects.dynamic] == ["/ok/*"] and invalid[0].line_number == 1


def test_redirect_limits():
    static = "".join(f"/s{i} /t\n" for i in range(2001))
    redirects, invalid = ar.parse_redirects(static)
    assert len(redirects.static) == 2000
    assert [i.message for i in invalid] == ["Maximum number of static rules supported is 2000. Skipping line."]
    dynamic = "".join(f"/d{i}/* /t\n" for i in range(101)) + "/after /t\n"
    redirects, invalid = ar.parse_redirects(dynamic)
    assert len(redirects.dynamic) == 100 and not redirects.static
    assert [i.message for i in invalid] == ["Maximum number of dynamic rules supported is 100. Skipping remaining 3 lines of file."]
    redirects, invalid = ar.parse_redirects("/a /" + "b" * 1000 + "\n")
    assert invalid[0].message == "Ignoring line 1 as it exceeds the maximum allowed length of 1000."


def test_redirect_source_normalisation_and_fragments():
    redirects, invalid = ar.parse_redirects("no-slash /t\n/q?x=1 /t2\n/frag /t3#top 301\n/ /index 301\n")
    assert set(redirects.static) == {"/no-slash", "/q", "/frag"}
    assert redirects.static["/frag"].to == "/t3#top"
    assert [i.line_number for i in invalid] == [4]  # `/ /index` loops under html_handling
    redirects, invalid = ar.parse_redirects("/ /index 301\n", html_handling="none")
    assert not invalid and "/" in redirects.static


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(list("/*:ab !#\n\t-.?=&%é\x00") + ["https://", ": ", ":name", "200"]), max_size=80))
def test_parsers_never_raise(pieces):
    text = "".join(pieces)
    rules, _ = ar.parse_headers(text)
    for rule in rules:
        ar.apply_headers(rules, "http://h.example/" + "a/b", __import__("cfemu.http").http.Headers())
    redirects, _ = ar.parse_redirects(text)
    redirects.match("/a/b")


# -- over HTTP with `cfemu dev` -------------------------------------------------------------------------

def _http(url: str) -> tuple[int, dict[str, str], str]:
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):  # noqa: ANN002, ANN003
            return None
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(url, timeout=10) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read().decode()


def test_cfemu_dev_serves_headers_and_redirects(tmp_path, write_worker, dev_server):
    config = write_worker(tmp_path, WORKER, '[assets]\ndirectory = "public"\nbinding = "ASSETS"\n',
                          files={"public/index.html": "<h1>home</h1>", "public/_headers": "/*\n  X-Dev: on\n",
                                 "public/_redirects": "/go /index.html 301\n/bad line here too\n"})
    server = dev_server(config)
    status, headers, body = _http(server.url + "/")
    assert (status, headers.get("x-dev"), body) == (200, "on", "<h1>home</h1>")
    status, headers, _ = _http(server.url + "/go")
    assert (status, headers.get("location")) == (301, "/index.html")
    status, headers, body = _http(server.url + "/worker-route")
    assert body == "from the worker: /worker-route" and "x-dev" not in headers
    assert _http(server.url + "/_headers")[2] != "/*\n  X-Dev: on\n"
    server.wait_for(r"_redirects:2: Expected exactly 2 or 3 whitespace-separated tokens\. Got 4\.")


def test_cfemu_dev_messenger_pages_carry_the_csp(dev_server, tmp_path):
    root = Path(__file__).resolve().parent.parent
    server = dev_server(root / "wrangler.toml", "--persist-to", str(tmp_path / "state"))
    status, headers, body = _http(server.url + "/")
    assert status == 200 and "<html" in body.lower()
    assert "frame-ancestors 'none'" in headers.get("content-security-policy", "")
    assert headers.get("x-content-type-options") == "nosniff"


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine (apt-get install chromium)")
async def test_messenger_pages_work_under_their_csp_in_a_browser(dev_server, tmp_path):
    """The chat client (signed in, sockets open) and the admin page load with no CSP violation or console error."""
    from playwright.async_api import async_playwright

    root = Path(__file__).resolve().parent.parent
    server = dev_server(root / "wrangler.toml", "--persist-to", str(tmp_path / "state"), "--no-live-reload", cwd=root)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            for path in ("/", "/admin"):
                page = await (await browser.new_context()).new_page()
                problems: list[str] = []
                page.on("pageerror", lambda e: problems.append(str(e)))
                page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
                await page.add_init_script("document.addEventListener('securitypolicyviolation', e => "
                                           "console.error('CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI))")
                response = await page.goto(server.url + path)
                assert "script-src 'self'" in (await response.all_headers()).get("content-security-policy", "")
                # the stylesheet is applied (a blocked one leaves no rules)
                assert await page.evaluate(
                    "[...document.styleSheets].some(s => { try { return s.cssRules.length > 0 } catch { return false } })")
                if path == "/":
                    await page.fill("input[name=username]", "alice")
                    await page.fill("input[name=password]", "alice-demo")
                    await page.click("#signin-submit")
                    await page.wait_for_selector("#app:not([hidden])")
                    await page.wait_for_selector(".group .buddy")  # presence socket connected
                    await page.click(".buddy:has-text('General')")
                    await page.locator(".chat[data-room='general']").wait_for()
                await page.wait_for_timeout(300)
                assert problems == [], (path, problems)
        finally:
            await browser.close()


def test_rule_paths_are_normalised_like_urls():
    # A browser asks for /caf%C3%A9 and /b; the rules are written as /café and /a/../b.
    redirects, invalid = ar.parse_redirects("/café /x 301\n/a/../b /y 301\n")
    assert not invalid and set(redirects.static) == {"/caf%C3%A9", "/b"}
    rules, _ = ar.parse_headers("\ufeff/café\n  X-A: 1\n")  # a byte-order mark does not hide the first path
    assert [r.path for r in rules] == ["/caf%C3%A9"]


async def test_redirect_to_another_origin_root_and_query(site):
    async with site(redirects="/out https://example.com 301\n") as rt:
        resp, _ = await _get(rt, "/out?q=1")
        assert resp.headers.get("location") == "https://example.com/?q=1"


async def test_non_ascii_rules_match_encoded_and_raw_request_paths(site):
    # Browsers send /caf%C3%A9; `cfemu dev` hands workers the decoded /café (see report): both match.
    async with site(redirects="/café /about 301\n", headers="/*\n  X-Path: :splat\n") as rt:
        for path in ("/caf%C3%A9", "/café"):
            resp, _ = await _get(rt, path)
            assert (resp.status, resp.headers.get("location")) == (301, "/about"), path
            assert resp.headers.get("x-path") == "caf%C3%A9"  # :splat is the URL's (encoded) text
