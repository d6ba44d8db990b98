"""WebSocketPair semantics as workerd gives them: accept before send, close codes and reasons, ordering."""

from __future__ import annotations

import asyncio
import logging

import pytest

from cfemu.errors import JsTypeError
from cfemu.websocket import (ACCEPT_FIRST, CLOSED, CLOSED_SEND, CLOSING, OPEN, WebSocketPair,
                             WebSocketRequestResponsePair)


def _pair(accept: bool = True):
    client, server = WebSocketPair.new().object_values()
    got = {"client": [], "server": []}
    for name, end in (("client", client), ("server", server)):
        end.addEventListener("message", lambda ev, n=name: got[n].append(("message", ev.data)))
        end.addEventListener("close", lambda ev, n=name: got[n].append(("close", ev.code, ev.reason, ev.wasClean)))
        if accept:
            end.accept()
    return client, server, got


async def _turns(n: int = 3) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


def test_accept_first_text():
    assert ACCEPT_FIRST == "You must call one of accept() or state.acceptWebSocket() on this WebSocket before sending messages."
    assert CLOSED_SEND == "Can't call WebSocket send() after close()."


async def test_messages_cross_on_a_later_turn_in_order():
    client, server, got = _pair()
    client.send("one")
    client.send(b"\x00two")
    client.send(bytearray(b"three"))
    assert got["server"] == []  # never delivered synchronously
    await _turns()
    assert got["server"] == [("message", "one"), ("message", b"\x00two"), ("message", b"three")]
    server.send("back")
    await _turns()
    assert got["client"] == [("message", "back")]


async def test_send_and_close_need_accept():
    client, server = WebSocketPair.new().object_values()
    for action in (lambda: server.send("x"), lambda: server.close(1000, "bye")):
        with pytest.raises(JsTypeError) as info:
            action()
        assert str(info.value) == ACCEPT_FIRST


async def test_messages_wait_for_the_receiver_to_accept():
    client, server = WebSocketPair.new().object_values()
    client.accept()
    client.send("early")
    client.send("later")
    await _turns()
    seen = []
    server.addEventListener("message", lambda ev: seen.append(ev.data))
    assert seen == []
    server.accept()
    assert seen == ["early", "later"]


@pytest.mark.parametrize("code", [1000, 1001, 1003, 1007, 1011, 1014, 1016, 2000, 2999, 3000, 4000, 4999])
async def test_valid_close_codes(code):
    client, server, got = _pair()
    server.close(code, "r")
    await _turns()
    assert got["client"] == [("close", code, "r", True)]


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 5000, 65535, True, 1000.0, "1000"])
async def test_invalid_close_codes(code):
    client, server, got = _pair()
    with pytest.raises(JsTypeError) as info:
        server.close(code)
    assert str(info.value) == f"Invalid WebSocket close code: {code}."
    assert server.readyState == OPEN  # nothing was sent
    server.send("still open")


async def test_close_reason_rules():
    client, server, got = _pair()
    with pytest.raises(JsTypeError) as info:
        server.close(None, "why")
    assert str(info.value) == "If you specify a WebSocket close reason, you must also specify a code."
    with pytest.raises(JsTypeError) as info:
        server.close(1000, "é" * 62)  # 124 bytes
    assert str(info.value) == "Reason too long."
    reason = "é" * 61 + "a"  # exactly 123 bytes
    assert len(reason.encode()) == 123
    server.close(1000, reason)
    await _turns()
    assert got["client"] == [("close", 1000, reason, True)]


async def test_close_handshake_and_ready_states():
    client, server, got = _pair()
    server.close(4001, "bye")
    assert server.readyState == CLOSING
    with pytest.raises(JsTypeError) as info:
        server.send("after")
    assert str(info.value) == CLOSED_SEND
    server.close(1000, "second close is ignored")
    await _turns()
    assert got["client"] == [("close", 4001, "bye", True)]
    assert client.readyState == CLOSED  # it answered the close
    assert got["server"] == [("close", 4001, "bye", True)]
    assert server.readyState == CLOSED


async def test_close_without_code_arrives_as_1005():
    client, server, got = _pair()
    client.close()
    await _turns()
    assert got["server"] == [("close", 1005, "", True)]


async def test_a_dropped_connection_is_1006_not_clean():
    client, server, got = _pair()
    client._disconnect()
    await _turns()
    assert got["server"] == [("close", 1006, "", False)]


async def test_send_rejects_other_types():
    client, server, got = _pair()
    with pytest.raises(JsTypeError) as info:
        server.send({"a": 1})
    assert str(info.value) == "WebSocket send() takes str or bytes, not dict."


async def test_listener_errors_are_logged_and_async_listeners_run(caplog):
    client, server = WebSocketPair.new().object_values()
    done = asyncio.Event()

    def broken(ev):
        raise RuntimeError("listener boom")

    async def async_listener(ev):
        await asyncio.sleep(0)
        done.set()

    server.addEventListener("message", broken)
    server.addEventListener("message", async_listener)
    server.accept()
    client.accept()
    with caplog.at_level(logging.ERROR, logger="cfemu.websocket"):
        client.send("x")
        await asyncio.wait_for(done.wait(), 1)
    assert "listener boom" in caplog.text


async def test_remove_event_listener():
    client, server = WebSocketPair.new().object_values()
    seen = []
    listener = seen.append
    server.addEventListener("message", listener)
    server.removeEventListener("message", listener)
    server.accept()
    client.accept()
    client.send("x")
    await _turns()
    assert seen == []


def test_pair_unpacks_like_the_sdk():
    pair = WebSocketPair.new()
    client, server = pair.object_values()
    assert (pair[0], pair[1]) == (client, server)
    assert list(pair) == [client, server]
    assert client is not server


def test_request_response_pair_holds_strings_and_defers_size_checks():
    pair = WebSocketRequestResponsePair.new("ping", "pong")
    assert (pair.request, pair.response) == ("ping", "pong")
    # workerd checks the 2048-byte limits in setWebSocketAutoResponse() (tests/durable/test_review_websockets.py)
    assert WebSocketRequestResponsePair("x" * 2049, "pong").request == "x" * 2049
    with pytest.raises(TypeError):
        WebSocketRequestResponsePair(b"ping", "pong")
