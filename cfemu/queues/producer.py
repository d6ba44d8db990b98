"""The producer binding (`env.MY_QUEUE`): `send()` and `sendBatch()` with Cloudflare's limits."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..errors import JsException, JsTypeError
from . import codec
from .errors import (
    BATCH_MESSAGE_TOO_LARGE,
    BATCH_TOO_LARGE,
    BATCH_TOO_MANY_MESSAGES,
    BODY_UNDEFINED,
    EMPTY_BATCH,
    ERROR_CODES,
    INVALID_DELAY,
    MAX_BATCH_BYTES,
    MAX_BATCH_MESSAGES,
    MAX_MESSAGE_BYTES,
    MESSAGE_TOO_LARGE,
    SEND_BATCH_FAILED,
    SEND_FAILED,
)

if TYPE_CHECKING:
    from .broker import QueueBroker

__all__ = ["Queue"]

_MISSING = object()


def _option(options: Any, name: str, given: Any) -> Any:
    """A keyword argument, or the same key of a positional options dict (`send(body, {"delaySeconds": 5})`)."""
    if given is not None:
        return given
    if isinstance(options, dict):
        return options.get(name)
    if options is not None:
        raise JsTypeError(f"options must be a dict, got {type(options).__name__}")
    return None


class Queue:
    """A queue producer binding (`Queue` of the Queues JS API).

    `delivery_delay` is the producer's default delay (wrangler's `delivery_delay`); a message's
    own `delaySeconds`, then the batch's, take precedence over it.
    """

    def __init__(self, broker: QueueBroker, queue: str, delivery_delay: int = 0, *,
                 expose_error_codes: bool = False) -> None:
        self._broker = broker
        self.queue_name = queue
        self.delivery_delay = delivery_delay
        # The `queue_expose_error_codes` compatibility flag: the broker's refusals then read
        # "<cause> (<code>)" instead of "Queue send failed: <cause>".
        self.expose_error_codes = expose_error_codes

    async def send(self, body: Any = _MISSING, options: Any = None, *, contentType: str | None = None,
                   delaySeconds: Any = None) -> None:
        """Send one message; it is stored durably before this returns."""
        if body is _MISSING:
            raise JsTypeError(BODY_UNDEFINED)
        ctype = codec.content_type(_option(options, "contentType", contentType))
        delay = self._delay(_option(options, "delaySeconds", delaySeconds), SEND_FAILED)
        data = codec.encode(body, ctype)
        if len(data) > MAX_MESSAGE_BYTES:
            raise self._broker_error(SEND_FAILED, MESSAGE_TOO_LARGE, size=len(data))
        self._broker.enqueue(self.queue_name, [(data, ctype, delay)])

    async def sendBatch(self, messages: Iterable[Any], options: Any = None, *, delaySeconds: Any = None) -> None:
        """Send up to 100 messages (256 KB in all) in one durable step: all are stored or none."""
        if isinstance(messages, (str, bytes, dict)) or not isinstance(messages, Iterable):
            raise JsTypeError("sendBatch() takes a list of messages like {\"body\": ..., \"contentType\": ...}")
        items = list(messages)
        if not items:
            raise JsTypeError(EMPTY_BATCH)
        batch_delay = _option(options, "delaySeconds", delaySeconds)
        default_delay = self._delay(batch_delay, SEND_BATCH_FAILED)
        encoded = []
        for item in items:
            if not isinstance(item, dict):
                raise JsTypeError(f"sendBatch(): each message must be a dict with a \"body\", got {type(item).__name__}")
            if "body" not in item:
                raise JsTypeError(BODY_UNDEFINED)
            ctype = codec.content_type(item.get("contentType"))
            own_delay = item.get("delaySeconds")
            delay = default_delay if own_delay is None else self._delay(own_delay, SEND_BATCH_FAILED)
            encoded.append((codec.encode(item["body"], ctype), ctype, delay))
        # The broker checks count, then the largest message, then the total (as Miniflare's does).
        if len(encoded) > MAX_BATCH_MESSAGES:
            raise self._broker_error(SEND_BATCH_FAILED, BATCH_TOO_MANY_MESSAGES, count=len(encoded))
        largest = max(len(data) for data, _, _ in encoded)
        if largest > MAX_MESSAGE_BYTES:
            raise self._broker_error(SEND_BATCH_FAILED, BATCH_MESSAGE_TOO_LARGE, size=largest)
        total = sum(len(data) for data, _, _ in encoded)
        if total > MAX_BATCH_BYTES:
            raise self._broker_error(SEND_BATCH_FAILED, BATCH_TOO_LARGE, size=total)
        self._broker.enqueue(self.queue_name, encoded)

    def _delay(self, value: Any, prefix: str) -> int:
        if value is None:
            return self.delivery_delay
        return codec.check_delay(value, lambda v: self._broker_error(prefix, INVALID_DELAY, delay=v))

    def _broker_error(self, prefix: str, template: str, **values: Any) -> JsException:
        """What workerd throws when the broker refuses a send, in the format the compat flags select."""
        cause = template.format(**values)
        if self.expose_error_codes:
            return JsException(f"{cause} ({ERROR_CODES[template]})")
        return JsException(prefix + cause)

    def __repr__(self) -> str:
        return f"Queue({self.queue_name!r})"
