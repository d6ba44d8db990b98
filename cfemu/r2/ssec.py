"""SSE-C for R2 (`ssecKey`): bodies stored encrypted with the customer's AES-256 key.

cfemu keeps the key nowhere: a row records the key's MD5 (to tell a wrong key from the right one, and
for `ssecKeyMd5`) and the random counter block the body was encrypted from.  AES-256 in CTR mode lets
a ranged read decrypt from any offset.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any, Callable

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ..errors import JsException, JsTypeError
from .errors import SSEC_FORMAT, SSEC_LENGTH

__all__ = ["parse_key", "key_md5", "new_encryption", "DecryptingFile"]

_HEX = frozenset("0123456789abcdef")


def parse_key(options: dict[str, Any]) -> bytes | None:
    """`options["ssecKey"]` checked as workerd checks it (64 lower-case hex characters or 32 bytes)."""
    key = options.get("ssecKey")
    if key is None:
        return None
    if isinstance(key, str):
        if not key or not _HEX.issuperset(key):
            raise JsException(SSEC_FORMAT)
        if len(key) != 64:
            raise JsException(SSEC_LENGTH)
        return bytes.fromhex(key)
    if isinstance(key, (bytes, bytearray, memoryview)):
        key = bytes(key)
        if len(key) != 32:
            raise JsException(SSEC_LENGTH)
        return key
    raise JsTypeError("ssecKey must be a hex string or bytes.")


def key_md5(key: bytes) -> str:
    """The key's identity as R2 reports it in `ssecKeyMd5`."""
    return hashlib.md5(key).hexdigest()


def _cipher(key: bytes, iv: bytes, offset: int) -> Any:
    counter = (int.from_bytes(iv, "big") + offset // 16) % (1 << 128)
    cipher = Cipher(algorithms.AES(key), modes.CTR(counter.to_bytes(16, "big"))).encryptor()
    cipher.update(bytes(offset % 16))  # drop the keystream before `offset` in its block
    return cipher


def new_encryption(key: bytes) -> tuple[dict[str, str], Callable[[bytes], bytes]]:
    """(what the row records, a chunk encryptor) for a new body."""
    iv = secrets.token_bytes(16)
    return {"keyMd5": key_md5(key), "iv": iv.hex()}, _cipher(key, iv, 0).update


class DecryptingFile:
    """A stored body read back in clear: `seek`/`read`/`close` like the file it wraps."""

    def __init__(self, file: Any, key: bytes, iv_hex: str) -> None:
        self._file = file
        self._key = key
        self._iv = bytes.fromhex(iv_hex)
        self._cipher = _cipher(key, self._iv, 0)

    def seek(self, offset: int) -> None:
        self._file.seek(offset)
        self._cipher = _cipher(self._key, self._iv, offset)

    def read(self, size: int = -1) -> bytes:
        return self._cipher.update(self._file.read(size))

    def close(self) -> None:
        self._file.close()

    @property
    def closed(self) -> bool:
        return self._file.closed
