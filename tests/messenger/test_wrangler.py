"""The repository's wrangler.toml runs the messenger as it is, through cfemu's default fixture."""

from __future__ import annotations




async def test_root_wrangler_toml_runs_under_the_default_fixture(cfemu_runtime):
    rt = cfemu_runtime
    assert rt.config.main.name == "entry.py"
    for binding in ("CHAT", "PRESENCE", "INBOX", "DIRECTORY", "SESSIONS", "AI_QUOTA", "KV", "DELIVERY", "DB", "ARCHIVE",
                    "ANALYTICS", "AI", "ASSETS"):
        assert binding in rt.env, binding
    resp = await rt.fetch("/api/health")
    body = await resp.json()
    assert resp.status == 200 and body["ok"] is True and body["requestId"]
    assert resp.headers.get("content-security-policy", "").startswith("default-src 'self'")
    assert sorted(rt.config.crons) == ["0 */6 * * *", "15 0 * * *"]
    consumers = {c.queue: c for c in rt.config.queue_consumers}
    assert consumers["messenger-delivery"].dead_letter_queue == "messenger-delivery-dlq"

