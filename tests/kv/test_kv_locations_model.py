"""Location views against a model: every write reaches every other view `delay` seconds later,
a view reads its own writes at once, and a read is served from that view's cache for its cacheTtl."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule

from cfemu.clock import VirtualClock
from cfemu.kv import KVNamespace
from kv_sync import run

START = 1_800_000_000.0
DELAY = 60.0
LOCATIONS = st.sampled_from(["primary", "sydney", "lima"])
KEYS = st.sampled_from(["a", "b", "c"])


class LocationsMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = VirtualClock(START)
        self.kv = KVNamespace.open(None, clock=self.clock)
        self.views = {"primary": self.kv, "sydney": self.kv.location("sydney", delay=DELAY),
                      "lima": self.kv.location("lima", delay=DELAY)}
        self.writes: dict[str, list[tuple[float, str, str | None]]] = {}
        self.cache: dict[tuple[str, str], tuple[str | None, float]] = {}

    def teardown(self) -> None:
        self.kv.close()

    def visible(self, where: str, key: str) -> str | None:
        now = self.clock.now()
        for time, origin, value in reversed(self.writes.get(key, [])):
            if origin == where or time + DELAY <= now:
                return value
        return None

    def write(self, where: str, key: str, value: str | None) -> None:
        self.writes.setdefault(key, []).append((self.clock.now(), where, value))
        self.cache.pop((where, key), None)

    @rule(where=LOCATIONS, key=KEYS, value=st.sampled_from(["1", "2", "3"]))
    def put(self, where, key, value):
        run(self.views[where].put(key, value))
        self.write(where, key, value)

    @rule(where=LOCATIONS, key=KEYS)
    def delete(self, where, key):
        run(self.views[where].delete(key))
        self.write(where, key, None)

    @rule(seconds=st.sampled_from([0.5, 1, 29, 30, 59, 60, 61, 200]))
    def advance(self, seconds):
        self.clock.set(self.clock.now() + seconds)

    @rule(where=LOCATIONS, key=KEYS, ttl=st.sampled_from([None, 30, 300]))
    def get(self, where, key, ttl):
        now = self.clock.now()
        cached = self.cache.get((where, key))
        if cached is not None and cached[1] > now:
            expected = cached[0]  # every location, the primary too, serves its cached read
        else:
            expected = self.visible(where, key)
            self.cache[(where, key)] = (expected, now + (60 if ttl is None else ttl))
        assert run(self.views[where].get(key, cacheTtl=ttl)) == expected

    @rule(where=LOCATIONS)
    def list_keys(self, where):
        expected = [k for k in sorted(self.writes) if self.visible(where, k) is not None]
        assert [k["name"] for k in run(self.views[where].list())["keys"]] == expected


TestLocationsModel = LocationsMachine.TestCase
TestLocationsModel.settings = settings(max_examples=150, stateful_step_count=30, deadline=None)
