"""What a consumer's `queue()` handler receives: `MessageBatch` and its `Message`s.

Acknowledgement rules (Cloudflare's): a message's first ack() or retry() decides it (a later retry()
only replaces an earlier retry()'s delay); a call on a message made before a batch-level call keeps
its effect (the batch call covers only the undecided messages); a retry delay comes from the
message's retry(), else from retryAll(), else from the consumer's retry_delay;
once the handler returns, what was not retried is acked; if it raised, what was not acked is retried.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from ..errors import JsRangeError
from ..objects import JsDate
from . import codec
from .errors import (
    ACK_AFTER_RETRY,
    ACK_AFTER_RETRY_ALL,
    ACK_ALL_AFTER_RETRY_ALL,
    INVALID_RETRY_DELAY,
    RETRY_AFTER_ACK,
    RETRY_AFTER_ACK_ALL,
    RETRY_ALL_AFTER_ACK_ALL,
)

__all__ = ["Message", "MessageBatch", "Decision"]

log = logging.getLogger("cfemu.queues")

_ACK = "ack"
_RETRY = "retry"


@dataclass(frozen=True)
class Decision:
    """The fate of one delivered message: acked, or retried after `delay` seconds (None: the consumer's retry_delay)."""

    retry: bool
    delay: int | None = None


def _retry_delay(method: str, options: Any, delaySeconds: Any) -> int | None:
    if isinstance(options, dict) and delaySeconds is None:
        delaySeconds = options.get("delaySeconds")
    if delaySeconds is None:
        return None
    return codec.check_delay(delaySeconds, lambda v: JsRangeError(INVALID_RETRY_DELAY.format(method=method, delay=v)))


class _Outcome:
    """The calls a handler made on one batch."""

    def __init__(self) -> None:
        self.batch: tuple[str, int | None] | None = None
        self.messages: dict[str, tuple[str, int | None]] = {}

    def ack(self, message_id: str) -> None:
        if self.batch is not None and self.batch[0] == _ACK:
            return
        if self.batch is not None:
            log.warning(ACK_AFTER_RETRY_ALL.format(id=message_id))
            return
        previous = self.messages.get(message_id)
        if previous is not None:
            if previous[0] == _RETRY:
                log.warning(ACK_AFTER_RETRY.format(id=message_id))
            return
        self.messages[message_id] = (_ACK, None)

    def retry(self, message_id: str, delay: int | None) -> None:
        if self.batch is not None and self.batch[0] == _ACK:
            log.warning(RETRY_AFTER_ACK_ALL.format(id=message_id))
            return
        previous = self.messages.get(message_id)
        if previous is not None and previous[0] == _ACK:
            log.warning(RETRY_AFTER_ACK.format(id=message_id))
            return
        # workerd upserts: a later retry() replaces an earlier one's options, and after retryAll()
        # a message's own retry() still sets its own delay.
        self.messages[message_id] = (_RETRY, delay)

    def ack_all(self) -> None:
        if self.batch is not None:
            if self.batch[0] == _RETRY:
                log.warning(ACK_ALL_AFTER_RETRY_ALL)
            return
        self.batch = (_ACK, None)

    def retry_all(self, delay: int | None) -> None:
        if self.batch is not None:
            if self.batch[0] == _ACK:
                log.warning(RETRY_ALL_AFTER_ACK_ALL)
            return
        self.batch = (_RETRY, delay)

    def decide(self, message_id: str, handler_failed: bool) -> Decision:
        kind, delay = self.messages.get(message_id) or self.batch or ((_RETRY, None) if handler_failed else (_ACK, None))
        if kind == _RETRY and delay is None and self.batch is not None and self.batch[0] == _RETRY:
            # Delay precedence (the broker's): the message's own retry() delay, then retryAll()'s,
            # then the consumer's retry_delay.
            delay = self.batch[1]
        return Decision(retry=kind == _RETRY, delay=delay)


class Message:
    """A delivered message (`Message` of the Queues JS API): id, timestamp, body, attempts, ack(), retry()."""

    __slots__ = ("id", "timestamp", "body", "attempts", "_outcome")

    def __init__(self, message_id: str, timestamp_ms: int, body: Any, attempts: int, outcome: _Outcome) -> None:
        self.id = message_id
        # Millisecond precision, as a JS Date has.
        self.timestamp = JsDate.from_ms(timestamp_ms)
        self.body = body
        self.attempts = attempts
        self._outcome = outcome

    def ack(self) -> None:
        """Mark the message delivered; it will not be retried even if the handler raises."""
        self._outcome.ack(self.id)

    def retry(self, options: Any = None, *, delaySeconds: Any = None) -> None:
        """Deliver the message again later (after `delaySeconds`, default the consumer's retry_delay)."""
        self._outcome.retry(self.id, _retry_delay("retry()", options, delaySeconds))

    def __repr__(self) -> str:
        return f"Message(id={self.id!r}, attempts={self.attempts}, body={self.body!r})"


class MessageBatch:
    """The batch a `queue()` handler receives (`MessageBatch`): queue, messages, ackAll(), retryAll()."""

    __slots__ = ("queue", "messages", "_outcome")

    def __init__(self, queue: str, messages: list[Message], outcome: _Outcome) -> None:
        self.queue = queue
        self.messages = messages
        self._outcome = outcome

    def ackAll(self) -> None:
        """Ack every message not already acked or retried on its own."""
        self._outcome.ack_all()

    def retryAll(self, options: Any = None, *, delaySeconds: Any = None) -> None:
        """Retry every message not already acked or retried on its own."""
        self._outcome.retry_all(_retry_delay("retryAll()", options, delaySeconds))

    def __repr__(self) -> str:
        return f"MessageBatch(queue={self.queue!r}, messages={len(self.messages)})"
