"""Analytics Engine events, private by construction: no user id, name or text ever leaves here.

A per-user dimension is a keyed hash (HMAC-SHA256 under ANALYTICS_KEY), so deleting a user never
requires rewriting analytics, and the dataset alone cannot be joined back to accounts.
"""

from __future__ import annotations

import hashlib
import hmac

from js import Object
from pyodide.ffi import to_js

__all__ = ["EVENTS", "keyed_hash", "secret_key", "emit"]

EVENTS = ("login_success", "login_failure", "message_sent", "ai_invocation", "rate_limited",
          "ws_connect", "ws_disconnect", "delivery_latency", "token_refresh", "session_revoked", "account_deleted", "rum")
_DEFAULT_KEY = "cf-messenger-local-analytics-key"
_warned: set = set()


def secret_key(env, name: str, default: str) -> str:
    """The secret `name`, or the public local `default` with a warning (once per isolate): keyed hashes
    under a key everyone knows can be reversed (an IPv4 address by trying them all, a search term by
    trying a dictionary), so production must set the secret."""
    value = getattr(env, name, None)
    if value:
        return str(value)
    if name not in _warned:
        _warned.add(name)
        print(f"messenger: {name} is not set: its public LOCAL DEVELOPMENT default is used, so its keyed "
              "hashes can be reversed; set the secret in production")
    return default


def keyed_hash(env, value: str) -> str:
    """16 hex chars of HMAC(ANALYTICS_KEY, value): stable per user, useless without the key."""
    key = secret_key(env, "ANALYTICS_KEY", _DEFAULT_KEY)
    return hmac.new(str(key).encode(), value.encode(), hashlib.sha256).hexdigest()[:16]


def emit(env, event: str, *, blobs: tuple = (), doubles: tuple = (), user: str | None = None) -> None:
    """Write one data point: blob1 = event, then the given blobs (never identities or text).

    index1 is the keyed hash of `user` when given (sampling key), else the event name.
    """
    if event not in EVENTS:
        raise ValueError(f"unknown analytics event {event!r}")
    dataset = getattr(env, "ANALYTICS", None)
    if dataset is None:
        return
    index = keyed_hash(env, user) if user else event
    point = {"indexes": [index], "blobs": [event, *[str(b) for b in blobs]], "doubles": [float(d) for d in doubles]}
    try:
        dataset.writeDataPoint(to_js(point, dict_converter=Object.fromEntries))
    except Exception as error:  # analytics must never break chat
        print(f"analytics: dropped {event}: {error}")
