"""R2's error texts and limits (the R2 service's messages and v4 codes, as workerd reports them).

workerd turns an R2 failure into `Error("<method>: <message> (<v4 code>)")`; client-side checks are
TypeErrors/RangeErrors with their own texts.
"""

from __future__ import annotations

from ..errors import JsException, JsRangeError, JsTypeError
from ..objects import usv

__all__ = [
    "MAX_KEY_BYTES", "MAX_LIST_KEYS", "MAX_DELETE_KEYS", "MAX_VALUE_SIZE", "MAX_CUSTOM_METADATA",
    "MIN_PART_SIZE", "MAX_PARTS", "R2Failure", "r2_error", "JsTypeError", "JsRangeError",
]

MAX_KEY_BYTES = 1024
MAX_LIST_KEYS = 1000
MAX_DELETE_KEYS = 1000
MAX_VALUE_SIZE = 5 * 1024**3 - 5 * 1024**2  # 5 GiB - 5 MiB for one upload (a put or one part)
MAX_CUSTOM_METADATA = 8192  # R2's documented object metadata limit
MIN_PART_SIZE = 5 * 1024 * 1024
MAX_PARTS = 10_000

# (message, v4 code) of the R2 service's errors.
INTERNAL_ERROR = ("We encountered an internal error. Please try again.", 10001)
NO_SUCH_KEY = ("The specified key does not exist.", 10007)
ENTITY_TOO_LARGE = ("Your proposed upload exceeds the maximum allowed object size.", 100100)
ENTITY_TOO_SMALL = ("Your proposed upload is smaller than the minimum allowed object size.", 10011)
METADATA_TOO_LARGE = ("Your metadata headers exceed the maximum allowed metadata size.", 10012)
INVALID_OBJECT_NAME = ("The specified object name is not valid.", 10020)
INVALID_MAX_KEYS = ("MaxKeys params must be positive integer <= 1000.", 10022)
NO_SUCH_UPLOAD = ("The specified multipart upload does not exist.", 10024)
INVALID_PART = ("One or more of the specified parts could not be found.", 10025)
INVALID_ARGUMENT = ("Invalid Argument", 10029)
PRECONDITION_FAILED = ("At least one of the pre-conditions you specified did not hold.", 10031)
BAD_DIGEST = ("The {alg} checksum you specified did not match what we received.\n"
              "You provided a {alg} checksum with value: {provided}\n"
              "Actual {alg} was: {actual}", 10037)
INVALID_RANGE = ("The requested range is not satisfiable", 10039)
BAD_UPLOAD = ("There was a problem with the multipart upload.", 10048)
DELETE_KEY_COUNT = ("The number of keys in the request must be between 1 and 1000 inclusive.", 10027)

# Client-side (workerd) texts.
MULTIPLE_HASHES = "You cannot specify multiple hashing algorithms."
HASH_BYTES = "{alg} is {size} bytes, not {actual}"
HASH_HEX = "{alg} is {size} hex characters, not {actual}"
HASH_NOT_HEX = "Provided {alg} wasn't a valid hex string"
QUOTED_ETAG = "Conditional ETag should not be wrapped in quotes ({etag})."
PART_NUMBER = "Part number must be between 1 and 10000 (inclusive). Actual value was: {n}"
UNSUPPORTED_INCLUDE = "Unsupported include value {value}"
NO_HTTP_METADATA = ("HTTP metadata unknown for key `{key}`. Did you forget to add 'httpMetadata' to `include` "
                    "when listing?")
RANGE_OFFSET_NEGATIVE = "Invalid range. Starting offset ({v}) must be greater than or equal to 0."
RANGE_OFFSET_FLOAT = "Invalid range. Starting offset ({v}) must be an integer, not floating point."
RANGE_LENGTH_NEGATIVE = "Invalid range. Length ({v}) must be greater than or equal to 0."
RANGE_LENGTH_FLOAT = "Invalid range. Length ({v}) must be an integer, not floating point."
SUFFIX_WITH_OFFSET = "Suffix is incompatible with offset."
SUFFIX_WITH_LENGTH = "Suffix is incompatible with length."
SUFFIX_NEGATIVE = "Invalid suffix. Suffix ({v}) must be greater than or equal to 0."
SUFFIX_FLOAT = "Invalid range. Suffix ({v}) must be an integer, not floating point."
UNCLOSED_QUOTE = "Unclosed double quote for Etag"
BAD_WEAK_ETAG = "Weak etags must start with W/ and their value must be quoted"
UPLOADED_PART_FIELD = ("Incorrect type for the '{field}' field on 'UploadedPart': the provided value is not of "
                       "type '{type}'.")
INVALID_DATE = 'Invalid date in {header}: "{value}"'
BAD_VALUE = ("{action}() value must be a string, bytes, a Blob, a ReadableStream of known length or None, "
             "not {type}")
# workerd's checks of an `ssecKey` (plain Errors), and cfemu's refusal of one for multipart uploads
# (not implemented: accepting the key would silently drop the protection the caller asked for).
SSEC_FORMAT = "SSE-C Key has invalid format"
SSEC_LENGTH = "SSE-C Key must be 32 bytes in length"
SSEC_UNSUPPORTED = ("{action}: cfemu does not implement SSE-C (the ssecKey option) for multipart uploads; "
                    "upload without ssecKey or encrypt the parts before uploading them")
# cfemu's texts for reading an SSE-C object with no key, another key, or a key for a plain object: no
# public source gives production's (R2's service answers these, not workerd).
SSEC_REQUIRED = "{action}: this object is stored with SSE-C; pass the ssecKey it was stored with"
SSEC_WRONG_KEY = "{action}: the ssecKey given is not the key this object was stored with"
SSEC_NOT_ENCRYPTED = "{action}: this object is not stored with SSE-C; read it without ssecKey"
# workerd's TypeError for a put/uploadPart body whose length is not known up front (r2-rpc.c++).
STREAM_LENGTH_UNKNOWN = ("Provided readable stream must have a known length (request/response body or readable "
                         "half of FixedLengthStream)")


class R2Failure(Exception):
    """Raised inside the storage layer; the bucket turns it into workerd's message for its method."""

    def __init__(self, error: tuple[str, int], **fmt: str) -> None:
        message, code = error
        self.message = message.format(**fmt) if fmt else message
        self.code = code
        super().__init__(self.message)


LIST_INCLUDE_TYPE = ("Incorrect type for the 'include' field on 'R2ListOptions': the provided value is not of "
                     "type 'Array'.")
LIST_OPTION_FIELD = ("Incorrect type for the '{field}' field on 'R2ListOptions': the provided value is not of "
                     "type 'string'.")


def js_string(value: object) -> str:
    """`String(value)` of the JS value Pyodide makes of `value` (how workerd coerces string fields)."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float):
        if value != value:
            return "NaN"
        if value in (float("inf"), float("-inf")):
            return "Infinity" if value > 0 else "-Infinity"
        if value.is_integer() and abs(value) < 1e21:
            return str(int(value))
        return repr(value)
    return usv(str(value))


def r2_error(action: str, failure: R2Failure) -> JsException:
    """The plain `Error` workerd throws for a failed R2 call: "<action>: <message> (<code>)"."""
    return JsException(f"{action}: {failure.message} ({failure.code})")
