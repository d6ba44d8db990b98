"""Limits and message texts of Cloudflare Queues, in one place.

Texts are workerd's (the `send()`/`sendBatch()` prefixes, content-type checks, ack/retry warnings)
and Miniflare's broker texts for the limits, whose production wording is not documented.  The
delay check's wording is cfemu's own: Miniflare's embeds a validation-library dump.
"""

from __future__ import annotations

__all__ = [
    "MAX_MESSAGE_BYTES",
    "MAX_BATCH_MESSAGES",
    "MAX_BATCH_BYTES",
    "MAX_DELAY_SECONDS",
    "CONTENT_TYPES",
    "DEFAULT_CONTENT_TYPE",
    "DEFAULT_MAX_CONCURRENCY",
    "SEND_FAILED",
    "SEND_BATCH_FAILED",
    "MESSAGE_TOO_LARGE",
    "BATCH_MESSAGE_TOO_LARGE",
    "BATCH_TOO_MANY_MESSAGES",
    "BATCH_TOO_LARGE",
    "INVALID_DELAY",
    "ERROR_CODES",
    "EXPOSE_ERROR_CODES_FLAG",
    "CONSUMER_WALL_TIME_LIMIT",
    "WALL_TIME_EXCEEDED",
    "INVALID_RETRY_DELAY",
    "UNSUPPORTED_CONTENT_TYPE",
    "WRONG_BODY_TYPE",
    "BODY_UNDEFINED",
    "EMPTY_BATCH",
    "NOT_JSON",
    "BIGINT_NOT_JSON",
    "RETRY_AFTER_ACK",
    "RETRY_AFTER_ACK_ALL",
    "ACK_AFTER_RETRY",
    "ACK_AFTER_RETRY_ALL",
    "RETRY_ALL_AFTER_ACK_ALL",
    "ACK_ALL_AFTER_RETRY_ALL",
]

# Queues count 1 KB as 1000 bytes.
MAX_MESSAGE_BYTES = 128_000
MAX_BATCH_MESSAGES = 100
MAX_BATCH_BYTES = 256_000
MAX_DELAY_SECONDS = 43_200  # 12 hours, for sends, retries and delivery_delay alike

CONTENT_TYPES = ("text", "bytes", "json", "v8")
DEFAULT_CONTENT_TYPE = "json"  # what production uses since the queues_json_messages default
# Production scales a consumer up to 250 concurrent invocations when max_concurrency is unset.
DEFAULT_MAX_CONCURRENCY = 250

SEND_FAILED = "Queue send failed: "
SEND_BATCH_FAILED = "Queue sendBatch failed: "
MESSAGE_TOO_LARGE = "message length of {size} bytes exceeds limit of 128000"
BATCH_MESSAGE_TOO_LARGE = "message in batch has length {size} bytes which exceeds single message size limit of 128000"
BATCH_TOO_MANY_MESSAGES = "batch message count of {count} exceeds limit of 100"
# Production's text (seen in 2026: "batch size of 291898 bytes exceeds limit of 256000 bytes (10205)");
# Miniflare's lacks the trailing unit.
BATCH_TOO_LARGE = "batch size of {size} bytes exceeds limit of 256000 bytes"
INVALID_DELAY = "message delay {delay} is invalid: delaySeconds must be an integer between 0 and 43200"
INVALID_RETRY_DELAY = "{method}: delaySeconds {delay} is invalid: it must be an integer between 0 and 43200"

# The broker's error codes (Queues "Error codes" reference).  Without the `queue_expose_error_codes`
# compatibility flag workerd throws "Queue send failed: <cause>"; with it, "<cause> (<code>)".
EXPOSE_ERROR_CODES_FLAG = "queue_expose_error_codes"
ERROR_CODES = {
    MESSAGE_TOO_LARGE: 10204,  # MessageSizeOutOfBounds
    BATCH_MESSAGE_TOO_LARGE: 10204,
    BATCH_TOO_LARGE: 10205,  # BatchSizeOutOfBounds
    BATCH_TOO_MANY_MESSAGES: 10206,  # BatchCountOutOfBounds
    INVALID_DELAY: 10203,  # MessageMetadataInvalid (content type and delay)
}

# A consumer invocation may run for 15 minutes of wall time (Queues and Workers limits); past it the
# invocation fails and every message it did not ack is retried.
CONSUMER_WALL_TIME_LIMIT = 15 * 60
WALL_TIME_EXCEEDED = (
    'Queue "{queue}": the consumer invocation exceeded its wall-time limit of {limit} s; '
    "messages not acked are retried"
)

UNSUPPORTED_CONTENT_TYPE = "Unsupported queue message content type: {content_type}"
WRONG_BODY_TYPE = 'Content Type "{content_type}" requires a value of type {expected}, but received: {typeof}'
BODY_UNDEFINED = "Message body cannot be undefined"
EMPTY_BATCH = "sendBatch() requires at least one message"
NOT_JSON = 'Queue message body is not JSON-serializable ({detail}); send it with contentType "v8" or "bytes"'

BIGINT_NOT_JSON = "Do not know how to serialize a BigInt"  # V8's JSON.stringify TypeError

RETRY_AFTER_ACK = (
    "Received a call to retry() on message {id} after ack() was already called. "
    "Calling retry() on a message after calling ack() has no effect."
)
RETRY_AFTER_ACK_ALL = (
    "Received a call to retry() on message {id} after ackAll() was already called. "
    "Calling retry() on a message after calling ackAll() has no effect."
)
ACK_AFTER_RETRY = (
    "Received a call to ack() on message {id} after retry() was already called. "
    "Calling ack() on a message after calling retry() has no effect."
)
ACK_AFTER_RETRY_ALL = (
    "Received a call to ack() on message {id} after retryAll() was already called. "
    "Calling ack() on a message after calling retryAll() has no effect."
)
RETRY_ALL_AFTER_ACK_ALL = (
    "Received a call to retryAll() after ackAll() was already called. "
    "Calling retryAll() after calling ackAll() has no effect."
)
ACK_ALL_AFTER_RETRY_ALL = (
    "Received a call to ackAll() after retryAll() was already called. "
    "Calling ackAll() after calling retryAll() has no effect."
)
