"""An R2 bucket on disk: object bodies as files, their metadata in SQLite.

A write streams into `tmp/`, is fsynced and renamed into `blobs/`, and only then is the metadata
row committed; the row is what makes an object visible, so a crash at any step leaves either the
old object or the new one, never half of one.  Files nobody references (a crash between steps, an
overwritten object) are removed when the bucket is opened again.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from collections.abc import AsyncIterable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any


from ..sqlite import open_apsw

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows has no flock; clean-up then assumes no writer
    fcntl = None  # type: ignore[assignment]
from .errors import (
    INTERNAL_ERROR,
    NO_SUCH_UPLOAD,
    PRECONDITION_FAILED,
    R2Failure,
)

__all__ = ["R2Storage", "ObjectRow", "Blob", "UPLOAD_IN_PROGRESS", "UPLOAD_COMPLETED", "UPLOAD_ABORTED"]

UPLOAD_IN_PROGRESS, UPLOAD_COMPLETED, UPLOAD_ABORTED = 0, 1, 2
_CHUNK = 1 << 20

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    key TEXT PRIMARY KEY,
    blob_id TEXT NOT NULL,
    version TEXT NOT NULL,
    size INTEGER NOT NULL,
    etag TEXT NOT NULL,
    uploaded INTEGER NOT NULL,
    checksums TEXT NOT NULL,
    http_metadata TEXT NOT NULL,
    custom_metadata TEXT NOT NULL,
    storage_class TEXT NOT NULL,
    ssec TEXT
);
CREATE TABLE IF NOT EXISTS uploads (
    upload_id TEXT PRIMARY KEY,
    key TEXT NOT NULL,
    http_metadata TEXT NOT NULL,
    custom_metadata TEXT NOT NULL,
    storage_class TEXT NOT NULL,
    state INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS parts (
    upload_id TEXT NOT NULL,
    part_number INTEGER NOT NULL,
    blob_id TEXT NOT NULL,
    size INTEGER NOT NULL,
    etag TEXT NOT NULL,
    md5 TEXT NOT NULL,
    PRIMARY KEY (upload_id, part_number)
);
"""


@dataclass
class ObjectRow:
    """One R2 object's metadata row (the body lives in a blob file named by `blob_id`)."""

    key: str
    blob_id: str
    version: str
    size: int
    etag: str
    uploaded: int  # ms since the epoch
    checksums: dict[str, str]
    http_metadata: dict[str, Any]
    custom_metadata: dict[str, str]
    storage_class: str
    ssec: dict[str, str] | None = None  # SSE-C: {"keyMd5", "iv"} (hex) when the body is stored encrypted

    @classmethod
    def from_db(cls, r: tuple[Any, ...]) -> ObjectRow:
        return cls(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6]), json.loads(r[7]), json.loads(r[8]), r[9],
                   json.loads(r[10]) if r[10] else None)

    def values(self) -> tuple[Any, ...]:
        """The row's columns in `_COLUMNS` order, as stored."""
        return (self.key, self.blob_id, self.version, self.size, self.etag, self.uploaded, json.dumps(self.checksums),
                json.dumps(self.http_metadata), json.dumps(self.custom_metadata), self.storage_class,
                json.dumps(self.ssec) if self.ssec else None)


_COLUMNS = ("key, blob_id, version, size, etag, uploaded, checksums, http_metadata, custom_metadata, storage_class, "
            "ssec")
_PLACEHOLDERS = ", ".join("?" * 11)


@dataclass
class Blob:
    """A body written to disk but not yet referenced by metadata."""

    blob_id: str
    size: int
    digests: dict[str, bytes]


class R2Storage:
    """One bucket's files and metadata; `fault` lets tests stop a write between its steps."""

    def __init__(self, root: str | Path, *, synchronous: str = "NORMAL", fsync: bool = True,
                 recover: bool = True) -> None:
        self.root = Path(root)
        self._fsync = fsync  # False only for throwaway buckets (tests); bodies then skip fsync
        self.blobs = self.root / "blobs"
        self.tmp = self.root / "tmp"
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.conn = open_apsw(self.root / "metadata.sqlite", synchronous=synchronous)
        self.conn.execute(_SCHEMA)
        if "ssec" not in {r[1] for r in self.conn.execute("PRAGMA table_info(objects)")}:
            self.conn.execute("ALTER TABLE objects ADD COLUMN ssec TEXT")  # a bucket from before SSE-C
        self.fault: Callable[[str], None] | None = None
        self._lock_path = self.root / "writers.lock"
        self._lock_fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        self._writers = 0
        if recover:
            self.recover()

    # -- crash recovery ---------------------------------------------------------------------------

    def recover(self) -> bool:
        """Remove temp files and bodies no metadata row references (left by a crash).

        Skipped (returns False) while anyone, in this process or another (the CLI next to a
        `cfemu dev`), is between writing a body and committing its row: that body looks exactly
        like a crash's leftover.  Writers hold a shared flock on `writers.lock`; clean-up needs
        it exclusively.  What a skipped clean-up leaves is removed by a later one.
        """
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return False
            for stray in self.tmp.iterdir():
                stray.unlink(missing_ok=True)
            referenced = {r[0] for r in self.conn.execute("SELECT blob_id FROM objects UNION SELECT blob_id FROM parts")}
            for shard in self.blobs.iterdir():
                for blob in shard.iterdir():
                    if blob.name not in referenced:
                        blob.unlink(missing_ok=True)
            return True
        finally:
            os.close(fd)  # releases the lock

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Hold while a body is written and until its row commits (or it is discarded)."""
        if self._writers == 0 and fcntl is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_SH)
        self._writers += 1
        try:
            yield
        finally:
            self._writers -= 1
            if self._writers == 0 and fcntl is not None:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _step(self, name: str) -> None:
        if self.fault is not None:
            self.fault(name)

    # -- bodies -----------------------------------------------------------------------------------

    def blob_path(self, blob_id: str) -> Path:
        return self.blobs / blob_id[:2] / blob_id

    async def write_blob(self, chunks: AsyncIterable[bytes], algorithms: tuple[str, ...] = (),
                         transform: Callable[[bytes], bytes] | None = None) -> Blob:
        """Stream a body to a temp file (hashing it, then `transform`ing it, e.g. encrypting), fsync,
        and rename it into place."""
        blob_id = secrets.token_hex(16)
        temp = self.tmp / blob_id
        hashes = {"md5": hashlib.md5()}
        for alg in algorithms:
            hashes.setdefault(alg, hashlib.new(alg))
        size = 0
        try:
            with open(temp, "wb") as f:
                async for chunk in chunks:
                    size += len(chunk)
                    for h in hashes.values():
                        h.update(chunk)
                    f.write(transform(chunk) if transform is not None else chunk)
                f.flush()
                if self._fsync:
                    os.fsync(f.fileno())
            self._step("written")
            final = self.blob_path(blob_id)
            final.parent.mkdir(exist_ok=True)
            os.replace(temp, final)
            if self._fsync:
                _fsync_dir(final.parent)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        self._step("renamed")
        return Blob(blob_id, size, {name: h.digest() for name, h in hashes.items()})

    def discard_blob(self, blob_id: str) -> None:
        self.blob_path(blob_id).unlink(missing_ok=True)

    def open_blob(self, blob_id: str):
        return open(self.blob_path(blob_id), "rb")

    # -- objects ----------------------------------------------------------------------------------

    def row(self, key: str) -> ObjectRow | None:
        for r in self.conn.execute(f"SELECT {_COLUMNS} FROM objects WHERE key = ?", (key,)):
            return ObjectRow.from_db(r)
        return None

    def commit_put(self, row: ObjectRow, allowed: Callable[[ObjectRow | None], bool] | None = None) -> None:
        """Make `row` the object at its key (replacing any), if `allowed(existing)` says so."""
        self._step("before_commit")
        old_blob = None
        with self.conn:
            existing = self.row(row.key)
            if allowed is not None and not allowed(existing):
                raise R2Failure(PRECONDITION_FAILED)
            self.conn.execute(
                f"INSERT OR REPLACE INTO objects ({_COLUMNS}) VALUES ({_PLACEHOLDERS})", row.values())
            if existing is not None and existing.blob_id != row.blob_id:
                old_blob = existing.blob_id
        self._step("committed")
        if old_blob is not None:
            self.discard_blob(old_blob)

    def delete(self, keys: list[str]) -> None:
        old: list[str] = []
        with self.conn:
            for key in keys:
                for (blob_id,) in self.conn.execute("DELETE FROM objects WHERE key = ? RETURNING blob_id", (key,)):
                    old.append(blob_id)
        for blob_id in old:
            self.discard_blob(blob_id)

    def iter_rows(self, prefix: str, start_after: str | None) -> Iterator[ObjectRow]:
        """Objects whose key starts with `prefix` and sorts after `start_after`, in UTF-8 byte order."""
        sql = f"SELECT {_COLUMNS} FROM objects WHERE key >= ? AND substr(key, 1, length(?)) = ?"
        params: list[Any] = [prefix, prefix, prefix]
        if start_after is not None:
            sql += " AND key > ?"
            params.append(start_after)
        sql += " ORDER BY key"
        for r in self.conn.execute(sql, params):
            yield ObjectRow.from_db(r)

    # -- multipart uploads ------------------------------------------------------------------------

    def create_upload(self, key: str, http_metadata: dict[str, Any], custom_metadata: dict[str, str],
                      storage_class: str) -> str:
        upload_id = secrets.token_urlsafe(48)
        with self.conn:
            self.conn.execute(
                "INSERT INTO uploads (upload_id, key, http_metadata, custom_metadata, storage_class) VALUES (?, ?, ?, ?, ?)",
                (upload_id, key, json.dumps(http_metadata), json.dumps(custom_metadata), storage_class))
        return upload_id

    def upload_state(self, key: str, upload_id: str) -> int | None:
        for (state,) in self.conn.execute("SELECT state FROM uploads WHERE upload_id = ? AND key = ?", (upload_id, key)):
            return state
        return None

    def commit_part(self, key: str, upload_id: str, part_number: int, blob: Blob) -> str:
        etag = secrets.token_hex(16)
        old = None
        with self.conn:
            if self.upload_state(key, upload_id) != UPLOAD_IN_PROGRESS:
                raise R2Failure(NO_SUCH_UPLOAD)
            for (blob_id,) in self.conn.execute(
                    "SELECT blob_id FROM parts WHERE upload_id = ? AND part_number = ?", (upload_id, part_number)):
                old = blob_id
            self.conn.execute(
                "INSERT OR REPLACE INTO parts (upload_id, part_number, blob_id, size, etag, md5) VALUES (?, ?, ?, ?, ?, ?)",
                (upload_id, part_number, blob.blob_id, blob.size, etag, blob.digests["md5"].hex()))
        if old is not None:
            self.discard_blob(old)
        return etag

    def upload(self, key: str, upload_id: str) -> tuple[int, dict[str, Any], dict[str, str], str] | None:
        for state, http, custom, storage_class in self.conn.execute(
                "SELECT state, http_metadata, custom_metadata, storage_class FROM uploads WHERE upload_id = ? AND key = ?",
                (upload_id, key)):
            return state, json.loads(http), json.loads(custom), storage_class
        return None

    def parts(self, upload_id: str) -> dict[int, tuple[str, int, str, str]]:
        """part number -> (blob_id, size, etag, md5 hex)."""
        return {n: (b, s, e, m) for n, b, s, e, m in self.conn.execute(
            "SELECT part_number, blob_id, size, etag, md5 FROM parts WHERE upload_id = ?", (upload_id,))}

    async def concatenate(self, blob_ids: list[str]) -> Blob:
        async def chunks():
            for blob_id in blob_ids:
                with self.open_blob(blob_id) as f:
                    while chunk := f.read(_CHUNK):
                        yield chunk

        return await self.write_blob(chunks())

    def commit_complete(self, upload_id: str, row: ObjectRow) -> None:
        """Publish a completed upload's object and retire its parts, in one transaction."""
        self._step("before_commit")
        old: list[str] = []
        with self.conn:
            if self.upload_state(row.key, upload_id) != UPLOAD_IN_PROGRESS:
                raise R2Failure(NO_SUCH_UPLOAD)
            existing = self.row(row.key)
            if existing is not None:
                old.append(existing.blob_id)
            self.conn.execute(
                f"INSERT OR REPLACE INTO objects ({_COLUMNS}) VALUES ({_PLACEHOLDERS})", row.values())
            old += [b for (b,) in self.conn.execute("DELETE FROM parts WHERE upload_id = ? RETURNING blob_id", (upload_id,))]
            self.conn.execute("UPDATE uploads SET state = ? WHERE upload_id = ?", (UPLOAD_COMPLETED, upload_id))
        self._step("committed")
        for blob_id in old:
            self.discard_blob(blob_id)

    def abort_upload(self, key: str, upload_id: str) -> None:
        old: list[str] = []
        with self.conn:
            state = self.upload_state(key, upload_id)
            if state is None:
                raise R2Failure(INTERNAL_ERROR)
            if state != UPLOAD_IN_PROGRESS:
                return  # aborting twice, or after completion, is allowed and changes nothing
            old = [b for (b,) in self.conn.execute("DELETE FROM parts WHERE upload_id = ? RETURNING blob_id", (upload_id,))]
            self.conn.execute("UPDATE uploads SET state = ? WHERE upload_id = ?", (UPLOAD_ABORTED, upload_id))
        for blob_id in old:
            self.discard_blob(blob_id)

    def close(self) -> None:
        self.conn.close()
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1


def _fsync_dir(path: Path) -> None:
    # The rename itself must be durable before the metadata that points at the file commits.
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
