"""Delivery receipts: sent -> delivered -> read, never backwards.

A room keeps, per reader, two watermarks: the highest sequence delivered and the highest read.
A message's state for a reader follows from them, so one write per receipt covers every earlier
message and a late or replayed receipt can never move a state back.
"""

from __future__ import annotations

__all__ = ["STATES", "rank", "advance", "state_of", "apply_receipt"]

STATES = ("sent", "delivered", "read")


def rank(state: str) -> int:
    return STATES.index(state)


def advance(current: str, new: str) -> str:
    """The state after a transition: the later of the two (a backwards move is a no-op)."""
    return new if rank(new) > rank(current) else current


def state_of(seq: int, marks: dict | None) -> str:
    """The receipt state of message `seq` for a reader with watermarks `marks`."""
    marks = marks or {}
    if seq <= marks.get("read", 0):
        return "read"
    if seq <= marks.get("delivered", 0):
        return "delivered"
    return "sent"


def apply_receipt(marks: dict | None, seq: int, state: str, last_seq: int) -> tuple[dict, bool]:
    """New watermarks after a receipt for `seq`; (marks, changed).  Reading implies delivery.

    A receipt for a sequence the room has not assigned yet is clamped to the last one.
    """
    marks = dict(marks or {"delivered": 0, "read": 0})
    seq = min(seq, last_seq)
    before = (marks.get("delivered", 0), marks.get("read", 0))
    if state == "read":
        marks["read"] = max(marks.get("read", 0), seq)
    marks["delivered"] = max(marks.get("delivered", 0), seq, marks.get("read", 0))
    marks.setdefault("read", 0)
    return marks, (marks["delivered"], marks["read"]) != before
