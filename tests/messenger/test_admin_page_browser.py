"""The admin page in a real headless Chromium against `cfemu dev`: the charts come from the worker's
stats endpoint, which queries the dev server's own Analytics Engine SQL API (the default URL)."""

from __future__ import annotations

import json
import shutil
import urllib.request

import pytest

from messenger_support import ROOT

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine (apt-get install chromium)"),
]
ADMIN = "browser-admin-token-0123456789abcdef"


def _post(url: str, body: dict) -> int:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=20) as resp:
            return resp.status
    except urllib.error.HTTPError as error:
        return error.code


async def test_the_admin_page_draws_hourly_charts_from_analytics(tmp_path, dev_server):
    from playwright.async_api import async_playwright

    server = dev_server(ROOT / "wrangler.toml", "--persist-to", str(tmp_path / "state"), "--no-live-reload",
                        "--var", f"ADMIN_TOKEN:{ADMIN}", cwd=ROOT)
    assert _post(server.url + "/api/auth/login", {"username": "alice", "password": "alice-demo"}) == 200
    assert _post(server.url + "/api/auth/login", {"username": "bob", "password": "bob-demo"}) == 200
    assert _post(server.url + "/api/auth/login", {"username": "bob", "password": "not-bobs"}) == 401
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = await (await browser.new_context()).new_page()
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        await page.goto(server.url + "/admin.html")
        await page.fill("#admin-token", "wrong-token")
        await page.click("#admin-load")
        await page.wait_for_selector("#admin-error:has-text('not the admin token')")
        errors.clear()  # the browser logs the 403 itself
        await page.fill("#admin-token", ADMIN)
        await page.click("#admin-load")
        await page.wait_for_selector(".chart[data-series='logins'] h2")
        assert await page.locator(".chart").count() == 5
        title = await page.text_content(".chart[data-series='logins'] h2")
        assert title.startswith("Sign-ins: 2 ")
        assert (await page.text_content(".chart[data-series='loginFailures'] h2")).startswith("Failed sign-ins: 1 ")
        counts = await page.eval_on_selector_all(".chart[data-series='logins'] rect.bar",
                                                 "bars => bars.map(b => Number(b.dataset.count))")
        assert len(counts) == 24 and counts[-1] == 2
        assert await page.text_content("#admin-error") == ""
        assert errors == []
        await browser.close()


async def test_the_audit_download_follows_a_truncated_export_to_the_end(tmp_path, dev_server):
    """With the export cut at 3 records per call, the page asks again from x-audit-next-from and
    downloads every record once."""
    from playwright.async_api import async_playwright

    server = dev_server(ROOT / "wrangler.toml", "--persist-to", str(tmp_path / "state"), "--no-live-reload",
                        "--var", f"ADMIN_TOKEN:{ADMIN}", "--var", "AUDIT_EXPORT_MAX_RECORDS:3", cwd=ROOT)
    for user in ("alice", "bob", "carol", "dave"):
        assert _post(server.url + "/api/auth/login", {"username": user, "password": f"{user}-demo"}) == 200
    assert _post(server.url + "/api/auth/login", {"username": "bob", "password": "not-bobs"}) == 401
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = await (await browser.new_context(accept_downloads=True)).new_page()
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        exports = []
        page.on("response", lambda r: exports.append(r) if "/api/admin/audit" in r.url else None)
        await page.goto(server.url + "/admin.html")
        await page.fill("#admin-token", ADMIN)
        async with page.expect_download() as download_info:
            await page.click("#admin-audit")
        download = await download_info.value
        records = [json.loads(line) for line in open(await download.path()).read().splitlines()]
        await browser.close()
    assert len(exports) >= 3  # five sign-ins and the exports' own records, three per call
    assert all(r.headers.get("x-audit-truncated") == "true" for r in exports[:-1])
    assert "x-audit-next-from" not in exports[-1].headers
    keys = [json.dumps(r, sort_keys=True) for r in records]
    assert len(keys) == len(set(keys))  # nothing twice, though each part repeats its boundary millisecond
    sign_ins = [r for r in records if r["event"] == "sign_in"]
    assert sorted(r["outcome"] for r in sign_ins) == ["failure"] + ["success"] * 4
    assert [r["ts"] for r in records] == sorted(r["ts"] for r in records)
    assert errors == []
