"""Helpers shared by the Durable Object review tests (a uniquely named module, not conftest)."""

import asyncio


async def spin(n: int = 30) -> None:
    """Let the event loop run `n` turns (calls in flight reach their next suspension)."""
    for _ in range(n):
        await asyncio.sleep(0)
