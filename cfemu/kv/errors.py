"""Workers KV limits and error texts, as workerd (client side) and the KV API (server side) give them.

workerd checks key names itself (TypeErrors) and wraps every failed call to the KV service as
``KV <METHOD> failed: <status> <text>``; the texts after the status are the service's, taken from
Miniflare's validator where production's are not documented.
"""

from __future__ import annotations

from ..errors import JsException, JsTypeError

__all__ = [
    "MAX_KEY_SIZE", "MAX_VALUE_SIZE", "MAX_METADATA_SIZE", "MIN_EXPIRATION_TTL", "MIN_CACHE_TTL",
    "DEFAULT_CACHE_TTL", "MAX_LIST_KEYS", "MAX_BULK_KEYS", "MAX_BULK_SIZE",
    "KEY_EMPTY", "KEY_DOT", "KEY_DOTDOT", "UNKNOWN_TYPE", "PUT_VALUE_TYPE",
    "kv_failed", "key_too_long", "check_key_name",
]

MAX_KEY_SIZE = 512                   # bytes of UTF-8
MAX_VALUE_SIZE = 25 * 1024 * 1024    # 25 MiB
MAX_METADATA_SIZE = 1024             # bytes of serialized JSON
MIN_EXPIRATION_TTL = 60              # seconds
MIN_CACHE_TTL = 30                   # seconds
DEFAULT_CACHE_TTL = 60               # seconds
MAX_LIST_KEYS = 1000
MAX_BULK_KEYS = 100
MAX_BULK_SIZE = 25 * 1024 * 1024

# Thrown by workerd before any request leaves the worker.
KEY_EMPTY = "Key name cannot be empty."
KEY_DOT = '"." is not allowed as a key name.'
KEY_DOTDOT = '".." is not allowed as a key name.'
UNKNOWN_TYPE = 'Unknown response type. Possible types are "text", "arrayBuffer", "json", and "stream".'
PUT_VALUE_TYPE = "KV put() accepts only strings, ArrayBuffers, ArrayBufferViews, and ReadableStreams as values."

# Texts of the KV service, after "KV <METHOD> failed: <status> ".
KEY_LENGTH = "UTF-8 encoded length of {length} exceeds key length limit of {limit}."
BULK_KEY_EMPTY = "Key names must not be empty"
BULK_KEY_ILLEGAL = 'Illegal key name "{key}". Please use a different name.'
CACHE_TTL = "Invalid cache_ttl of {value}. Cache TTL must be at least {limit}."
EXPIRATION_TTL_POSITIVE = "Invalid expiration_ttl of {value}. Please specify integer greater than 0."
EXPIRATION_TTL_MIN = "Invalid expiration_ttl of {value}. Expiration TTL must be at least {limit}."
EXPIRATION_PAST = ("Invalid expiration of {value}. Please specify integer greater than the current number of "
                   "seconds since the UNIX epoch.")
EXPIRATION_MIN = "Invalid expiration of {value}. Expiration times must be at least {limit} seconds in the future."
METADATA_LENGTH = "Metadata length of {length} exceeds limit of {limit}."
VALUE_LENGTH = "Value length of {length} exceeds limit of {limit}."
LIST_LIMIT_MAX = "Invalid key_count_limit of {value}. Please specify an integer less than {limit}."
LIST_CURSOR = "Invalid cursor"
BULK_TYPE = '"{type}" is not a valid type. Use "json" or "text"'
BULK_MAX = "You can request a maximum of {limit} keys"
BULK_MIN = "You must request a minimum of 1 key"
BULK_NOT_TYPE = "At least one of the requested keys corresponds to a non-{type} value"
BULK_TOO_LARGE = "Total size of request exceeds the limit of {mb}MB"


def kv_failed(method: str, status: int, text: str) -> JsException:
    """The plain `Error` workerd throws when the KV service answers a call with an error status."""
    return JsException(f"KV {method} failed: {status} {text}")


def key_too_long(method: str, length: int) -> JsException:
    """KV's 414 error for a key over 512 UTF-8 bytes."""
    return kv_failed(method, 414, KEY_LENGTH.format(length=length, limit=MAX_KEY_SIZE))


def check_key_name(method: str, key: str) -> bytes:
    """workerd's client-side key check; returns the key's UTF-8 bytes."""
    if not isinstance(key, str):
        raise JsTypeError(f"KV {method.lower()}(): the key must be a string, not {type(key).__name__}.")
    if key == "":
        raise JsTypeError(KEY_EMPTY)
    if key == ".":
        raise JsTypeError(KEY_DOT)
    if key == "..":
        raise JsTypeError(KEY_DOTDOT)
    raw = encode_key(key)
    if len(raw) > MAX_KEY_SIZE:
        raise key_too_long(method, len(raw))
    return raw


def encode_key(key: str) -> bytes:
    # A JS string with a lone surrogate reaches KV as U+FFFD; Python strings can hold one too.
    try:
        return key.encode()
    except UnicodeEncodeError:
        return key.encode("utf-16", "surrogatepass").decode("utf-16", "replace").encode()
