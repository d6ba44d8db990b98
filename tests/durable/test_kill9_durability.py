"""kill -9 of a real `cfemu dev` during a stream of confirmed writes loses none of them."""

import asyncio
import random
import shutil
from pathlib import Path

import aiohttp
import pytest

COUNTER = Path(__file__).resolve().parents[2] / "examples" / "counter"


@pytest.mark.slow
async def test_kill_9_keeps_every_confirmed_write(tmp_path, dev_server):
    worker = tmp_path / "counter"
    shutil.copytree(COUNTER, worker, ignore=shutil.ignore_patterns(".cfemu", "__pycache__"))
    state = tmp_path / "state"
    server = dev_server(worker / "wrangler.toml", "--persist-to", str(state), "--no-live-reload")
    names = [f"c{i}" for i in range(4)]
    confirmed = {name: 0 for name in names}
    sent = {name: 0 for name in names}
    stop_after = random.randint(40, 80)

    async with aiohttp.ClientSession() as session:

        async def stream(name: str) -> None:
            while sum(confirmed.values()) < stop_after:
                sent[name] += 1
                async with session.post(f"{server.url}/{name}/increment") as resp:
                    assert resp.status == 200
                    confirmed[name] = (await resp.json())["count"]

        await asyncio.gather(*(stream(n) for n in names))
        # More writes in flight while the process dies.
        in_flight = [asyncio.ensure_future(session.post(f"{server.url}/{n}/increment")) for n in names]
        await asyncio.sleep(0.005)
        server.kill()  # SIGKILL
        for task in in_flight:
            try:
                (await task).release()
            except (aiohttp.ClientError, asyncio.CancelledError):
                pass
        for n in names:
            sent[n] += 1

    restarted = dev_server(worker / "wrangler.toml", "--persist-to", str(state), "--no-live-reload")
    async with aiohttp.ClientSession() as session:
        for name in names:
            async with session.get(f"{restarted.url}/{name}") as resp:
                count = (await resp.json())["count"]
            assert confirmed[name] <= count <= sent[name], (name, confirmed[name], count, sent[name])
    assert sum(confirmed.values()) >= stop_after
