"""The web client in a real headless Chromium against `cfemu dev`: two users chat, one comes back."""

from __future__ import annotations

import shutil

import pytest

from messenger_support import ROOT

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine (apt-get install chromium)"),
]


async def _sign_in(browser, url, user):
    page = await (await browser.new_context()).new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    await _sign_in_page(page, url, user)
    page.errors = errors
    return page


async def _sign_in_page(page, url, user):
    await page.goto(url)
    await page.fill("input[name=username]", user)
    await page.fill("input[name=password]", f"{user}-demo")
    await page.click("#signin-submit")
    await page.wait_for_selector("#app:not([hidden])")
    await page.wait_for_selector(".group .buddy")


async def _wait_until(page, condition, tries=50):
    """Polls `condition()` every 100 ms of page time (bounded: the assertions after it say what failed)."""
    for _ in range(tries):
        if condition():
            return
        await page.wait_for_timeout(100)


async def _assert_no_session_expired_dialog(tabs):
    for tab in tabs:
        assert await tab.locator("dialog#expired[open]").count() == 0, await tab.locator("#expired-reason").inner_text()


async def _open(page, title, room):
    await page.click(f".buddy:has-text('{title}')")
    win = page.locator(f".chat[data-room='{room}']")
    await win.wait_for()
    return win


async def test_two_users_chat_nudge_and_offline_delivery_in_a_browser(tmp_path, dev_server):
    from playwright.async_api import async_playwright

    server = dev_server(ROOT / "wrangler.toml", "--persist-to", str(tmp_path / "state"), "--no-live-reload", cwd=ROOT)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        alice = await _sign_in(browser, server.url, "alice")
        bob = await _sign_in(browser, server.url, "bob")
        # Bob appears online in Alice's buddy list.
        await alice.wait_for_selector("#buddy-groups .group:has-text('Online') .buddy:has-text('Bob')")

        a_general = await _open(alice, "General", "general")
        b_general = await _open(bob, "General", "general")
        await a_general.locator("textarea").fill("hello everyone (H)")
        await a_general.locator("textarea").press("Enter")
        await b_general.locator(".msg:has-text('hello everyone')").wait_for()
        assert await b_general.locator(".msg img.emo[alt='(H)']").count() == 1

        a_dm = await _open(alice, "Bob", "dm_ualice__ubob")
        b_dm = await _open(bob, "Alice", "dm_ualice__ubob")
        await a_dm.locator("textarea").fill("psst")
        await a_dm.locator("textarea").press("Enter")
        await b_dm.locator(".msg:has-text('psst')").wait_for()
        await a_dm.locator(".msg.mine .state:has-text('Read')").wait_for()  # receipts reach the sender
        await a_dm.locator("button:has-text('Nudge')").click()
        await bob.wait_for_selector(".chat.shake")

        # Bob leaves; Alice writes to him; Bob signs in again and the DM window opens with it.
        await bob.context.close()
        await alice.wait_for_selector("#buddy-groups .group:has-text('Offline') .buddy:has-text('Bob')", timeout=10_000)
        await a_dm.locator("textarea").fill("call me when you are back")
        await a_dm.locator("textarea").press("Enter")
        await a_dm.locator(".msg.mine:not(.pending):has-text('call me')").wait_for()
        bob2 = await _sign_in(browser, server.url, "bob")
        await bob2.locator(".chat .msg:has-text('call me when you are back')").wait_for(timeout=15_000)
        assert await bob2.locator(".chat .msg:has-text('call me when you are back')").count() == 1
        assert alice.errors == [] and bob2.errors == []

        # Signing out everywhere from one tab shows the session-expired dialog in the other.
        bob_tab2 = await _sign_in(browser, server.url, "bob")
        await bob2.click("#signout-all")
        await bob2.wait_for_selector("#signin:not([hidden])")
        await bob_tab2.wait_for_selector("dialog#expired[open]", timeout=10_000)
        assert "signed out" in await bob_tab2.text_content("#expired-reason")
        await browser.close()


async def test_the_client_refreshes_its_token_before_expiry_and_reauthenticates_its_sockets(tmp_path, dev_server):
    from playwright.async_api import async_playwright

    server = dev_server(ROOT / "wrangler.toml", "--persist-to", str(tmp_path / "state"), "--no-live-reload", cwd=ROOT)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = await (await browser.new_context()).new_page()
        await page.clock.install()
        frames: list[str] = []
        refreshed = []
        page.on("websocket", lambda ws: ws.on("framesent", lambda f: frames.append(f if isinstance(f, str) else f.get("payload", ""))))
        page.on("request", lambda r: refreshed.append(r.url) if r.url.endswith("/api/auth/refresh") else None)
        await page.goto(server.url)
        await page.fill("input[name=username]", "alice")
        await page.fill("input[name=password]", "alice-demo")
        await page.click("#signin-submit")
        await page.wait_for_selector(".group .buddy")
        await _open(page, "General", "general")
        auths_before = sum('"type":"auth"' in f for f in frames)
        await page.clock.run_for(19 * 60 * 1000 + 5000)  # the browser's clock: one minute before expiry
        await page.wait_for_function("() => JSON.parse(localStorage.getItem('cfm.session')).receivedAt > 0")
        for _ in range(50):
            if refreshed and sum('"type":"auth"' in f for f in frames) >= auths_before + 2:
                break
            await page.wait_for_timeout(100)
        assert refreshed, "no refresh request"
        assert sum('"type":"auth"' in f for f in frames) >= auths_before + 2  # presence + room re-authenticated
        await browser.close()


async def test_hostile_text_names_and_personal_messages_render_as_text(tmp_path, dev_server):
    """Message text, display names and personal messages never become markup in the web client."""
    import json as _json
    import urllib.request

    from playwright.async_api import async_playwright

    server = dev_server(ROOT / "wrangler.toml", "--persist-to", str(tmp_path / "state"), "--no-live-reload", cwd=ROOT)
    evil = '<img src=x onerror="window.__xss=1">'

    def call(method, path, body=None, token=None):
        req = urllib.request.Request(server.url + path, method=method, data=_json.dumps(body).encode() if body else None,
                                     headers={"content-type": "application/json",
                                              **({"authorization": f"Bearer {token}"} if token else {})})
        with urllib.request.urlopen(req) as resp:
            return _json.loads(resp.read())["data"]

    mallory = call("POST", "/api/auth/register", {"username": "mallory", "password": "mallory-pass",
                                                  "displayName": evil[:40]})
    call("PUT", "/api/me/status", {"message": evil + " (H)", "name": "<b>bold</b><script>window.__xss=2</script>"[:40]},
         mallory["accessToken"])
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = await (await browser.new_context()).new_page()
        await page.goto(server.url)
        await page.fill("input[name=username]", "mallory")
        await page.fill("input[name=password]", "mallory-pass")
        await page.click("#signin-submit")
        await page.wait_for_selector(".group .buddy")
        win = await _open(page, "General", "general")
        await win.locator("textarea").fill(evil + " <script>window.__xss=3</script> :)")
        await win.locator("textarea").press("Enter")
        await win.locator(".msg.mine:not(.pending)").wait_for()
        alice = await _sign_in(browser, server.url, "alice")
        a_general = await _open(alice, "General", "general")
        await a_general.locator(".msg:has-text('onerror')").wait_for()
        await alice.wait_for_selector(".buddy:has-text('<b>bold</b>')")
        for p in (page, alice):
            assert await p.evaluate("() => window.__xss") is None
            assert await p.locator("img[src='x']").count() == 0
            assert await p.locator("b:has-text('bold')").count() == 0
            assert await p.locator("#app script").count() == 0
        assert "<script>window.__xss=3</script>" in await a_general.locator(".msg:has-text('onerror')").inner_text()
        assert alice.errors == []
        await browser.close()


async def test_a_new_account_shows_up_in_open_buddy_lists_and_its_deletion_redacts_open_windows(tmp_path, dev_server):
    import json as _json
    import urllib.request

    from playwright.async_api import async_playwright

    server = dev_server(ROOT / "wrangler.toml", "--persist-to", str(tmp_path / "state"), "--no-live-reload", cwd=ROOT)

    def call(method, path, body=None, token=None):
        req = urllib.request.Request(server.url + path, method=method, data=_json.dumps(body).encode() if body else None,
                                     headers={"content-type": "application/json",
                                              **({"authorization": f"Bearer {token}"} if token else {})})
        with urllib.request.urlopen(req) as resp:
            return _json.loads(resp.read())["data"]

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        alice = await _sign_in(browser, server.url, "alice")
        a_general = await _open(alice, "General", "general")
        # Registered after Alice loaded her buddy list: it appears there when it comes online.
        newbie = call("POST", "/api/auth/register", {"username": "newbie", "password": "newbie-demo",
                                                      "displayName": "Newbie"})
        page = await _sign_in(browser, server.url, "newbie")
        await alice.wait_for_selector("#buddy-groups .group:has-text('Online') .buddy:has-text('Newbie')")
        n_general = await _open(page, "General", "general")
        await n_general.locator("textarea").fill("soon to be gone")
        await n_general.locator("textarea").press("Enter")
        await a_general.locator(".msg:has-text('soon to be gone')").wait_for()
        call("DELETE", "/api/me", {"password": "newbie-demo"}, token=newbie["accessToken"])
        await a_general.locator(".msg.deleted:has-text('(message deleted)')").wait_for()
        assert await a_general.locator(".msg:has-text('soon to be gone')").count() == 0
        await alice.wait_for_selector("#buddy-groups .buddy:has-text('Newbie')", state="detached")
        assert alice.errors == []
        await browser.close()


async def test_the_page_reports_its_web_vitals_once_when_hidden(tmp_path, dev_server):
    from playwright.async_api import async_playwright

    server = dev_server(ROOT / "wrangler.toml", "--persist-to", str(tmp_path / "state"), "--no-live-reload", cwd=ROOT)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = await _sign_in(browser, server.url, "alice")
        await _open(page, "General", "general")
        beacons = []
        page.on("request", lambda r: beacons.append(r) if r.url.endswith("/api/rum") else None)
        for _ in range(2):  # hidden twice: one report
            await page.evaluate("""() => {
                Object.defineProperty(document, "visibilityState", {value: "hidden", configurable: true});
                document.dispatchEvent(new Event("visibilitychange"));
            }""")
        await _wait_until(page, lambda: beacons)
        await page.wait_for_timeout(300)
        assert len(beacons) == 1
        assert "cookie" not in {k.lower() for k in (await beacons[0].all_headers())}
        response = await beacons[0].response()
        assert response is not None and response.status == 200  # a valid body: the server validates it
        recorded = (await response.json())["data"]["recorded"]
        assert "lcp" in recorded and set(recorded) <= {"lcp", "inp", "cls"}
        assert page.errors == []
        await browser.close()


async def test_two_tabs_sharing_a_session_refresh_without_tripping_reuse_detection(tmp_path, dev_server):
    """Tabs share the session in localStorage: only one may rotate the refresh token; the other adopts it."""
    from playwright.async_api import async_playwright

    server = dev_server(ROOT / "wrangler.toml", "--persist-to", str(tmp_path / "state"), "--no-live-reload", cwd=ROOT)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = await browser.new_context()
        await context.clock.install()
        tab1 = await context.new_page()
        refreshes = []
        context.on("request", lambda r: refreshes.append(r.url) if r.url.endswith("/api/auth/refresh") else None)
        await _sign_in_page(tab1, server.url, "alice")
        tab2 = await context.new_page()
        await tab2.goto(server.url)  # signed in from localStorage
        await tab2.wait_for_selector(".group .buddy")
        for _ in range(2):  # two refresh rounds
            await context.clock.run_for(19 * 60 * 1000 + 5000)
            await _wait_until(tab1, lambda: refreshes)
            await tab1.wait_for_timeout(500)
        await _assert_no_session_expired_dialog((tab1, tab2))
        token = await tab2.evaluate("() => JSON.parse(localStorage.getItem('cfm.session')).accessToken")
        me = await tab2.evaluate("async (t) => (await fetch('/api/me', {headers: {authorization: 'Bearer ' + t}})).status",
                                 token)
        assert me == 200 and refreshes
        await browser.close()


# A tab whose view of localStorage lags behind the other tabs' writes (Chromium keeps a per-renderer
# cache that catches up asynchronously): it sees only what it wrote itself, and no storage events.
_STALE_LOCAL_STORAGE = """
(() => {
  const own = new Map();
  const get = Storage.prototype.getItem, set = Storage.prototype.setItem;
  Storage.prototype.getItem = function (k) { if (!own.has(k)) own.set(k, get.call(this, k)); return own.get(k); };
  Storage.prototype.setItem = function (k, v) { own.set(k, String(v)); return set.call(this, k, v); };
  const add = window.addEventListener;
  window.addEventListener = function (type, ...rest) { if (type !== "storage") return add.call(this, type, ...rest); };
})();
"""


async def test_a_tab_with_a_stale_local_storage_view_adopts_the_rotated_token_instead_of_replaying(tmp_path, dev_server):
    """The refresh lock hands the rotated token over through storage every tab sees at once."""
    from playwright.async_api import async_playwright

    server = dev_server(ROOT / "wrangler.toml", "--persist-to", str(tmp_path / "state"), "--no-live-reload", cwd=ROOT)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = await browser.new_context()
        await context.clock.install()
        refreshes = []
        context.on("requestfinished", lambda r: refreshes.append(r) if r.url.endswith("/api/auth/refresh") else None)
        tab1 = await context.new_page()
        await _sign_in_page(tab1, server.url, "alice")
        lagging = await context.new_page()
        await lagging.add_init_script(_STALE_LOCAL_STORAGE)
        await lagging.goto(server.url)  # rotates once on start-up
        await lagging.wait_for_selector(".group .buddy")
        await tab1.reload()  # rotates again: the lagging tab's own token is now spent
        await tab1.wait_for_selector(".group .buddy")
        assert len(refreshes) == 2
        await context.clock.run_for(19 * 60 * 1000 + 5000)  # both tabs' refresh timers fire
        await _wait_until(tab1, lambda: len(refreshes) >= 3, tries=100)
        await tab1.wait_for_timeout(1000)
        await _assert_no_session_expired_dialog((tab1, lagging))
        for tab in (tab1, lagging):
            status = await tab.evaluate(
                "async () => (await fetch('/api/me', {headers: {authorization: 'Bearer ' + "
                "JSON.parse(localStorage.getItem('cfm.session')).accessToken}})).status")
            assert status == 200
        await browser.close()
