"""Unit tests of frame and body validation (messenger/protocol.py)."""

from __future__ import annotations

import json

import pytest


@pytest.fixture
def protocol(modules):
    return modules["protocol"]


def _err(protocol, message, frames=None):
    with pytest.raises(protocol.ProtocolError) as e:
        protocol.parse_frame(message, frames or protocol.CHAT_FRAMES)
    return e.value.code


def test_valid_frames(protocol):
    f = protocol.parse_frame('{"type":"send","cid":"c-1","kind":"text","text":"hi (H)"}', protocol.CHAT_FRAMES)
    assert f == {"type": "send", "cid": "c-1", "kind": "text", "text": "hi (H)"}
    assert protocol.parse_frame('{"type":"auth","token":"t","since":3}', protocol.CHAT_FRAMES)["since"] == 3
    assert protocol.parse_frame('{"type":"receipt","seq":4,"state":"read"}', protocol.CHAT_FRAMES)["state"] == "read"
    assert protocol.parse_frame('{"type":"status","state":"busy"}', protocol.PRESENCE_FRAMES)["state"] == "busy"


@pytest.mark.parametrize("message,code", [
    ("not json", "bad_json"),
    ("[1,2]", "bad_request"),
    (b"bytes", "bad_request"),
    ('{"kind":"text"}', "unknown_type"),
    ('{"type":"explode"}', "unknown_type"),
    ('{"type":"send","cid":"c","kind":"text"}', "invalid_field"),
    ('{"type":"send","cid":"c","kind":"text","text":"   "}', "invalid_field"),
    ('{"type":"send","cid":"c","kind":"shout","text":"x"}', "invalid_field"),
    ('{"type":"send","cid":"bad cid!","kind":"text","text":"x"}', "invalid_field"),
    ('{"type":"send","cid":"c","kind":"wink"}', "invalid_field"),
    ('{"type":"send","cid":"c","kind":"text","text":"x","extra":1}', "invalid_field"),
    ('{"type":"receipt","seq":true,"state":"read"}', "invalid_field"),
    ('{"type":"receipt","seq":0,"state":"read"}', "invalid_field"),
    ('{"type":"receipt","seq":1,"state":"sent"}', "invalid_field"),
    ('{"type":"sync","since":-1}', "invalid_field"),
    ('{"type":"history","limit":1000}', "invalid_field"),
])
def test_bad_frames_get_codes(protocol, message, code):
    assert _err(protocol, message) == code


def test_text_limit_is_2048_characters(protocol):
    ok = json.dumps({"type": "send", "cid": "c", "kind": "text", "text": "é" * 2048})
    assert protocol.parse_frame(ok, protocol.CHAT_FRAMES)["text"] == "é" * 2048
    too_long = json.dumps({"type": "send", "cid": "c", "kind": "text", "text": "a" * 2049})
    assert _err(protocol, too_long) == "invalid_field"
    huge = json.dumps({"type": "send", "cid": "c", "kind": "text", "text": "a" * 20000})
    assert _err(protocol, huge) == "too_large"


def test_bodies(protocol):
    assert protocol.validate({"username": "zed_1", "password": "12345678"}, protocol.BODIES["register"])
    for bad in ({"username": "Zed", "password": "12345678"}, {"username": "zed", "password": "short"},
                {"username": "zed", "password": 12345678}, "nope", {"username": "zed", "password": "12345678", "admin": True}):
        with pytest.raises(protocol.ProtocolError):
            protocol.validate(bad, protocol.BODIES["register"])


def test_close_codes_are_application_range_and_short(protocol):
    codes = [c for c, _ in protocol.CLOSE.values()]
    assert len(set(codes)) == len(codes)
    for code, reason in protocol.CLOSE.values():
        assert 4000 <= code <= 4999 and len(reason.encode()) <= 123
