"""The wire protocol: every WebSocket frame and HTTP body the server accepts, validated by schema.

`parse_frame(text, allowed)` turns a client frame into a dict or raises `ProtocolError` whose `code`
goes back to the client in an error frame; nothing a client sends can raise anything else.
Close codes and error codes are listed here once and documented in messenger/README.md.
"""

from __future__ import annotations

import json
import re

__all__ = [
    "ProtocolError", "parse_frame", "validate", "MAX_FRAME_BYTES", "MAX_TEXT_CHARS", "CLOSE", "ERRORS",
    "CHAT_FRAMES", "PRESENCE_FRAMES", "BODIES", "PING", "PONG", "STATES", "WINKS", "error_frame", "loads",
]

MAX_FRAME_BYTES = 16 * 1024
MAX_TEXT_CHARS = 2048
MAX_CID = 64
PING = '{"type":"ping"}'
PONG = '{"type":"pong"}'
STATES = ("online", "busy", "away", "appear-offline")
WINKS = ("wave", "kiss", "laugh", "heart", "dance")

# Close codes the server uses (4000-4999 is the application range).
CLOSE = {
    "auth_failed": (4001, "authentication failed"),
    "token_expired": (4002, "access token expired"),
    "session_revoked": (4003, "session revoked"),
    "forbidden": (4004, "not a member of this room"),
    "auth_timeout": (4008, "no auth frame within 10 s"),
    "idle_timeout": (4009, "no heartbeat for 90 s"),
    "account_deleted": (4010, "account deleted"),
}

# Error codes (HTTP `error.code` and error frames' `code`) with their HTTP status.
ERRORS = {
    "bad_json": 400, "bad_request": 400, "invalid_field": 400, "unknown_type": 400, "too_large": 413,
    "not_authenticated": 401, "auth_invalid": 401, "auth_expired": 401, "bad_credentials": 401,
    "session_revoked": 401, "refresh_invalid": 401, "forbidden": 403, "not_found": 404,
    "method_not_allowed": 405, "conflict": 409, "rate_limited": 429, "quota_exceeded": 429,
    "ai_disabled": 503, "unavailable": 503, "internal": 500,
}


class ProtocolError(Exception):
    """Bad input from a client: `code` is one of ERRORS, `message` says what was wrong."""

    def __init__(self, code: str, message: str, **extra: object) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.extra = extra


def error_frame(code: str, message: str, **extra: object) -> str:
    frame = {"type": "error", "code": code, "message": message}
    frame.update(extra)
    return json.dumps(frame)


# A field spec: (python types, required, check) where check(value) returns an error text or None.
def _str(lo: int, hi: int, pattern: str | None = None):
    rx = re.compile(pattern) if pattern else None

    def check(value):
        if not lo <= len(value) <= hi:
            return f"must be {lo}..{hi} characters"
        try:
            # JSON's \ud800 escapes decode to lone surrogates, which no UTF-8 store or hash can take.
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "is not valid Unicode text (lone surrogate)"
        if rx is not None and not rx.fullmatch(value):  # match() + "$" would let "alice\n" through
            return "has an invalid format"
        return None
    return check


def _int(lo: int, hi: int):
    def check(value):
        return None if lo <= value <= hi else f"must be between {lo} and {hi}"
    return check


def _num(lo: float, hi: float):
    def check(value):
        if value != value or not lo <= value <= hi:  # (NaN is never in range)
            return f"must be between {lo} and {hi}"
        return None
    return check


def _one_of(options):
    def check(value):
        return None if value in options else "must be one of " + ", ".join(options)
    return check


_SEQ = ((int,), True, _int(0, 2 ** 53 - 1))
_OPT_SEQ = ((int,), False, _int(0, 2 ** 53 - 1))
_CID = ((str,), True, _str(1, MAX_CID, r"^[A-Za-z0-9_\-:.]+$"))
_TOKEN = ((str,), True, _str(1, 4096))

CHAT_FRAMES = {
    "auth": {"token": _TOKEN, "since": _OPT_SEQ},
    "send": {"cid": _CID, "kind": ((str,), True, _one_of(("text", "nudge", "wink"))),
             "text": ((str,), False, _str(1, MAX_TEXT_CHARS)), "wink": ((str,), False, _one_of(WINKS))},
    "typing": {},
    "receipt": {"seq": ((int,), True, _int(1, 2 ** 53 - 1)), "state": ((str,), True, _one_of(("delivered", "read")))},
    "history": {"before": _OPT_SEQ, "limit": ((int,), False, _int(1, 100))},
    "sync": {"since": _SEQ},
    "ping": {},
}

PRESENCE_FRAMES = {
    "auth": {"token": _TOKEN},
    "status": {"state": ((str,), False, _one_of(STATES)), "message": ((str,), False, _str(0, 128)),
               "name": ((str,), False, _str(1, 40))},
    "ping": {},
}

BODIES = {
    "register": {"username": ((str,), True, _str(3, 24, r"^[a-z][a-z0-9_]{2,23}$")),
                 "password": ((str,), True, _str(8, 128)), "displayName": ((str,), False, _str(1, 40))},
    "login": {"username": ((str,), True, _str(1, 64)), "password": ((str,), True, _str(1, 128))},
    "refresh": {"refreshToken": ((str,), True, _str(1, 256))},
    "logout": {"everywhere": ((bool,), False, None)},
    # Deleting one's own account asks for the password again: an access token alone is not enough.
    "delete_me": {"password": ((str,), True, _str(1, 128))},
    "status": PRESENCE_FRAMES["status"],
    # Web vitals from the web client's beacon (milliseconds; CLS is unitless).
    "rum": {"lcp": ((int, float), False, _num(0, 600_000)), "inp": ((int, float), False, _num(0, 60_000)),
            "cls": ((int, float), False, _num(0, 100))},
}


def loads(text: str, message: str) -> object:
    """json.loads whose every failure (including nesting too deep to decode) is a `bad_json` ProtocolError."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise ProtocolError("bad_json", message) from None


def validate(obj: object, schema: dict, *, where: str = "body") -> dict:
    """Check a decoded JSON object against a schema; unknown fields are refused, not ignored."""
    if not isinstance(obj, dict):
        raise ProtocolError("bad_request", f"{where} must be a JSON object")
    for name in obj:
        if name not in schema and name != "type":
            raise ProtocolError("invalid_field", f"unknown field {name!r}", field=name)
    out = {}
    for name, (types, required, check) in schema.items():
        if name not in obj or obj[name] is None:
            if required:
                raise ProtocolError("invalid_field", f"{name!r} is required", field=name)
            continue
        value = obj[name]
        # bool is an int in Python; JSON true must not pass as a sequence number.
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise ProtocolError("invalid_field", f"{name!r} has the wrong type", field=name)
        problem = check(value) if check is not None else None
        if problem:
            raise ProtocolError("invalid_field", f"{name!r} {problem}", field=name)
        out[name] = value
    return out


def parse_frame(message: object, allowed: dict) -> dict:
    """Decode and validate one client frame; the result always has a valid "type"."""
    if isinstance(message, (bytes, bytearray)):
        raise ProtocolError("bad_request", "binary frames are not supported")
    if not isinstance(message, str):
        raise ProtocolError("bad_request", "frames must be text")
    if len(message.encode("utf-8", "surrogatepass")) > MAX_FRAME_BYTES:
        raise ProtocolError("too_large", f"frames are limited to {MAX_FRAME_BYTES} bytes")
    obj = loads(message, "frame is not valid JSON")
    if not isinstance(obj, dict):
        raise ProtocolError("bad_request", "frame must be a JSON object")
    kind = obj.get("type")
    if not isinstance(kind, str) or kind not in allowed:
        raise ProtocolError("unknown_type", f"unknown frame type {kind!r}" if isinstance(kind, str) else "frame has no type")
    frame = validate(obj, allowed[kind], where=f"{kind} frame")
    frame["type"] = kind
    if kind == "send":
        if frame["kind"] == "text" and "text" not in frame:
            raise ProtocolError("invalid_field", "'text' is required for a text message", field="text")
        if frame["kind"] == "wink" and "wink" not in frame:
            raise ProtocolError("invalid_field", "'wink' is required for a wink", field="wink")
        if frame["kind"] == "text" and not frame["text"].strip():
            raise ProtocolError("invalid_field", "'text' must not be blank", field="text")
    return frame
