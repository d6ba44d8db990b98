"""Benchmark: N clients in one room through a real `cfemu dev`; messages/s delivered, ack latency.

    .venv/bin/python bench/messenger_bench.py --clients 10 --messages 15 --http-requests 50

Each client sends `--messages` texts (≤ 15: the room's rate limit per user per minute) as fast as acks
come back; every other client receives each one.  The baseline, measured in the same run, is a bare
aiohttp WebSocket broadcast server (no auth, no storage, no durability) driven the same way.
A second section loads signed-in HTTP routes concurrently next to `/api/health` (which touches no
object), to show what signed-in auth costs: the token is verified in the worker against keys cached
from KV and the session checked against its KV marker, so no single object is on that path.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] * 1000


async def _drive(url_ws: str, sockets_auth: list, messages: int) -> dict:
    async with aiohttp.ClientSession() as http:
        sockets = []
        for auth in sockets_auth:
            ws = await http.ws_connect(url_ws)
            if auth:
                await ws.send_str(json.dumps({"type": "auth", "token": auth}))
                while json.loads((await ws.receive()).data)["type"] != "welcome":
                    pass
            sockets.append(ws)
        n = len(sockets)
        expected = n * messages * (n - 1)
        delivered = 0
        latencies: list[float] = []
        done = asyncio.Event()

        async def client(i: int, ws) -> None:
            nonlocal delivered
            sent_at: dict[str, float] = {}
            for k in range(messages):
                cid = f"c{i}-{k}"
                sent_at[cid] = time.perf_counter()
                await ws.send_str(json.dumps({"type": "send", "cid": cid, "kind": "text", "text": f"hello {k}"}))
                while True:
                    frame = json.loads((await ws.receive()).data)
                    if frame["type"] == "ack" and frame["cid"] == cid:
                        latencies.append(time.perf_counter() - sent_at[cid])
                        break
                    if frame["type"] == "msg":
                        delivered += 1
            while delivered < expected and not done.is_set():
                msg = await ws.receive()
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                if json.loads(msg.data)["type"] == "msg":
                    delivered += 1
            done.set()

        start = time.perf_counter()
        tasks = [asyncio.ensure_future(client(i, ws)) for i, ws in enumerate(sockets)]
        try:
            await asyncio.wait_for(done.wait(), 120)
        finally:
            elapsed = time.perf_counter() - start
            for t in tasks:
                t.cancel()
            for ws in sockets:
                await ws.close()
        return {"delivered": delivered, "expected": expected, "elapsed": elapsed, "per_s": delivered / elapsed,
                "p50": _pct(latencies, 0.5), "p99": _pct(latencies, 0.99)}


async def _baseline(clients: int, messages: int) -> dict:
    peers: set = set()

    async def handler(request):
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        peers.add(ws)
        seq = 0
        async for msg in ws:
            frame = json.loads(msg.data)
            seq += 1
            await ws.send_str(json.dumps({"type": "ack", "cid": frame["cid"], "seq": seq}))
            out = json.dumps({"type": "msg", "message": frame})
            for p in list(peers):
                if p is not ws:
                    await p.send_str(out)
        peers.discard(ws)
        return ws

    app = web.Application()
    app.router.add_get("/ws", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        return await _drive(f"ws://127.0.0.1:{port}/ws", [None] * clients, messages)
    finally:
        await runner.cleanup()


async def _http_load(url: str, make_request, clients: int, requests: int) -> dict:
    """`clients` concurrent loops, `requests` calls each; requests/s and latency p50/p99."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    async with aiohttp.ClientSession() as http:
        async def loop(i: int) -> None:
            for k in range(requests):
                method, path, kwargs = make_request(i, k)
                t0 = time.perf_counter()
                async with http.request(method, url + path, **kwargs) as resp:
                    body = await resp.json()
                    statuses[resp.status] = statuses.get(resp.status, 0) + 1
                    if method == "POST" and path.endswith("/refresh") and body.get("ok"):
                        make_request.tokens[i] = body["data"]["refreshToken"]
                latencies.append(time.perf_counter() - t0)

        start = time.perf_counter()
        await asyncio.gather(*(loop(i) for i in range(clients)))
        elapsed = time.perf_counter() - start
    return {"per_s": len(latencies) / elapsed, "p50": _pct(latencies, 0.5), "p99": _pct(latencies, 0.99),
            "statuses": statuses}


async def _directory_load(url: str, sessions: list[dict], requests: int) -> dict:
    """Signed-in calls next to /api/health: what does authentication cost?"""
    n = len(sessions)

    def health(i, k):
        return "GET", "/api/health", {}

    def me(i, k):  # local verify + KV session marker + PresenceRoom.own
        return "GET", "/api/me", {"headers": {"authorization": f"Bearer {sessions[i]['accessToken']}"}}

    def search(i, k):  # local verify + KV session marker + D1 (no object)
        return "GET", "/api/search?q=nothing", {"headers": {"authorization": f"Bearer {sessions[i]['accessToken']}"}}

    def refresh(i, k):  # a write to the session's own Session object per call
        return "POST", "/api/auth/refresh", {"json": {"refreshToken": refresh.tokens[i]}}

    refresh.tokens = [s["refreshToken"] for s in sessions]
    for fn in (health, me, search):
        fn.tokens = refresh.tokens
    out = {}
    for name, fn in (("GET /api/health (no object)", health), ("GET /api/search (verify+D1)", search),
                     ("GET /api/me (verify+presence)", me), ("POST /api/auth/refresh", refresh)):
        out[name] = await _http_load(url, fn, n, requests)
    return out


async def _messenger(clients: int, messages: int, http_requests: int = 0) -> dict:
    state = tempfile.mkdtemp(prefix="messenger-bench-")
    cfemu = [str(Path(sys.executable).parent / "cfemu")]
    # Every client registers from this machine: lift the per-address registration limit.
    proc = subprocess.Popen([*cfemu, "dev", "--port", "0", "--persist-to", state, "--no-live-reload",
                             "--var", f"REGISTER_PER_HOUR:{clients + 10}", "--config", str(ROOT / "wrangler.toml")], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        url = None
        for line in proc.stdout:
            m = re.search(r"Ready on (http://127\.0\.0\.1:\d+)", line)
            if m:
                url = m.group(1)
                break
        # Keep reading the server's log: a full pipe would block the server mid-benchmark.
        threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
        sessions = []
        async with aiohttp.ClientSession() as http:
            for i in range(clients):
                async with http.post(f"{url}/api/auth/register",
                                     json={"username": f"bench{i}", "password": "bench-password"}) as resp:
                    sessions.append((await resp.json())["data"])
        result = await _drive(url.replace("http", "ws") + "/ws/room/general", [s["accessToken"] for s in sessions],
                              messages)
        if http_requests:
            result["directory"] = await _directory_load(url, sessions, http_requests)
        return result
    finally:
        proc.kill()
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--messages", type=int, default=15)
    parser.add_argument("--http-requests", type=int, default=50,
                        help="per client, for the signed-in HTTP section (0 skips it)")
    args = parser.parse_args()
    messages = min(args.messages, 15)
    base = asyncio.run(_baseline(args.clients, messages))
    ours = asyncio.run(_messenger(args.clients, messages, args.http_requests))
    print(f"{args.clients} clients x {messages} messages, one room")
    print(f"{'':24}{'delivered/s':>12}{'ack p50 ms':>12}{'ack p99 ms':>12}{'delivered':>12}")
    for name, r in (("aiohttp broadcast (base)", base), ("messenger on cfemu dev", ours)):
        print(f"{name:24}{r['per_s']:12.0f}{r['p50']:12.2f}{r['p99']:12.2f}{r['delivered']:>7}/{r['expected']}")
    print(f"ratio delivered/s: {ours['per_s'] / base['per_s']:.3f}  ack p50 ratio: {ours['p50'] / max(base['p50'], 1e-6):.1f}x")
    if "directory" in ours:
        rows = ours["directory"]
        base_rate = next(iter(rows.values()))["per_s"]
        print(f"\nSigned-in HTTP: {args.clients} concurrent clients x {args.http_requests} requests "
              "(token verified in the worker, session checked against its KV marker)")
        print(f"{'':32}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'vs health':>10}  statuses")
        for name, r in rows.items():
            print(f"{name:32}{r['per_s']:9.0f}{r['p50']:9.2f}{r['p99']:9.2f}{r['per_s'] / base_rate:10.2f}  {r['statuses']}")


if __name__ == "__main__":
    main()
