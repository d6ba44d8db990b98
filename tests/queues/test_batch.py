"""Unit tests of the acknowledgement rules of a batch (which call wins)."""

from __future__ import annotations

import pytest

from cfemu.queues.batch import Decision, Message, MessageBatch, _Outcome


def make(n: int = 3) -> MessageBatch:
    outcome = _Outcome()
    return MessageBatch("q", [Message(f"m{i}", 0, i, 1, outcome) for i in range(n)], outcome)


def decide(batch: MessageBatch, failed: bool = False) -> list[Decision]:
    return [batch._outcome.decide(m.id, failed) for m in batch.messages]


ACK, RETRY = Decision(False), Decision(True)


@pytest.mark.parametrize("failed, expected", [(False, ACK), (True, RETRY)])
def test_no_calls_follow_the_handler_outcome(failed, expected):
    assert decide(make(), failed) == [expected] * 3


def test_first_call_on_a_message_wins():
    b = make(2)
    b.messages[0].ack()
    b.messages[0].retry(delaySeconds=5)
    b.messages[1].retry(delaySeconds=5)
    b.messages[1].ack()  # ignored (warning)
    b.messages[1].retry(delaySeconds=9)  # workerd upserts the retry: the later delay replaces the earlier
    assert decide(b, failed=True) == [ACK, Decision(True, 9)]


def test_message_calls_made_before_batch_calls_keep_their_effect():
    b = make(3)
    b.messages[0].ack()
    b.messages[1].retry()
    b.retryAll(delaySeconds=4)
    # b's retry() named no delay, so retryAll's applies to it as well
    assert decide(b) == [ACK, Decision(True, 4), Decision(True, 4)]
    b = make(3)
    b.messages[0].retry(delaySeconds=1)
    b.ackAll()
    assert decide(b, failed=True) == [Decision(True, 1), ACK, ACK]


def test_calls_after_a_batch_call():
    b = make(3)
    b.retryAll(delaySeconds=4)
    b.messages[0].ack()  # ignored (warning)
    b.messages[1].retry(delaySeconds=8)  # its own delay, as workerd records it
    b.ackAll()  # ignored (warning)
    assert decide(b) == [Decision(True, 4), Decision(True, 8), Decision(True, 4)]
    b = make(2)
    b.ackAll()
    b.messages[0].retry()  # ignored
    b.retryAll()  # ignored
    assert decide(b, failed=True) == [ACK, ACK]


def test_retry_delay_precedence_message_then_retry_all_then_consumer():
    """The broker uses the message's own delay, else retryAll()'s, else the consumer's retry_delay (None)."""
    b = make(3)
    b.messages[0].retry()  # no delay of its own: retryAll's applies
    b.messages[1].retry(delaySeconds=2)
    b.retryAll(delaySeconds=7)
    assert decide(b) == [Decision(True, 7), Decision(True, 2), Decision(True, 7)]
    b = make(2)
    b.retryAll(delaySeconds=7)
    b.messages[0].retry()  # after retryAll: still retryAll's delay
    assert decide(b, failed=True) == [Decision(True, 7), Decision(True, 7)]
    b = make(2)
    b.messages[0].retry()
    assert decide(b, failed=True) == [Decision(True, None), Decision(True, None)]


def test_a_later_retry_without_options_clears_an_earlier_delay():
    """workerd upserts the retry entry with the new options (kj HashMap::upsert replaces the value)."""
    b = make(1)
    b.messages[0].retry(delaySeconds=5)
    b.messages[0].retry()
    assert decide(b) == [Decision(True, None)]
