"""Durable Object ids, derived as workerd derives them.

key = SHA-256("<script name>-<class name>"); an id is 16 bytes (HMAC of the name, or random for
`newUniqueId`) followed by the first 16 bytes of HMAC(key, those 16 bytes), written as 64 hex
digits.  The trailing MAC is how `idFromString` tells an id of this namespace from any other.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re

from ..errors import JsTypeError

__all__ = ["DurableObjectId", "namespace_key", "id_from_name", "new_unique_id", "id_from_string",
           "ID_NOT_HEX", "ID_WRONG_NAMESPACE"]

ID_NOT_HEX = "Invalid Durable Object ID: must be 64 hex digits"
ID_WRONG_NAMESPACE = "Invalid Durable Object ID: ID is not valid for this namespace."
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def namespace_key(script_name: str, class_name: str) -> bytes:
    """The key a Durable Object namespace derives its ids under, from "<worker>-<Class>" as workerd does."""
    return hashlib.sha256(f"{script_name}-{class_name}".encode()).digest()


def _mac(key: bytes, first16: bytes) -> bytes:
    return hmac.new(key, first16, hashlib.sha256).digest()[:16]


class DurableObjectId:
    """`DurableObjectId`: `toString()`, `name` (only for ids made from a name), `equals()`."""

    __slots__ = ("_hex", "name", "_key")

    def __init__(self, hex_id: str, key: bytes, name: str | None = None) -> None:
        self._hex = hex_id
        self._key = key
        self.name = name

    def toString(self) -> str:
        return self._hex

    def equals(self, other: DurableObjectId) -> bool:
        return isinstance(other, DurableObjectId) and other._hex == self._hex

    @property
    def namespace_key(self) -> bytes:
        return self._key

    def __str__(self) -> str:
        return self._hex

    def __repr__(self) -> str:
        return f"DurableObjectId({self._hex!r}{', name=' + repr(self.name) if self.name else ''})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DurableObjectId) and other._hex == self._hex

    def __hash__(self) -> int:
        return hash(self._hex)


def id_from_name(key: bytes, name: str) -> DurableObjectId:
    """`DurableObjectNamespace.idFromName`: the same name always gives the same id."""
    if not isinstance(name, str):
        raise JsTypeError(f"idFromName() takes a string, not {type(name).__name__}.")
    first = hmac.new(key, name.encode(), hashlib.sha256).digest()[:16]
    return DurableObjectId((first + _mac(key, first)).hex(), key, name)


def new_unique_id(key: bytes) -> DurableObjectId:
    """`DurableObjectNamespace.newUniqueId`: a random id valid only for this namespace."""
    first = os.urandom(16)
    return DurableObjectId((first + _mac(key, first)).hex(), key)


def id_from_string(key: bytes, value: str) -> DurableObjectId:
    """`DurableObjectNamespace.idFromString`: checks the 64 hex digits and that the id is this namespace's."""
    if not isinstance(value, str) or not _HEX64.match(value):
        raise JsTypeError(ID_NOT_HEX)
    raw = bytes.fromhex(value)
    if not hmac.compare_digest(raw[16:], _mac(key, raw[:16])):
        raise JsTypeError(ID_WRONG_NAMESPACE)
    return DurableObjectId(value, key)
