"""Key rotation and re-encryption of every stored message body (room logs, D1 rows, R2 day files).

`maintain` runs with the daily archive cron: master-key rewrap, a new data key generation once the
current one is `MESSAGE_KEY_DAYS` old (var, default 7), and re-encryption of legacy plain bodies.
`rotate_now` is the admin command (`POST /api/admin/keys/rotate`): a new data key now, and by default
every body re-encrypted with it.
"""

from __future__ import annotations


import archive
import keys
from naming import PUBLIC_ROOMS, valid_room
from store import py

__all__ = ["reencrypt", "rotate_now", "maintain", "key_days"]

DEFAULT_KEY_DAYS = 7


def key_days(env) -> int:
    try:
        days = int(str(getattr(env, "MESSAGE_KEY_DAYS", None) or DEFAULT_KEY_DAYS))
    except ValueError:
        return DEFAULT_KEY_DAYS
    return days if days >= 1 else DEFAULT_KEY_DAYS


async def _rooms(env) -> list[str]:
    """The public rooms and every room D1 holds a message of."""
    rooms = set(PUBLIC_ROOMS)
    db = getattr(env, "DB", None)
    if db is not None:
        try:
            rows = archive._rows(await db.prepare("SELECT DISTINCT room FROM messages").all())
            rooms |= {r["room"] for r in rows}
        except Exception as error:
            if "no such table" not in str(error):
                raise
    return sorted(r for r in rooms if valid_room(r))


async def reencrypt(env, everything: bool = False) -> dict:
    """Re-encrypt stored bodies with the current data key: legacy plain ones, or (`everything`) all
    not under it.  Counts per store."""
    rooms = {"rooms": 0, "resealed": 0, "unreadable": 0}
    for room in await _rooms(env):
        try:
            got = py(await env.CHAT.getByName(room).reseal(room, everything))
        except Exception as error:
            print(f"rekey: room {room} failed: {error!r}")
            continue
        rooms["rooms"] += 1 if got["resealed"] else 0
        rooms["resealed"] += got["resealed"]
        rooms["unreadable"] += got["unreadable"]
    return {"chat": rooms, "d1": await archive.reseal_d1(env, everything), "r2": await archive.reseal_r2(env, everything)}


async def rotate_now(env, reencrypt_all: bool = True) -> dict:
    """Admin rotation: wrap every data key under the current master key, start a new data key, and
    (by default) re-encrypt every body with it."""
    wrapped = await keys.rewrap(env)
    kid = await keys.rotate(env)
    out = {"current": kid, "rewrapped": wrapped["rewrapped"], "unusableKeys": wrapped["unusable"]}
    out["reencrypted"] = await reencrypt(env, everything=reencrypt_all)
    return out


async def maintain(env) -> dict:
    """The daily cron's part: rewrap under the current master key, a new data key when the current is
    old enough, legacy plain bodies re-encrypted.  Never raises: a failure (a malformed master key
    secret, D1 down) is logged and must not stop the cron's other work."""
    try:
        return await _maintain(env)
    except Exception as error:
        print(f"rekey: message key maintenance failed: {error!r}")
        return {"error": str(error)}


async def _maintain(env) -> dict:
    wrapped = await keys.rewrap(env)
    age = await keys.current_age_ms(env)
    rotated = None
    if age is None or age >= key_days(env) * 86_400_000:
        rotated = await keys.rotate(env)
    return {"rotated": rotated, "rewrapped": wrapped["rewrapped"], "reencrypted": await reencrypt(env, everything=False)}
