"""AI personas: who they are, when they answer, how they are called, and their daily quotas.

A persona replies when DMed or @mentioned.  Every call goes through the `AI` binding, is counted
exactly by the `AIQuota` Durable Object (global and per-user daily limits), can be switched off by a
kill switch in KV (`ai:killswitch` = "on"), and is logged as an `ai_invocation` event.
"""

from __future__ import annotations

import json
import re

from js import Date, Object
from pyodide.ffi import to_js
from workers import DurableObject

import events
from store import jget, jput_many

__all__ = ["PERSONAS", "persona", "persona_by_username", "mentioned", "AIQuota", "generate", "day_of",
           "KILL_SWITCH_KEY", "DEFAULT_MODEL"]

DEFAULT_MODEL = "@cf/meta/llama-3.1-8b-instruct"
KILL_SWITCH_KEY = "ai:killswitch"
DEFAULT_GLOBAL_DAILY = 500
DEFAULT_USER_DAILY = 50
CONTEXT_MESSAGES = 8

PERSONAS = [
    {"id": "bsage", "username": "sage", "name": "Sage", "presence": "online",
     "message": "Ask me anything, slowly.",
     "voice": "You are Sage, a calm and thoughtful mentor. Answer briefly, kindly, in at most three sentences."},
    {"id": "bjester", "username": "jester", "name": "Jester", "presence": "busy",
     "message": "Juggling puns (L)",
     "voice": "You are Jester, a playful joker from the early 2000s internet. Reply with one short witty line and an MSN emoticon such as :P or (H)."},
    {"id": "bnova", "username": "nova", "name": "Nova", "presence": "online",
     "message": "Debugging the universe",
     "voice": "You are Nova, a precise technical helper. Give a short, concrete, correct answer; use a list only if asked."},
    {"id": "bmuse", "username": "muse", "name": "Muse", "presence": "away",
     "message": "(8) humming something",
     "voice": "You are Muse, a dreamy music lover. Answer in two short poetic lines and recommend a song when it fits."},
]
_BY_ID = {p["id"]: p for p in PERSONAS}
_BY_USERNAME = {p["username"]: p for p in PERSONAS}
_MENTION = re.compile(r"(?<![A-Za-z0-9_])@([A-Za-z][A-Za-z0-9_]{1,23})")


def persona(user_id: str) -> dict | None:
    return _BY_ID.get(user_id)


def persona_by_username(username: str) -> dict | None:
    return _BY_USERNAME.get(username.lower())


def mentioned(text: str) -> list[dict]:
    """Personas @mentioned in `text`, each once, in order of first mention."""
    out = []
    for name in _MENTION.findall(text or ""):
        p = persona_by_username(name)
        if p is not None and p not in out:
            out.append(p)
    return out


def day_of(now_ms: int) -> str:
    """UTC day as YYYY-MM-DD (quota periods and archive files)."""
    import datetime

    return datetime.datetime.fromtimestamp(now_ms / 1000, tz=datetime.timezone.utc).strftime("%Y-%m-%d")


def _limit(env, name: str, default: int) -> int:
    try:
        return int(getattr(env, name, None) or default)
    except (TypeError, ValueError):
        return default


class AIQuota(DurableObject):
    """One instance ("global") counts AI calls per UTC day, globally and per (hashed) user, exactly."""

    async def take(self, user_key: str) -> str:
        """Reserve one call for `user_key` today: JSON {"ok": bool, "reason"?, "global", "user"}."""
        storage = self.ctx.storage
        day = day_of(Date.now())
        if await jget(storage, "day") != day:
            await storage.deleteAll()  # a new day: yesterday's counters are of no use
        g = await jget(storage, "g") or 0
        u = await jget(storage, "u:" + user_key) or 0
        gmax, umax = _limit(self.env, "AI_DAILY_GLOBAL", DEFAULT_GLOBAL_DAILY), _limit(self.env, "AI_DAILY_PER_USER", DEFAULT_USER_DAILY)
        if g >= gmax:
            return json.dumps({"ok": False, "reason": "global", "global": g, "user": u})
        if u >= umax:
            return json.dumps({"ok": False, "reason": "user", "global": g, "user": u})
        await jput_many(storage, {"day": day, "g": g + 1, "u:" + user_key: u + 1})
        return json.dumps({"ok": True, "global": g + 1, "user": u + 1})

    async def forget(self, user_key: str) -> str:
        """Account deletion: today's count of that user goes (the global count stays: it names no one)."""
        await self.ctx.storage.delete("u:" + user_key)
        return json.dumps({"ok": True})

    async def usage(self) -> str:
        storage = self.ctx.storage
        return json.dumps({"day": await jget(storage, "day"), "global": await jget(storage, "g") or 0})


async def kill_switch_on(env) -> bool:
    kv = getattr(env, "KV", None)
    if kv is None:
        return False
    try:
        value = await kv.get(KILL_SWITCH_KEY)
    except Exception:
        return False
    return value is not None and str(value).strip().lower() in ("on", "1", "true")


def _messages(p: dict, history: list[dict], prompt: str) -> list[dict]:
    msgs = [{"role": "system", "content": p["voice"]}]
    for m in history[-CONTEXT_MESSAGES:]:
        if m.get("kind") != "text":
            continue
        role = "assistant" if m.get("from") == p["id"] else "user"
        msgs.append({"role": role, "content": m.get("text", "")[:1000]})
    msgs.append({"role": "user", "content": prompt[:2000]})
    return msgs


async def generate(env, p: dict, user_id: str, history: list[dict], prompt: str) -> tuple[str | None, str]:
    """Ask the AI binding for `p`'s reply: (text or None, outcome) after kill switch and quotas.

    Outcome is one of ok, disabled, quota_global, quota_user, error; an event is logged for every call.
    """
    model = getattr(env, "AI_MODEL", None) or DEFAULT_MODEL
    started = Date.now()
    user_key = events.keyed_hash(env, user_id)
    outcome, text = "ok", None
    if await kill_switch_on(env):
        outcome = "disabled"
    else:
        quota = json.loads(await env.AI_QUOTA.getByName("global").take(user_key))
        if not quota["ok"]:
            outcome = "quota_" + quota["reason"]
    if outcome == "ok":
        try:
            result = await env.AI.run(model, to_js({"messages": _messages(p, history, prompt), "max_tokens": 256},
                                                   dict_converter=Object.fromEntries))
            if hasattr(result, "to_py"):
                result = result.to_py()
            text = (result.get("response") if isinstance(result, dict) else str(result)) or ""
            text = text.strip()[:2048] or "..."
        except Exception as error:
            print(f"ai: {p['username']} failed: {error}")
            outcome = "error"
    events.emit(env, "ai_invocation", blobs=(p["username"], model, outcome), doubles=(Date.now() - started,),
                user=user_id)
    return text, outcome
