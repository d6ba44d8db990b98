"""ctx.storage KV API, transactions, alarms and storage.kv against Cloudflare's semantics."""

from __future__ import annotations

import shutil
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from cfemu.durable import errors as E
from cfemu.durable.engine import StorageEngine
from cfemu.durable.storage import DurableObjectStorage
from cfemu.errors import JsException, JsRangeError, JsTypeError
from cfemu.values import DataCloneError


def now(awaitable):
    """Drive a storage coroutine that must finish without ever suspending (the input gate)."""
    try:
        awaitable.send(None)
    except StopIteration as done:
        return done.value
    awaitable.close()
    raise AssertionError("storage call suspended")


class Harness:
    def __init__(self, directory: Path, sqlite_backed: bool, now_ms=None) -> None:
        self.path = directory / "obj.sqlite"
        self.sqlite_backed = sqlite_backed
        self.dirty = 0
        self.alarms: list = []
        self.synced = 0
        self.now_ms = now_ms
        self.open()

    def open(self) -> None:
        self.engine = StorageEngine(self.path, on_dirty=self._dirty)
        self.storage = DurableObjectStorage(self.engine, sqlite_backed=self.sqlite_backed,
                                            on_alarm_change=self.alarms.append, on_sync=self._sync,
                                            now_ms=self.now_ms)

    def _dirty(self) -> None:
        self.dirty += 1

    async def _sync(self) -> None:
        self.synced += 1


@pytest.fixture(params=[True, False], ids=["sqlite", "kv"])
def h(request, tmp_path):
    harness = Harness(tmp_path, request.param)
    yield harness
    harness.engine.close()


@pytest.fixture
def sq(tmp_path):
    harness = Harness(tmp_path, True)
    yield harness
    harness.engine.close()


@pytest.fixture
def kvb(tmp_path):
    harness = Harness(tmp_path, False)
    yield harness
    harness.engine.close()


# --- the state machine ---------------------------------------------------------------------------

KEYS = st.sampled_from(["", "a", "ab", "abc", "b", "ba", "z", "é", "\uffff", "\U00010000", "a\x00", "\x7f"])
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False)
    | st.text(max_size=8) | st.binary(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=6,
)
OPT_KEY = st.none() | KEYS


def utf8(key: str) -> bytes:
    return key.encode("utf-8")


def model_list(model: dict, start, start_after, end, prefix, reverse, limit) -> list:
    keys = sorted(model, key=utf8)
    if start is not None:
        keys = [k for k in keys if utf8(k) >= utf8(start)]
    if start_after is not None:
        keys = [k for k in keys if utf8(k) > utf8(start_after)]
    if end is not None:
        keys = [k for k in keys if utf8(k) < utf8(end)]
    if prefix is not None:
        keys = [k for k in keys if k.startswith(prefix)]
    if reverse:
        keys.reverse()
    if limit is not None:
        keys = keys[:limit]
    return [(k, model[k]) for k in keys]


class StorageMachine(RuleBasedStateMachine):
    """Every KV operation (and commit, crash, restart) against a dict model of what is stored."""

    sqlite_backed = True

    @initialize()
    def setup(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="cfemu-do-"))
        self.h = Harness(self.dir, self.sqlite_backed)
        self.model: dict = {}
        self.committed: dict = {}
        self.armed = False

    def teardown(self) -> None:
        if hasattr(self, "h"):
            self.h.engine.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def s(self) -> DurableObjectStorage:
        return self.h.storage

    @rule(key=KEYS, value=VALUES)
    def put(self, key, value):
        now(self.s.put(key, value))
        self.model[key] = value

    @rule(entries=st.dictionaries(KEYS, VALUES, max_size=4))
    def put_many(self, entries):
        now(self.s.put(entries))
        self.model.update(entries)

    @rule(key=KEYS)
    def get(self, key):
        assert now(self.s.get(key)) == self.model.get(key)

    @rule(keys=st.lists(KEYS, max_size=5))
    def get_many(self, keys):
        got = now(self.s.get(keys))
        expected = {k: self.model[k] for k in sorted(set(keys), key=utf8) if k in self.model}
        assert list(got.items()) == list(expected.items())

    @rule(key=KEYS)
    def delete(self, key):
        assert now(self.s.delete(key)) == (key in self.model)
        self.model.pop(key, None)

    @rule(keys=st.lists(KEYS, max_size=5))
    def delete_many(self, keys):
        expected = len({k for k in keys if k in self.model})
        assert now(self.s.delete(keys)) == expected
        for k in keys:
            self.model.pop(k, None)

    @rule(start=OPT_KEY, start_after=OPT_KEY, end=OPT_KEY, prefix=st.none() | st.sampled_from(["", "a", "b", "\uffff"]),
          reverse=st.booleans(), limit=st.none() | st.integers(1, 5))
    def list(self, start, start_after, end, prefix, reverse, limit):
        kwargs = {k: v for k, v in dict(start=start, startAfter=start_after, end=end, prefix=prefix,
                                        limit=limit).items() if v is not None}
        if reverse:
            kwargs["reverse"] = True
        if start is not None and start_after is not None:
            try:
                now(self.s.list(**kwargs))
            except JsTypeError as exc:
                assert str(exc) == E.LIST_START_AND_START_AFTER
                return
            raise AssertionError("start with startAfter must fail")
        got = now(self.s.list(**kwargs))
        assert list(got.items()) == model_list(self.model, start, start_after, end, prefix, reverse, limit)

    @rule()
    def delete_all(self):
        now(self.s.deleteAll())
        self.model.clear()

    @rule(entries=st.dictionaries(KEYS, VALUES, max_size=3), deletes=st.lists(KEYS, max_size=2),
          outcome=st.sampled_from(["commit", "raise", "rollback"]))
    def transaction(self, entries, deletes, outcome):
        class Boom(Exception):
            pass

        async def closure(txn):
            await txn.put(entries) if entries else None
            for k in deletes:
                await txn.delete(k)
            seen = await txn.list()
            if outcome == "raise":
                raise Boom()
            if outcome == "rollback":
                txn.rollback()
            return seen

        after = dict(self.model)
        after.update(entries)
        for k in deletes:
            after.pop(k, None)
        if outcome == "raise":
            with pytest.raises(Boom):
                now(self.s.transaction(closure))
        else:
            seen = now(self.s.transaction(closure))
            assert dict(seen) == after, "a transaction reads its own writes"
            if outcome == "commit":
                self.model = after

    @rule()
    def commit(self):
        if self.armed and self.h.engine.in_transaction:
            with pytest.raises(JsException):
                self.h.engine.commit()
            self.armed = False
            self.model = dict(self.committed)
            return
        self.h.engine.commit()
        self.committed = dict(self.model)

    @rule()
    def crash(self):
        # Uncommitted writes are lost; a new engine on the same file sees the committed state.
        self.h.engine.close()
        self.h.open()
        self.model = dict(self.committed)
        self.armed = False

    @rule()
    def fail_next_commit(self):
        # The next commit with something to commit rolls back and raises.
        self.h.engine.fail_next_commit()
        self.armed = True

    @precondition(lambda self: not self.sqlite_backed)
    @rule(key=KEYS)
    def too_large_value_changes_nothing(self, key):
        with pytest.raises(JsRangeError):
            now(self.s.put({key: "x", "other": "y" * 140_000}))

    @invariant()
    def listing_matches(self):
        if hasattr(self, "h"):
            assert list(now(self.s.list()).items()) == model_list(self.model, None, None, None, None, False, None)


class KvBackedStorageMachine(StorageMachine):
    sqlite_backed = False


_machine_settings = settings(max_examples=40, stateful_step_count=30, deadline=None,
                             suppress_health_check=[HealthCheck.too_slow])
TestSqliteBackedStorage = StorageMachine.TestCase
TestSqliteBackedStorage.settings = _machine_settings
TestKvBackedStorage = KvBackedStorageMachine.TestCase
TestKvBackedStorage.settings = _machine_settings


# --- values --------------------------------------------------------------------------------------

ROUND_TRIP = [
    {"a": 1, "nested": {"list": [1, "two", None]}},
    [1, [2, [3]], {"k": b"\x00\xff"}],
    "",
    "héllo \U0001F600",
    b"\x00\x01\xfe\xff",
    0,
    -(2**53),
    2**80,
    -(2**100),
    1.5,
    float("inf"),
    True,
    False,
    None,
    datetime(2026, 11, 27, 18, 4, 2, 123000, tzinfo=timezone.utc),
]


@pytest.mark.parametrize("value", ROUND_TRIP, ids=repr)
async def test_values_round_trip(h, value):
    await h.storage.put("k", value)
    got = await h.storage.get("k")
    assert got == value
    assert type(got) is type(value) or (type(value) is dict and isinstance(got, dict))
    h.engine.commit()
    h.engine.close()
    h.open()
    assert await h.storage.get("k") == value


async def test_aware_datetime_keeps_its_instant(h):
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=5)))
    await h.storage.put("d", when)
    assert await h.storage.get("d") == when


@pytest.mark.parametrize("value", [(1, 2), {1, 2}, frozenset(), object(), datetime(2026, 1, 1), {1: "int key"}],
                         ids=["tuple", "set", "frozenset", "object", "naive-datetime", "int-dict-key"])
async def test_values_that_cannot_be_cloned_are_type_errors(h, value):
    await h.storage.put("k", "old")
    with pytest.raises(TypeError) as info:
        await h.storage.put("k", value)
    assert isinstance(info.value, DataCloneError)
    with pytest.raises(TypeError):
        await h.storage.put({"k": "new", "bad": value})
    assert await h.storage.get("k") == "old"


async def test_cyclic_values_are_refused(h):
    cycle: list = []
    cycle.append(cycle)
    with pytest.raises(TypeError):
        await h.storage.put("k", cycle)


async def test_returned_and_stored_objects_are_independent(h):
    original = {"items": [1, 2]}
    await h.storage.put("k", original)
    original["items"].append(3)
    first = await h.storage.get("k")
    first["items"].append(99)
    first["new"] = True
    assert await h.storage.get("k") == {"items": [1, 2]}
    listed = await h.storage.list()
    listed["k"]["items"].clear()
    assert (await h.storage.get(["k"]))["k"] == {"items": [1, 2]}


async def test_dicts_come_back_with_attribute_access(h):
    await h.storage.put("k", {"name": "x", "keys": 1})
    got = await h.storage.get("k")
    assert got.name == "x" and got["keys"] == 1 and callable(got.keys)


# --- KV operations -------------------------------------------------------------------------------

async def test_get_put_delete_and_batches(h):
    s = h.storage
    assert await s.get("missing") is None
    await s.put("b", 2)
    await s.put({"a": 1, "c": 3})
    assert await s.get(["c", "missing", "a", "a"]) == {"a": 1, "c": 3}
    assert list((await s.get(["c", "a"])).keys()) == ["a", "c"]
    assert await s.delete("a") is True
    assert await s.delete("a") is False
    assert await s.delete(["b", "c", "nope", "b"]) == 2
    assert await s.list() == {}


async def test_list_is_in_utf8_byte_order(h):
    keys = ["\U00010000", "\uffff", "z", "a", "é", "", "A"]
    await h.storage.put({k: i for i, k in enumerate(keys)})
    # UTF-16 order (what JS string sort does) would put U+10000 before U+FFFF.
    assert list(await h.storage.list()) == ["", "A", "a", "z", "é", "\uffff", "\U00010000"]


async def test_list_options(h):
    s = h.storage
    await s.put({k: k for k in ["a", "ab", "abc", "abd", "b", "ba", "c"]})
    assert list(await s.list(start="ab", end="b")) == ["ab", "abc", "abd"]
    assert list(await s.list(startAfter="ab", end="b")) == ["abc", "abd"]
    assert list(await s.list(prefix="ab")) == ["ab", "abc", "abd"]
    assert list(await s.list(prefix="ab", reverse=True, limit=2)) == ["abd", "abc"]
    assert list(await s.list(prefix="ab", start="abc")) == ["abc", "abd"]
    assert list(await s.list(prefix="ab", start="b")) == []
    assert list(await s.list(prefix="a", end="ab")) == ["a"]
    assert list(await s.list(start="b", end="a")) == []
    assert list(await s.list({"prefix": "b"})) == ["b", "ba"]
    assert list(await s.list(limit=2.0)) == ["a", "ab"]


@pytest.mark.parametrize("limit", [0, -1, 0.5, "3", True])
async def test_list_limit_must_be_positive(h, limit):
    with pytest.raises(JsTypeError) as info:
        await h.storage.list(limit=limit)
    assert str(info.value) == "List limit must be positive."


async def test_list_start_and_start_after_are_exclusive(h):
    with pytest.raises(TypeError) as info:
        await h.storage.list(start="a", startAfter="b")
    assert str(info.value) == "list() cannot be called with both start and startAfter values."


async def test_put_argument_errors(h):
    with pytest.raises(JsTypeError) as info:
        await h.storage.put("k")
    assert str(info.value) == "put() called with undefined value."
    with pytest.raises(JsTypeError) as info:
        await h.storage.put({"a": 1}, 5)
    assert str(info.value) == E.PUT_OVERLOAD
    await h.storage.put({"a": 1}, {"allowUnconfirmed": True})
    assert await h.storage.get("a") == 1
    with pytest.raises(JsTypeError):
        await h.storage.get(("a",))


async def test_non_string_keys_are_coerced_like_js(h):
    await h.storage.put(1, "one")
    await h.storage.put(True, "yes")
    assert await h.storage.get("1") == "one"
    assert await h.storage.get("true") == "yes"


# --- limits --------------------------------------------------------------------------------------

async def test_kv_backed_key_limit(kvb):
    s = kvb.storage
    await s.put("k" * 2048, 1)
    for call in (lambda: s.put("k" * 2049, 1), lambda: s.get("k" * 2049), lambda: s.delete("k" * 2049),
                 lambda: s.get(["a", "é" * 1025]), lambda: s.put({"ok": 1, "k" * 2049: 1})):
        with pytest.raises(JsRangeError) as info:
            await call()
        assert str(info.value).startswith("Keys cannot be larger than 2048 bytes. A key of size ")
    with pytest.raises(ValueError) as info:
        await s.put("k" * 2049, 1)
    assert str(info.value) == "Keys cannot be larger than 2048 bytes. A key of size 2049 was provided."
    with pytest.raises(ValueError) as info:
        await s.put("é" * 1025, 1)
    assert str(info.value) == "Keys cannot be larger than 2048 bytes. A key of size 2050 was provided."
    assert list(await s.list()) == ["k" * 2048]


async def test_kv_backed_value_limit(kvb):
    s = kvb.storage
    await s.put("max", "x" * 131_000)
    with pytest.raises(JsRangeError) as info:
        await s.put("big", "x" * 140_000)
    assert str(info.value) == "Values cannot be larger than 131072 bytes. A value of size 140005 was provided."
    with pytest.raises(ValueError):
        await s.put({"fine": 1, "big": b"x" * 131_200})
    assert list(await s.list()) == ["max"]


async def test_kv_backed_pair_count_limit(kvb):
    s = kvb.storage
    await s.put({f"k{i}": i for i in range(128)})
    assert len(await s.get([f"k{i}" for i in range(128)])) == 128
    for call in (lambda: s.put({f"n{i}": i for i in range(129)}), lambda: s.get([f"k{i}" for i in range(129)]),
                 lambda: s.delete([f"k{i}" for i in range(129)])):
        with pytest.raises(JsRangeError) as info:
            await call()
        assert str(info.value) == "Maximum number of key value pairs is 128. 129 pairs were provided."
    assert len(await s.list()) == 128


async def test_sqlite_backed_limits(sq):
    s = sq.storage
    await s.put("k" * 5000, 1)
    await s.put({f"k{i}": i for i in range(300)})
    assert len(await s.get([f"k{i}" for i in range(300)])) == 300
    await s.put("two-mb", b"x" * 2_000_000)
    assert len(await s.get("two-mb")) == 2_000_000
    with pytest.raises(JsException) as info:
        await s.put({"small": 1, "huge": b"x" * 2_300_000})
    assert str(info.value) == "string or blob too big: SQLITE_TOOBIG"
    assert await s.get("small") is None


# --- transactions --------------------------------------------------------------------------------

async def test_transaction_commits_and_returns(h):
    async def closure(txn):
        await txn.put("a", 1)
        assert await txn.get("a") == 1
        return "result"

    assert await h.storage.transaction(closure) == "result"
    assert await h.storage.get("a") == 1


async def test_transaction_exception_rolls_back_and_propagates(h):
    await h.storage.put("a", "before")

    async def closure(txn):
        await txn.put("a", "during")
        await txn.put("b", 1)
        await txn.delete("a")
        raise KeyError("boom")

    with pytest.raises(KeyError):
        await h.storage.transaction(closure)
    assert await h.storage.list() == {"a": "before"}
    h.engine.commit()
    assert await h.storage.list() == {"a": "before"}


async def test_explicit_rollback_and_use_after_end(h):
    kept = {}

    async def closure(txn):
        kept["txn"] = txn
        await txn.put("a", 1)
        txn.rollback()
        txn.rollback()
        with pytest.raises(JsException) as info:
            await txn.get("a")
        assert str(info.value) == "Cannot get() on rolled back transaction"
        with pytest.raises(JsException) as info:
            await txn.put("a", 2)
        assert str(info.value) == "Cannot put() on rolled back transaction"
        return 7

    assert await h.storage.transaction(closure) == 7
    assert await h.storage.get("a") is None

    async def ok(txn):
        kept["txn"] = txn
        await txn.put("b", 1)

    await h.storage.transaction(ok)
    with pytest.raises(JsException) as info:
        await kept["txn"].list()
    assert str(info.value) == ("Cannot call list() on transaction that has already committed: did you move "
                               "`txn` outside of the closure?")


async def test_delete_all_is_refused_inside_a_transaction(h):
    async def via_txn(txn):
        await txn.deleteAll()

    async def via_storage(txn):
        await h.storage.deleteAll()

    for closure in (via_txn, via_storage):
        with pytest.raises(JsException) as info:
            await h.storage.transaction(closure)
        assert str(info.value) == "Cannot call deleteAll() within a transaction"


async def test_nested_transactions(h):
    async def inner(txn):
        await txn.put("inner", 1)
        raise ValueError()

    async def outer(txn):
        await txn.put("outer", 1)
        with pytest.raises(ValueError):
            await h.storage.transaction(inner)
        return await txn.list()

    assert await h.storage.transaction(outer) == {"outer": 1}


async def test_transaction_sync(sq):
    s = sq.storage

    def closure():
        s.kv.put("a", 1)
        s.sql.exec("CREATE TABLE t(x)")
        return "done"

    assert s.transactionSync(closure) == "done"

    def failing():
        s.kv.put("b", 2)
        s.sql.exec("INSERT INTO t VALUES (1)")
        raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        s.transactionSync(failing)
    assert s.kv.get("b") is None
    assert s.sql.exec("SELECT count(*) AS n FROM t").one() == {"n": 0}

    async def not_sync():
        return 1

    with pytest.raises(TypeError):
        s.transactionSync(not_sync)


def test_transaction_sync_needs_sqlite(kvb):
    with pytest.raises(JsException) as info:
        kvb.storage.transactionSync(lambda: None)
    assert str(info.value) == "Durable Object is not backed by SQL."


async def test_commit_waits_for_an_open_transaction(h):
    dirty_before = h.dirty

    async def closure(txn):
        await txn.put("a", 1)
        assert h.engine.commit() is False
        return 1

    await h.storage.transaction(closure)
    assert h.dirty == dirty_before + 2
    assert h.engine.commit() is True


# --- coalescing, sync ----------------------------------------------------------------------------

async def test_writes_without_await_between_share_one_transaction(h):
    s = h.storage
    before = h.dirty
    for i in range(10):
        await s.put(f"k{i}", i)
    await s.delete("k0")
    await s.setAlarm(10_000)
    assert h.dirty == before + 1
    assert await s.get("k5") == 5
    assert h.dirty == before + 1


async def test_sync_waits_through_the_hook(h):
    await h.storage.sync()
    assert h.synced == 1


# --- alarms --------------------------------------------------------------------------------------

async def test_alarm_api(h):
    s = h.storage
    assert await s.getAlarm() is None
    await s.setAlarm(1_800_000_000_000)
    assert await s.getAlarm() == 1_800_000_000_000
    await s.setAlarm(datetime(2030, 1, 1, tzinfo=timezone.utc))
    assert await s.getAlarm() == 1_893_456_000_000
    await s.setAlarm(1_800_000_000_000.9)
    assert await s.getAlarm() == 1_800_000_000_000
    await s.deleteAlarm()
    assert await s.getAlarm() is None
    await s.deleteAlarm()
    assert h.alarms == [1_800_000_000_000, 1_893_456_000_000, 1_800_000_000_000, None]
    h.engine.commit()
    await s.setAlarm(5)
    h.engine.close()
    h.open()
    assert await h.storage.getAlarm() is None, "the uncommitted alarm was lost"


@pytest.mark.parametrize("bad", [0, -5, 0.5])
async def test_set_alarm_rejects_non_positive_times(h, bad):
    with pytest.raises(TypeError) as info:
        await h.storage.setAlarm(bad)
    assert str(info.value) == "setAlarm() cannot be called with an alarm time <= 0"


@pytest.mark.parametrize("bad", [datetime(2030, 1, 1), "1000", None, float("nan"), True])
async def test_set_alarm_rejects_bad_types(h, bad):
    with pytest.raises(TypeError):
        await h.storage.setAlarm(bad)
    assert await h.storage.getAlarm() is None


async def test_alarm_in_the_past_moves_to_now(tmp_path):
    h = Harness(tmp_path, True, now_ms=lambda: 5_000)
    try:
        await h.storage.setAlarm(1_000)
        assert await h.storage.getAlarm() == 5_000
        assert h.alarms == [5_000]
    finally:
        h.engine.close()


async def test_delete_all_deletes_the_alarm(h):
    await h.storage.put("a", 1)
    await h.storage.setAlarm(99_999)
    await h.storage.deleteAll()
    assert await h.storage.getAlarm() is None
    assert await h.storage.list() == {}
    assert h.alarms == [99_999, None]


async def test_transaction_rollback_restores_the_alarm(h):
    await h.storage.setAlarm(1_000)

    async def closure(txn):
        await txn.setAlarm(2_000)
        assert await txn.getAlarm() == 2_000
        raise ValueError()

    with pytest.raises(ValueError):
        await h.storage.transaction(closure)
    assert await h.storage.getAlarm() == 1_000
    assert h.alarms == [1_000, 2_000, 1_000]


# --- storage.kv ----------------------------------------------------------------------------------

def test_sync_kv_api(sq):
    kv = sq.storage.kv
    assert kv.get("a") is None
    kv.put("b", {"x": 1})
    kv.put("a", [1])
    assert kv.get("b") == {"x": 1}
    assert [[k, v] for k, v in kv.list()] == [["a", [1]], ["b", {"x": 1}]]
    assert list(kv.list(prefix="b")) == [["b", {"x": 1}]]
    assert list(kv.list(reverse=True, limit=1)) == [["b", {"x": 1}]]
    assert kv.delete("a") is True
    assert kv.delete("a") is False
    with pytest.raises(JsTypeError):
        kv.put("c")
    with pytest.raises(JsTypeError):
        kv.list(start="a", startAfter="b")


async def test_sync_kv_and_async_kv_share_data(sq):
    sq.storage.kv.put("k", 1)
    assert await sq.storage.get("k") == 1


def test_sync_kv_needs_sqlite(kvb):
    with pytest.raises(JsException) as info:
        kvb.storage.kv.get("a")
    assert str(info.value) == "Durable Object is not backed by SQL."


async def test_storage_after_close_raises(h):
    h.engine.close()
    with pytest.raises(JsException) as info:
        await h.storage.put("a", 1)
    assert str(info.value) == E.STORAGE_CLOSED


async def test_transaction_runs_inside_the_instances_concurrency_block(tmp_path):
    calls = []

    async def block_concurrency_while(fn):
        calls.append("enter")
        try:
            return await fn()
        finally:
            calls.append("exit")

    engine = StorageEngine(tmp_path / "o.sqlite", on_dirty=lambda: None)
    storage = DurableObjectStorage(engine, sqlite_backed=True, block_concurrency_while=block_concurrency_while)
    try:
        async def closure(txn):
            calls.append("closure")
            await txn.put("a", 1)
            return 5

        assert await storage.transaction(closure) == 5
        assert calls == ["enter", "closure", "exit"]
    finally:
        engine.close()


async def test_batch_put_is_atomic_when_sqlite_refuses_an_entry(sq, monkeypatch):
    import apsw

    engine = sq.engine
    real_put = engine.kv_put

    def put_many_then_fail(pairs):
        real_put(*pairs[0])
        raise apsw.TooBigError("string or blob too big")

    monkeypatch.setattr(engine, "kv_put_many", put_many_then_fail)
    with pytest.raises(JsException) as info:
        await sq.storage.put({"a": 1, "b": 2})
    assert str(info.value) == "string or blob too big: SQLITE_TOOBIG"
    assert await sq.storage.list() == {}
    await sq.storage.put("c", 3)
    sq.engine.commit()
    assert await sq.storage.list() == {"c": 3}
