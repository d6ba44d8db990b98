"""Room names: public rooms and direct-message rooms `dm_<a>__<b>` (user ids sorted)."""

from __future__ import annotations

import re

__all__ = ["PUBLIC_ROOMS", "dm_room", "dm_participants", "is_public", "valid_room", "may_join"]

PUBLIC_ROOMS = {"general": "General", "music": "Music"}
# User ids are [a-z0-9] only (no underscore), so the "__" separator is unambiguous.
_DM = re.compile(r"^dm_([a-z0-9]{1,40})__([a-z0-9]{1,40})$")


def dm_room(a: str, b: str) -> str:
    """The DM room of two users, the same whoever asks."""
    if a == b:
        raise ValueError("a direct-message room needs two different users")
    x, y = sorted((a, b))
    return f"dm_{x}__{y}"


def dm_participants(room: str) -> tuple[str, str] | None:
    """The two user ids of a DM room name, or None when it is not a well-formed DM room."""
    m = _DM.match(room or "")
    if not m:
        return None
    a, b = m.group(1), m.group(2)
    if a >= b:  # not in canonical (sorted, distinct) form
        return None
    return a, b


def is_public(room: str) -> bool:
    return room in PUBLIC_ROOMS


def valid_room(room: str) -> bool:
    return is_public(room) or dm_participants(room) is not None


def may_join(room: str, user_id: str) -> bool:
    """Anyone may join a public room; only the two participants may join or read a DM."""
    if is_public(room):
        return True
    pair = dm_participants(room)
    return pair is not None and user_id in pair
