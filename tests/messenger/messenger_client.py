"""A tiny test client for the messenger: HTTP calls with the envelope, sockets that authenticate."""

from __future__ import annotations

import json
import itertools

_cids = itertools.count(1)


async def api(rt, method: str, path: str, token: str | None = None, body=None, expect: int | None = 200):
    headers = {"authorization": f"Bearer {token}"} if token else {}
    resp = await rt.fetch(path, method=method, headers=headers, json=body)
    data = json.loads(await resp.text())
    if expect is not None:
        assert resp.status == expect, (resp.status, data)
    assert "requestId" in data
    return data["data"] if data["ok"] else data


async def login(rt, username: str, password: str | None = None) -> dict:
    return await api(rt, "POST", "/api/auth/login", body={"username": username, "password": password or f"{username}-demo"})


async def frames_until(ws, kind: str, *, limit: int = 50, timeout: float = 5.0) -> tuple[dict, list[dict]]:
    """Read frames until one of type `kind`; returns (that frame, the frames before it)."""
    seen = []
    for _ in range(limit):
        frame = json.loads(await ws.receive(timeout))
        if frame["type"] == kind:
            return frame, seen
        seen.append(frame)
    raise AssertionError(f"no {kind!r} frame among {seen}")


async def room(rt, name: str, session: dict, since: int | None = None):
    """An authenticated room socket and its welcome frame (and the sync frame when `since` is given)."""
    ws = await rt.websocket(f"/ws/room/{name}")
    frame = {"type": "auth", "token": session["accessToken"]}
    if since is not None:
        frame["since"] = since
    await ws.send(json.dumps(frame))
    welcome, _ = await frames_until(ws, "welcome")
    return ws, welcome


async def presence_socket(rt, session: dict):
    ws = await rt.websocket("/ws/presence")
    await ws.send(json.dumps({"type": "auth", "token": session["accessToken"]}))
    roster, _ = await frames_until(ws, "roster")
    return ws, roster


async def say(ws, text: str, cid: str | None = None) -> dict:
    cid = cid or f"c{next(_cids)}"
    await ws.send(json.dumps({"type": "send", "cid": cid, "kind": "text", "text": text}))
    ack, _ = await frames_until(ws, "ack")
    assert ack["cid"] == cid
    return ack


def drain(ws) -> list[dict]:
    return [json.loads(m) for m in ws.pending()]
