"""`cfemu.kv.jsjson`: numbers written as V8 writes them (metadata is measured in those bytes)."""

from __future__ import annotations

import json
import math
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cfemu.kv.jsjson import js_number, parse, stringify

# What (x).toString() prints in V8.
KNOWN = {
    1e-7: "1e-7", 1.5e-7: "1.5e-7", 1e-6: "0.000001", 1e21: "1e+21", 1e20: "100000000000000000000",
    123.456: "123.456", 2.0: "2", -0.0: "0", 0.1: "0.1", 5e-324: "5e-324", -3.5: "-3.5",
    1.7976931348623157e308: "1.7976931348623157e+308", 1.2345678901234568e20: "123456789012345680000",
}
_JS_SHAPE = re.compile(r"-?(0|[1-9]\d*)(\.\d*[1-9])?|-?0\.0{0,5}[1-9]\d*|-?[1-9](\.\d*[1-9])?e[+-][1-9]\d*")


@pytest.mark.parametrize("value,text", KNOWN.items())
def test_known_numbers(value, text):
    assert js_number(value) == text


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_every_double_round_trips_in_javascript_form(x):
    text = js_number(x)
    assert _JS_SHAPE.fullmatch(text), text
    assert float(text) == x or (x == 0 and float(text) == 0)


@given(st.recursive(st.none() | st.booleans() | st.integers(-2**53 + 1, 2**53 - 1) | st.text()
                    | st.floats(allow_nan=False, allow_infinity=False),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
                    max_leaves=20))
def test_stringify_is_json_that_reads_back(value):
    text = stringify(value)
    text.encode("utf-8")  # always valid UTF-8, lone surrogates escaped
    back = parse(text)

    def same(a, b):
        if isinstance(a, float) or isinstance(b, float):
            return math.isclose(a, b, rel_tol=0, abs_tol=0) or a == b
        if isinstance(a, dict):
            return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
        if isinstance(a, list):
            return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
        return a == b

    assert same(value, back)
    assert json.loads(text) is not None or value is None
