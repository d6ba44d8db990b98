"""Eventual consistency between views of one KV namespace, for tests of code that must cope with it.

Cloudflare KV makes a write visible at once where it was made and up to 60 s later elsewhere; a
location that read a key keeps serving what it read for the read's `cacheTtl`.  `Propagation` models
that for a handful of named views over one store: the store always holds the newest state, and a
log of recent writes (kept in memory only while views exist) says what each view may see yet.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import DEFAULT_CACHE_TTL
from .storage import Entry, KVStore, ListedKey, prefix_end

__all__ = ["Propagation"]


@dataclass
class _Write:
    time: float
    origin: str
    before: Entry | None
    after: Entry | None


@dataclass
class _Location:
    delay: float
    cache: dict[bytes, tuple[Entry | None, float]] = field(default_factory=dict)  # key -> (entry, until)


class Propagation:
    """Which writes each named location sees, and what it has cached."""

    def __init__(self, store: KVStore) -> None:
        self._store = store
        self._locations: dict[str, _Location] = {}
        self._log: dict[bytes, list[_Write]] = {}

    def add(self, name: str, delay: float) -> None:
        if name in self._locations:
            self._locations[name].delay = delay
        else:
            self._locations[name] = _Location(delay)

    # -- writes --------------------------------------------------------------------------------

    def record(self, origin: str, key: bytes, entry: Entry | None, now: float) -> None:
        """Log a write made at `origin` (call before the store changes: the old value is read here)."""
        self._prune(now)
        writes = self._log.setdefault(key, [])
        before = writes[-1].after if writes else self._store.get(key)
        writes.append(_Write(now, origin, before, entry))
        # The writer reads its own write at once.
        self._locations[origin].cache.pop(key, None)

    def _prune(self, now: float) -> None:
        # A write every location can see is history: the store, or the next write's `before`, has it.
        horizon = max((loc.delay for loc in self._locations.values()), default=0.0)
        for key in list(self._log):
            writes = self._log[key]
            while writes and writes[0].time + horizon <= now:
                writes.pop(0)
            if not writes:
                del self._log[key]

    # -- reads ---------------------------------------------------------------------------------

    def _visible(self, name: str, key: bytes, now: float) -> Entry | None:
        writes = self._log.get(key)
        if not writes:
            return self._store.get(key)
        delay = self._locations[name].delay
        for write in reversed(writes):
            if write.origin == name or write.time + delay <= now:
                return write.after
        return writes[0].before

    def read(self, name: str, key: bytes, now: float, cache_ttl: int | None) -> Entry | None:
        """What a `get` at location `name` returns (expired or not; the caller checks the clock)."""
        location = self._locations[name]
        cached = location.cache.get(key)
        if cached is not None and cached[1] > now:
            return cached[0]
        entry = self._visible(name, key, now)
        # A location caches what it read (missing keys too) for the read's cacheTtl.
        location.cache[key] = (entry, now + (cache_ttl if cache_ttl is not None else DEFAULT_CACHE_TTL))
        return entry

    def list(self, name: str, *, prefix: bytes, after: bytes | None, limit: int, now: float) -> list[ListedKey]:
        """`list` at location `name`: the store's keys with this location's view of recent writes."""
        end = prefix_end(prefix) if prefix else None
        overlay = [k for k in self._log
                   if k.startswith(prefix) and (after is None or k > after) and (end is None or k < end)]
        # Each overlaid key can hide at most one stored key, so this many rows always fill the page.
        rows = {row.key: row for row in self._store.list(prefix=prefix, after=after, limit=limit + len(overlay), now=now)}
        for key in overlay:
            entry = self._visible(name, key, now)
            if entry is None or not entry.live(now):
                rows.pop(key, None)
            else:
                rows[key] = ListedKey(key, entry.expiration, entry.metadata)
        return [rows[k] for k in sorted(rows)][:limit]
