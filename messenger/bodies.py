"""The one place message bodies are written and read, so an encryption layer can wrap all of them.

Today a sealed body is the content itself, tagged with the scheme ("plain"); a later AES-256-GCM
envelope (`{"scheme": "aesgcm", "kid": ..., "ct": ...}`) replaces `seal_body`/`open_body` only.
"""

from __future__ import annotations

__all__ = ["seal_body", "open_body"]


def seal_body(content: dict) -> dict:
    """What gets stored for a message's content (text, wink name)."""
    fields = {k: v for k, v in content.items() if k in ("text", "wink")}
    return {"scheme": "plain", "v": fields}


def open_body(body: dict) -> dict:
    if body.get("scheme") != "plain":
        raise ValueError(f"unknown body scheme {body.get('scheme')!r}")
    return dict(body.get("v", {}))
