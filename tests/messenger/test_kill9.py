"""kill -9 of a real `cfemu dev` running the messenger while clients send: every ack survives, once."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from messenger_support import ROOT

pytestmark = pytest.mark.slow


async def _login(http, url, user):
    async with http.post(f"{url}/api/auth/login", json={"username": user, "password": f"{user}-demo"}) as resp:
        assert resp.status == 200
        return (await resp.json())["data"]


async def test_kill_9_while_sending_keeps_every_acknowledged_message_exactly_once(tmp_path, dev_server):
    state = tmp_path / "state"
    server = dev_server(ROOT / "wrangler.toml", "--persist-to", str(state), "--no-live-reload", cwd=ROOT)
    acked: dict[str, int] = {}  # cid -> seq
    async with aiohttp.ClientSession() as http:
        sockets = []
        for user in ("alice", "bob", "carol"):
            session = await _login(http, server.url, user)
            ws = await http.ws_connect(server.url.replace("http", "ws") + "/ws/room/general")
            await ws.send_str(json.dumps({"type": "auth", "token": session["accessToken"]}))
            while json.loads((await ws.receive()).data)["type"] != "welcome":
                pass
            sockets.append((user, ws))

        async def stream(user, ws):
            i = 0
            while True:
                i += 1
                cid = f"{user}-{i}"
                await ws.send_str(json.dumps({"type": "send", "cid": cid, "kind": "text", "text": f"{user} says {i}"}))
                while True:
                    msg = await ws.receive()
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        return
                    frame = json.loads(msg.data)
                    if frame["type"] == "ack" and frame["cid"] == cid:
                        acked[cid] = frame["seq"]
                        break
                    if frame["type"] == "error":
                        return  # rate limited: this client is done
                if i >= 14:
                    return

        tasks = [asyncio.ensure_future(stream(u, ws)) for u, ws in sockets]
        while len(acked) < 20:
            await asyncio.sleep(0.002)
        server.kill()  # SIGKILL while the others still send
        await asyncio.gather(*tasks, return_exceptions=True)

    restarted = dev_server(ROOT / "wrangler.toml", "--persist-to", str(state), "--no-live-reload", cwd=ROOT)
    async with aiohttp.ClientSession() as http:
        session = await _login(http, restarted.url, "dave")
        headers = {"authorization": f"Bearer {session['accessToken']}"}
        messages, before = [], 0
        while True:
            async with http.get(f"{restarted.url}/api/rooms/general/history?limit=100&before={before}", headers=headers) as resp:
                page = (await resp.json())["data"]
            messages = page["messages"] + messages
            if not page["hasMore"]:
                break
            before = page["messages"][0]["seq"]
    by_cid: dict[str, list[int]] = {}
    for m in messages:
        by_cid.setdefault(m["cid"], []).append(m["seq"])
    assert [m["seq"] for m in messages] == list(range(1, len(messages) + 1))  # no holes, no repeats
    for cid, seq in acked.items():
        assert by_cid.get(cid) == [seq], (cid, seq, by_cid.get(cid))
    assert len(acked) >= 20
