"""KV against a model: random put/delete/get/list sequences with TTLs, moving time and reopening the file."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from cfemu.clock import VirtualClock
from cfemu.kv import KVNamespace
from kv_sync import run

START = 1_800_000_000.5
KEYS = st.sampled_from(["a", "ab", "a/b", "b", "é", "z", "\uffff", "😀", "a\u0000", "A"])
PREFIXES = st.sampled_from(["", "a", "a/", "b", "\uffff", "😀", "zz"])



class KVMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="cfemu-kv-model-"))
        self.clock = VirtualClock(START)
        self.kv = KVNamespace.open(self.dir / "ns.sqlite", clock=self.clock)
        self.model: dict[str, tuple[str, int | None, dict | None]] = {}

    def teardown(self) -> None:
        self.kv.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def live(self) -> dict[str, tuple[str, int | None, dict | None]]:
        now = self.clock.now()
        return {k: v for k, v in self.model.items() if v[1] is None or v[1] > now}

    @rule(key=KEYS, value=st.text(max_size=8), ttl=st.none() | st.integers(60, 400),
          meta=st.none() | st.dictionaries(st.sampled_from(["x", "y"]), st.integers(-5, 5), max_size=2))
    def put(self, key, value, ttl, meta):
        run(self.kv.put(key, value, expirationTtl=ttl, metadata=meta))
        expiration = None if ttl is None else int(self.clock.now()) + ttl
        self.model[key] = (value, expiration, meta)

    @rule(key=KEYS)
    def delete(self, key):
        run(self.kv.delete(key))
        self.model.pop(key, None)

    @rule(seconds=st.floats(0, 250))
    def advance(self, seconds):
        self.clock.set(self.clock.now() + seconds)

    @rule(offset=st.sampled_from([-0.5, 0.0]))
    def advance_to_an_expiration(self, offset):
        # Land exactly on (or just before) the next expiration: the boundary where a key disappears.
        pending = [v[1] for v in self.model.values() if v[1] is not None and v[1] + offset > self.clock.now()]
        if pending:
            self.clock.set(min(pending) + offset)

    @rule()
    def reopen(self):
        self.kv.close()
        self.kv = KVNamespace.open(self.dir / "ns.sqlite", clock=self.clock)

    @rule(key=KEYS)
    def get(self, key):
        expected = self.live().get(key)
        assert run(self.kv.get(key)) == (None if expected is None else expected[0])
        result = run(self.kv.getWithMetadata(key))
        if expected is None:
            assert result == {"value": None, "metadata": None, "cacheStatus": None}
        else:
            assert result == {"value": expected[0], "metadata": expected[2], "cacheStatus": None}

    @rule(keys=st.lists(KEYS, min_size=1, max_size=5))
    def bulk_get(self, keys):
        live = self.live()
        assert run(self.kv.get(keys)) == {k: (live[k][0] if k in live else None) for k in keys}

    @rule(prefix=PREFIXES, limit=st.integers(1, 4))
    def list_all_pages(self, prefix, limit):
        expected = []
        for name in sorted(self.live(), key=lambda s: s.encode()):
            if not name.startswith(prefix):
                continue
            value, expiration, meta = self.model[name]
            item = {"name": name}
            if expiration is not None:
                item["expiration"] = expiration
            if meta is not None:
                item["metadata"] = meta
            expected.append(item)
        got, cursor = [], None
        while True:
            page = run(self.kv.list(prefix=prefix or None, limit=limit, cursor=cursor))
            assert len(page["keys"]) <= limit
            got += page["keys"]
            if page["list_complete"]:
                assert "cursor" not in page
                break
            cursor = page["cursor"]
        assert got == expected

    @invariant()
    def count_is_bounded(self):
        # The file never holds more keys than were ever written and not deleted.
        assert self.kv._store.count() <= len(self.model)


TestKVModel = KVMachine.TestCase
TestKVModel.settings = settings(max_examples=40, stateful_step_count=30, deadline=None)
