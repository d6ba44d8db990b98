"""Structured-clone values (cfemu.values): what crosses RPC, storage and attachments."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cfemu.values import DataCloneError, clone, deserialize, serialize

NESTED_TOO_DEEP = "value: nested too deeply to be cloned."

_leaves = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text() | st.binary() | \
    st.datetimes(timezones=st.just(timezone.utc), min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30))
_values = st.recursive(_leaves, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
                       max_leaves=20)


@given(_values)
def test_every_accepted_value_round_trips(value):
    assert deserialize(serialize(value)) == value


def test_a_deeply_nested_value_is_a_clone_error_not_a_recursion_error():
    # Was: RecursionError (a traceback) from the checker.
    deep: list = []
    cur = deep
    for _ in range(5000):
        nxt: list = []
        cur.append(nxt)
        cur = nxt
    with pytest.raises(DataCloneError) as info:
        serialize(deep)
    assert str(info.value) == NESTED_TOO_DEEP
    with pytest.raises(DataCloneError):
        clone({"a": deep})


@pytest.mark.parametrize("value, message", [
    ((1, 2), "value: tuples cannot be cloned (the Workers SDK rejects them); use a list."),
    ({1: "a"}, "value: dict keys must be str, got int 1."),
    ({"s": {1}}, "value['s']: sets cannot be cloned; use a list."),
    (datetime(2026, 1, 1), "value: a naive datetime cannot be cloned; give it a timezone (e.g. timezone.utc)."),
])
def test_refused_values_name_the_problem(value, message):
    with pytest.raises(TypeError) as info:
        serialize(value)
    assert str(info.value) == message
