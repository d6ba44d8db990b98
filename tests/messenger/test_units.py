"""Unit tests of the small pure modules: receipts, room names, rate limits, emoticons, personas."""

from __future__ import annotations

from hypothesis import given, strategies as st


def test_receipt_states_only_move_forward(modules):
    r = modules["receipts"]
    assert r.advance("sent", "delivered") == "delivered"
    assert r.advance("read", "delivered") == "read"
    assert r.advance("delivered", "sent") == "delivered"
    marks, changed = r.apply_receipt(None, 3, "read", 10)
    assert changed and marks == {"delivered": 3, "read": 3}
    marks, changed = r.apply_receipt(marks, 2, "delivered", 10)
    assert not changed and r.state_of(2, marks) == "read"
    marks, changed = r.apply_receipt(marks, 99, "delivered", 10)
    assert changed and marks["delivered"] == 10  # clamped to the last assigned sequence
    assert [r.state_of(s, marks) for s in (3, 4, 11)] == ["read", "delivered", "sent"]


@given(st.lists(st.tuples(st.integers(1, 50), st.sampled_from(["delivered", "read"])), max_size=40))
def test_receipts_never_go_backwards(modules, ops):
    r = modules["receipts"]
    marks = None
    states = {s: "sent" for s in range(1, 51)}
    for seq, state in ops:
        marks, _ = r.apply_receipt(marks, seq, state, 50)
        for s in states:
            now = r.state_of(s, marks)
            assert r.rank(now) >= r.rank(states[s])
            states[s] = now
        assert marks["delivered"] >= marks["read"]


def test_room_names(modules):
    n = modules["naming"]
    assert n.dm_room("ubob", "ualice") == n.dm_room("ualice", "ubob") == "dm_ualice__ubob"
    assert n.dm_participants("dm_ualice__ubob") == ("ualice", "ubob")
    assert n.dm_participants("dm_ubob__ualice") is None  # not canonical
    assert n.dm_participants("dm_a__a") is None
    assert n.dm_participants("dm_a_b__c") is None
    assert n.may_join("general", "anyone") and n.may_join("dm_ualice__ubob", "ubob")
    assert not n.may_join("dm_ualice__ubob", "ucarol")
    assert not n.valid_room("../etc") and not n.valid_room("")


def test_rate_limit_window(modules):
    rl = modules["ratelimit"]
    record, t = None, 1_000_000
    for i in range(15):
        ok, record, _ = rl.take(record, "chat", t + i)
        assert ok
    ok, record, retry = rl.take(record, "chat", t + 100)
    assert not ok and retry == 60_000 - 100
    ok, record, _ = rl.take(record, "chat", t + 60_000)  # the first one left the window
    assert ok
    ok, record, _ = rl.take(record, "nudge", t)
    ok2, record, retry = rl.take(record, "nudge", t + 4_999)
    ok3, record, _ = rl.take(record, "nudge", t + 5_000)
    assert ok and not ok2 and retry == 1 and ok3


def test_emoticons(modules):
    e = modules["emoticons"]
    assert e.tokenize("hi :) (h)(L)") == [("text", "hi "), ("emoticon", "smile"), ("text", " "),
                                          ("emoticon", "hot"), ("emoticon", "heart")]
    assert e.tokenize(":-)") == [("emoticon", "smile")]
    table = e.table()
    assert {"code": "(H)", "image": "/emoticons/hot.svg", "label": "Hot"} in table
    from pathlib import Path

    static = Path(__file__).resolve().parents[2] / "messenger" / "static"
    for row in table:
        assert (static / row["image"].lstrip("/")).is_file(), row


def test_personas(modules):
    b = modules["bots"]
    assert len(b.PERSONAS) >= 4
    for p in b.PERSONAS:
        assert p["name"] and p["voice"] and p["presence"] in ("online", "busy", "away")
        assert p["id"].isalnum() and p["id"].islower()
    assert [p["username"] for p in b.mentioned("hey @Sage and @nova, @sage again, mail@jester.com")] == ["sage", "nova"]
