"""Error texts of Workers Analytics Engine: the binding's (workerd's) and the SQL API's."""

from __future__ import annotations

__all__ = [
    "AnalyticsQueryError",
    "MAX_BLOBS",
    "MAX_DOUBLES",
    "MAX_INDEXES",
    "MAX_INDEX_BYTES",
    "MAX_BLOB_BYTES",
    "MAX_POINTS_PER_INVOCATION",
    "PREFIX",
    "TOO_MANY_BLOBS",
    "TOO_MANY_DOUBLES",
    "TOO_MANY_INDEXES",
    "INDEX_TOO_BIG",
    "BLOBS_TOO_BIG",
    "WRITE_LIMIT_EXCEEDED",
]

MAX_BLOBS = 20
MAX_DOUBLES = 20
MAX_INDEXES = 1
MAX_INDEX_BYTES = 96
MAX_BLOB_BYTES = 16_000  # 16 KB, counted as Cloudflare counts it: 1 KB = 1000 bytes
MAX_POINTS_PER_INVOCATION = 250

# workerd's texts (src/workerd/api/analytics-engine-impl.h), including its stray ")".
PREFIX = "writeDataPoint(): "
TOO_MANY_BLOBS = f"{PREFIX}Maximum of {MAX_BLOBS} blobs supported."
TOO_MANY_DOUBLES = f"{PREFIX}Maximum of {MAX_DOUBLES} doubles supported."
TOO_MANY_INDEXES = f"{PREFIX}Maximum of {MAX_INDEXES} indexes supported."
INDEX_TOO_BIG = f"{PREFIX}Size of indexes[0] exceeds {MAX_INDEX_BYTES} bytes)."
BLOBS_TOO_BIG = f"{PREFIX}Cumulative size of blobs exceeds {MAX_BLOB_BYTES} bytes)."
# Production's per-invocation limit is enforced outside workerd's open-source code and surfaces as a
# plain Error with this text (seen in users' logs), not as a TypeError with the prefix.
WRITE_LIMIT_EXCEEDED = "Analytics Engine write limit exceeded."
# cfemu's own texts for values of the wrong type (JS would coerce some of them silently).
NOT_A_DICT = f"{PREFIX}The data point must be a dict with 'blobs', 'doubles' and 'indexes' lists."
NOT_A_LIST = PREFIX + "'{field}' must be a list, not {type}."
BAD_BLOB = PREFIX + "{field}[{i}] must be a str, bytes or None, not {type}."
BAD_DOUBLE = PREFIX + "doubles[{i}] must be a number, not {type}."
UNKNOWN_FIELD = PREFIX + "Unknown field '{field}' (expected 'blobs', 'doubles' or 'indexes')."


class AnalyticsQueryError(Exception):
    """A query the SQL API refuses: bad syntax, outside the supported subset, unknown table or column.

    `status` is the HTTP status the SQL API answers with (422 for a query it cannot run).
    """

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.message = message
        self.status = status

    def __str__(self) -> str:
        return self.message
