"""CORS: only the allow-listed origins (ALLOWED_ORIGINS) may read API answers from another origin."""

from __future__ import annotations


async def test_an_allowed_origin_may_read_answers_and_the_headers_clients_need(rt):
    resp = await rt.fetch("/api/health", headers={"origin": "http://localhost:8787"})
    assert resp.headers["access-control-allow-origin"] == "http://localhost:8787"
    assert resp.headers["vary"] == "Origin"
    exposed = {h.strip() for h in resp.headers["access-control-expose-headers"].split(",")}
    assert exposed == {"retry-after", "x-audit-records", "x-audit-truncated", "x-audit-next-from", "x-audit-skipped"}


async def test_another_origin_gets_no_cors_headers(rt):
    resp = await rt.fetch("/api/health", headers={"origin": "https://evil.example"})
    assert resp.status == 200
    assert "access-control-allow-origin" not in resp.headers
    assert "access-control-expose-headers" not in resp.headers
