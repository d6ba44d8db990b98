"""Opens sealed message bodies from outside the worker (an independent reading of the envelope format):
data keys from D1 `message_keys`, unwrapped with the master key, bodies decrypted with AES-256-GCM."""

from __future__ import annotations

import base64
import hashlib
import json

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

DEV_MASTER = hashlib.sha256(b"cf-messenger local development master key (not secret)").digest()


async def data_keys(rt, master: bytes = DEV_MASTER) -> dict[str, bytes]:
    rows = (await rt.env.DB.prepare("SELECT kid, wrapped FROM message_keys").all()).results
    out = {}
    for row in rows:
        raw = base64.b64decode(row["wrapped"])
        out[row["kid"]] = AESGCM(master).decrypt(raw[:12], raw[12:], b"cf-messenger data key:" + row["kid"].encode())
    return out


def open_sealed(body: dict, dks: dict[str, bytes], room: str, seq: int, mid: str, sender=None, kind=None) -> dict:
    assert body["scheme"] == "aesgcm", body
    if body.get("v") == 2:  # bound to the author and kind too
        aad = json.dumps(["cf-messenger body v2", room, seq, mid, sender, kind], separators=(",", ":")).encode()
    else:
        aad = json.dumps(["cf-messenger body v1", room, seq, mid], separators=(",", ":")).encode()
    plain = AESGCM(dks[body["kid"]]).decrypt(base64.b64decode(body["n"]), base64.b64decode(body["ct"]), aad)
    return json.loads(plain)


async def opened_lines(rt, text: str) -> list[dict]:
    """An NDJSON day file's lines with their bodies opened."""
    dks = await data_keys(rt)
    out = []
    for raw in text.splitlines():
        line = json.loads(raw)
        body = line.pop("body")
        out.append({**line, **open_sealed(body, dks, line["room"], line["seq"], line["id"], line["from"], line["kind"])})
    return out


async def opened_rows(rt, rows: list[dict]) -> list[dict]:
    """D1 `messages` rows with their bodies opened."""
    dks = await data_keys(rt)
    return [{**r, **open_sealed(json.loads(r["body"]), dks, r["room"], r["seq"], r["id"], r["sender"], r["kind"])}
            for r in rows]
