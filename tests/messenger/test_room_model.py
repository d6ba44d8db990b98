"""Random operation sequences on one room checked against a model of what was acknowledged."""

from __future__ import annotations

import json
import random

import pytest

from messenger_client import api, frames_until, login, room



@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_room_matches_the_model_under_evictions_reroutes_crashes_and_resends(rt, seed):
    rng = random.Random(seed)
    users = ["alice", "bob", "carol"]
    sessions = {u: await login(rt, u) for u in users}
    sockets = {u: (await room(rt, "general", sessions[u]))[0] for u in users}
    seen = {u: 0 for u in users}         # highest seq each client has seen
    model: list[tuple[str, str]] = []     # (cid, text) in sequence order; index + 1 = seq
    sent = {u: 0 for u in users}

    async def reconnect(u):
        sockets[u], _ = await room(rt, "general", sessions[u], since=seen[u])
        sync, _ = await frames_until(sockets[u], "sync")
        expect = [cid for cid, _ in model[seen[u]:]]
        assert [m["cid"] for m in sync["messages"]] == expect, (u, seen[u])
        if sync["messages"]:
            seen[u] = sync["messages"][-1]["seq"]

    for step in range(40):
        op = rng.choices(["send", "resend", "reconnect", "evict", "reroute", "crash"], [10, 2, 3, 1, 1, 1])[0]
        u = rng.choice(users)
        if op == "send" and sent[u] < 14:
            sent[u] += 1
            cid, text = f"{u}-{step}", f"{u} {step}"
            await sockets[u].send(json.dumps({"type": "send", "cid": cid, "kind": "text", "text": text}))
            ack, _ = await frames_until(sockets[u], "ack")
            assert ack["seq"] == len(model) + 1 and not ack.get("duplicate")
            model.append((cid, text))
        elif op == "resend" and model:
            cid, text = rng.choice(model)
            owner = cid.split("-")[0]
            await sockets[owner].send(json.dumps({"type": "send", "cid": cid, "kind": "text", "text": text}))
            ack, _ = await frames_until(sockets[owner], "ack")
            assert ack["duplicate"] and model[ack["seq"] - 1][0] == cid
        elif op == "reconnect":
            await sockets[u].close()
            await reconnect(u)
        elif op == "evict":
            await rt.evict("CHAT", "general")
        elif op == "reroute":
            await rt.reroute("CHAT", "general")
            for v in users:
                await reconnect(v)
        elif op == "crash":
            await rt.crash()
            await rt.restart()
            for v in users:
                sessions[v] = await login(rt, v)
                await reconnect(v)
    page = await api(rt, "GET", "/api/rooms/general/history?limit=100", sessions["alice"]["accessToken"])
    assert [(m["cid"], m["text"]) for m in page["messages"]] == model
