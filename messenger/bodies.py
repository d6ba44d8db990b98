"""The one place message bodies are written and read: AES-256-GCM envelopes.

A sealed body is `{"scheme": "aesgcm", "kid": <data key id>, "n": <nonce, base64>, "ct": <ciphertext
and tag, base64>, "v": 2}`.  The plaintext is the JSON of the content fields (text, wink name); the
associated data binds it to its room, sequence number, message id, author and kind, so a ciphertext
copied onto another message (or another room), or a message handed to another author, does not open.
Bodies without "v" (sealed before the author was bound) use the v1 associated data (room, seq, id);
the label differs, so a v2 body relabelled v1 does not open either.  `{"scheme": "plain", "v": {...}}` bodies written before encryption
still open; `needs_reseal` tells the re-encryption which bodies to rewrite.
"""

from __future__ import annotations

import base64
import json
import os

from keys import KeyError_, Keyring

__all__ = ["seal_body", "open_body", "kid_of", "needs_reseal", "BodyError", "UNREADABLE"]

SCHEME = "aesgcm"
UNREADABLE = "this message cannot be decrypted"


class BodyError(ValueError):
    """A stored body that does not open (tampered, moved to another message, key missing, unknown scheme)."""


def _aad(room: str, seq: int, mid: str, sender=None, kind=None, version: int = 1) -> bytes:
    if version == 2:
        parts = ["cf-messenger body v2", str(room), int(seq), str(mid), sender, kind]
    else:
        parts = ["cf-messenger body v1", str(room), int(seq), str(mid)]
    return json.dumps(parts, separators=(",", ":")).encode()


def seal_body(content: dict, ring: Keyring, room: str, seq: int, mid: str, sender=None, kind=None) -> dict:
    """What gets stored for a message's content (text, wink name): sealed with the current data key,
    bound to its room, seq and id and (when given, as every store does) its author and kind."""
    fields = {k: v for k, v in content.items() if k in ("text", "wink")}
    kid = ring.current
    if kid is None:
        raise KeyError_("no current data key")
    nonce = os.urandom(12)
    plain = json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass")
    bound = sender is not None or kind is not None
    ct = ring.aead(kid).encrypt(nonce, plain, _aad(room, seq, mid, sender, kind, 2 if bound else 1))
    out = {"scheme": SCHEME, "kid": kid, "n": base64.b64encode(nonce).decode(), "ct": base64.b64encode(ct).decode()}
    if bound:
        out["v"] = 2
    return out


def open_body(body: dict, ring: Keyring | None, room: str, seq: int, mid: str, sender=None, kind=None) -> dict:
    """The content fields of a stored body; BodyError when it does not open (a v2 body only with the
    author and kind it was sealed with)."""
    if not isinstance(body, dict):
        raise BodyError("message body is not an object")
    scheme = body.get("scheme")
    if scheme == "plain":
        fields = body.get("v", {})
        if not isinstance(fields, dict):
            raise BodyError("message body (plain) is not an object")
        return dict(fields)
    if scheme != SCHEME:
        raise BodyError(f"unknown body scheme {scheme!r}")
    kid = body.get("kid")
    try:
        aead = ring.aead(kid) if ring is not None else None
        if aead is None:
            raise KeyError_("no keyring")
        nonce, ct = base64.b64decode(body["n"], validate=True), base64.b64decode(body["ct"], validate=True)
        version = 2 if body.get("v") == 2 else 1
        plain = aead.decrypt(nonce, ct, _aad(room, seq, mid, sender, kind, version))
    except KeyError_ as error:
        raise BodyError(f"message {room}#{seq} cannot be decrypted: {error}") from None
    except Exception:
        raise BodyError(f"message {room}#{seq} cannot be decrypted with key {kid!r}: the ciphertext was "
                        "altered or belongs to another message") from None
    fields = json.loads(plain.decode("utf-8", "surrogatepass"))
    return fields if isinstance(fields, dict) else {}


def kid_of(body) -> str | None:
    return body.get("kid") if isinstance(body, dict) else None


def needs_reseal(body, current: str | None, everything: bool) -> bool:
    """Whether the re-encryption rewrites `body`: a legacy plain one always, one under an older data
    key when `everything`."""
    if not isinstance(body, dict):
        return False
    if body.get("scheme") == "plain":
        return True
    return everything and body.get("scheme") == SCHEME and body.get("kid") != current
