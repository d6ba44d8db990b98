"""A producer/consumer worker driven through `cfemu.testing`, as an app's own tests would."""

from __future__ import annotations

from pathlib import Path

from cfemu.testing import Runtime

APP = Path(__file__).resolve().parent / "workers" / "app"


async def test_orders_flow_with_retry_delay_and_crash(tmp_path):
    async with Runtime.from_config(APP, persist_to=tmp_path) as rt:
        rt.worker_module("worker").processed.clear()
        for order in ({"id": 1}, {"id": 2, "fail_first": True}, {"id": 3, "delay": 30}):
            response = await rt.fetch("/orders", method="POST", json=order)
            assert response.status == 202
        await rt.advance(2)
        assert await (await rt.fetch("/orders")).json() == [{"id": 1, "attempts": 1}]
        await rt.crash()  # order 2 waits for its retry, order 3 for its delay: both only on disk now
        await rt.restart()
        await rt.advance(12)  # visible again at 12 s, delivered after the 2 s batch timeout
        assert await (await rt.fetch("/orders")).json() == [{"id": 1, "attempts": 1}, {"id": 2, "attempts": 2}]
        await rt.advance(17.9)
        assert len(await (await rt.fetch("/orders")).json()) == 2
        await rt.advance(0.1)  # delay 30 s + batch timeout 2 s
        assert [o["id"] for o in await (await rt.fetch("/orders")).json()] == [1, 2, 3]
        assert rt.service("queues").pending("orders") == 0
