"""The Rate Limiting binding (`[[ratelimits]]`, or `[[unsafe.bindings]]` with `type = "ratelimit"`).

`await env.RL.limit(key=...)` counts one call against `simple = {limit, period}` and answers
`{"success": bool}`.  Counting follows Miniflare (Cloudflare's own simulator): fixed windows of
`period` seconds aligned to the Unix epoch, so a key gets its full budget back at the next multiple of
the period.  Production counts per Cloudflare location and is eventually consistent; one machine is one
location.  Counters live in SQLite under `state_dir/ratelimit`, keyed by namespace id (bindings that share
a namespace share counters, as on Cloudflare) and survive restarts.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from .clock import Clock, RealClock
from .errors import JsException
from .objects import JsObject
from .services import Service
from .sqlite import open_sqlite3

__all__ = ["RateLimiter", "RateLimitService", "RateLimitStore", "PERIODS"]

PERIODS = (10, 60)
_PURGE_EVERY = 1024  # calls between sweeps of counters whose window ended (one row per key seen)
_OPTION_KEYS = ("key", "limit", "period")

# Texts of Miniflare's rate limiting simulator (production's are not documented).
INVALID_OPTIONS = "invalid rate limit options"
BAD_OPTIONS = "bad rate limit options: [{names}]"
INVALID_KEY = "invalid key: {key}"
LIMIT_NOT_NUMBER = "limit must be a number: {limit}"
PERIOD_NOT_NUMBER = "period must be a number: {period}"
UNSUPPORTED_PERIOD = "unsupported period: {period}"


def _js(value: Any) -> str:
    """How JS template literals print a value in the messages above."""
    if value is None:
        return "null"
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (dict, JsObject)):
        return "[object Object]"
    if isinstance(value, (list, tuple)):
        return ",".join(_js(v) for v in value)
    return str(value)


_MISSING = object()


def _utf8_safe(text: str) -> str:
    try:
        text.encode()
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


class RateLimitStore:
    """Per-window counters in one SQLite file (WAL; each count committed before `limit` answers)."""

    def __init__(self, path: Path | None) -> None:
        self._db = open_sqlite3(path)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS counters (namespace TEXT NOT NULL, period INTEGER NOT NULL, "
            "key TEXT NOT NULL, window INTEGER NOT NULL, count INTEGER NOT NULL, "
            "PRIMARY KEY (namespace, period, key))"
        )
        self._takes = 0

    def take(self, namespace: str, period: int, key: str, window: int, limit: int) -> bool:
        """Count one call in `window` unless the key already reached `limit` there."""
        self._takes += 1
        if self._takes % _PURGE_EVERY == 0:
            self.purge(window * period)
        row = self._db.execute("SELECT window, count FROM counters WHERE namespace = ? AND period = ? AND key = ?",
                               (namespace, period, key)).fetchone()
        count = row[1] if row is not None and row[0] == window else 0
        if count >= limit:
            return False
        self._db.execute("INSERT OR REPLACE INTO counters (namespace, period, key, window, count) VALUES (?, ?, ?, ?, ?)",
                         (namespace, period, key, window, count + 1))
        return True

    def purge(self, now: float) -> None:
        """Forget counters of windows that have ended."""
        self._db.execute("DELETE FROM counters WHERE (window + 1) * period <= ?", (now,))

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None  # type: ignore[assignment]


class RateLimiter:
    """Mirrors the Workers Rate Limiting binding: `await limit(key=...)` -> `{"success": bool}`.

    `limit` and `period` may be overridden per call (as the binding's options allow).  Usable without
    a worker: `RateLimiter(RateLimitStore(path), namespace_id="1", limit=10, period=60, clock=...)`.
    """

    def __init__(self, store: RateLimitStore, *, namespace_id: str, limit: int, period: int,
                 clock: Clock | None = None) -> None:
        self._store = store
        self._namespace = str(namespace_id)
        self._limit = limit
        self._period = period
        self._clock = clock or RealClock()

    def __repr__(self) -> str:
        return f"<RateLimiter namespace={self._namespace} {self._limit}/{self._period}s>"

    async def limit(self, options: Any = _MISSING, *, key: Any = _MISSING, limit: Any = _MISSING,
                    period: Any = _MISSING) -> JsObject:
        """Count one call for `key`; `success` is False once the key used its budget in this window."""
        if options is _MISSING:
            opts: dict[str, Any] = {}
        elif isinstance(options, dict):
            opts = dict(options)
        else:
            raise JsException(INVALID_OPTIONS)
        for name, value in (("key", key), ("limit", limit), ("period", period)):
            if value is not _MISSING:
                opts[name] = value
        unknown = [name for name in opts if name not in _OPTION_KEYS]
        if unknown:
            raise JsException(BAD_OPTIONS.format(names=",".join(map(str, unknown))))
        # Miniflare lets a missing key default to "", so every caller would share one bucket; a missing
        # key is almost always a bug, so it is refused here like any other non-string key.
        the_key = opts.get("key", _MISSING)
        if not isinstance(the_key, str):
            raise JsException(INVALID_KEY.format(key="undefined" if the_key is _MISSING else _js(the_key)))
        # The key travels UTF-8 encoded, so a lone surrogate arrives as U+FFFD (and SQLite can store it).
        the_key = _utf8_safe(the_key)
        the_limit = opts.get("limit", self._limit)
        if isinstance(the_limit, bool) or not isinstance(the_limit, (int, float)):
            raise JsException(LIMIT_NOT_NUMBER.format(limit=_js(the_limit)))
        the_period = opts.get("period", self._period)
        if isinstance(the_period, bool) or not isinstance(the_period, (int, float)):
            raise JsException(PERIOD_NOT_NUMBER.format(period=_js(the_period)))
        if the_period not in PERIODS:
            raise JsException(UNSUPPORTED_PERIOD.format(period=_js(the_period)))
        the_period = int(the_period)
        window = math.floor(self._clock.now() / the_period)
        ok = self._store.take(self._namespace, the_period, the_key, window, the_limit)
        return JsObject(success=ok)


class RateLimitService(Service):
    """Every rate limiting binding of a runtime, over one counters file."""

    kind = "ratelimit"

    def __init__(self, host: Any) -> None:
        super().__init__(host)
        self._store: RateLimitStore | None = None
        self._limiters: dict[str, RateLimiter] = {}

    async def start(self) -> None:
        self._store = RateLimitStore(Path(self.host.state_dir) / "ratelimit" / "counters.sqlite")
        self._store.purge(self.host.clock.now())
        for cfg in self.host.config.ratelimits:
            self._limiters[cfg.name] = RateLimiter(self._store, namespace_id=cfg.namespace_id, limit=cfg.limit,
                                                   period=cfg.period, clock=self.host.clock)

    def bindings(self) -> dict[str, Any]:
        return dict(self._limiters)

    async def close(self) -> None:
        if self._store is not None:
            self._store.purge(self.host.clock.now())
            self._store.close()

    def abandon(self) -> None:
        if self._store is not None:
            self._store.close()
