"""SSE-C (`ssecKey`): the key is checked with workerd's texts (r2-bucket.c++ buildSsecKey); put/get store and
read the body encrypted with the customer's key (AES-256), head/list/put report `ssecKeyMd5`; multipart
uploads with a key are refused with a clear error (not implemented)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cfemu.clock import VirtualClock
from cfemu.errors import JsException
from cfemu.r2 import R2Bucket, R2Storage
from cfemu.r2.errors import SSEC_NOT_ENCRYPTED, SSEC_REQUIRED, SSEC_UNSUPPORTED, SSEC_WRONG_KEY

KEY = "0123456789abcdef" * 4


@pytest.fixture
def bucket(tmp_path):
    storage = R2Storage(Path(tmp_path) / "bucket", fsync=False)
    yield R2Bucket(storage, VirtualClock(1_800_000_000.0))
    storage.close()


@pytest.mark.parametrize("key, message", [
    ("0123456789ABCDEF" * 4, "SSE-C Key has invalid format"),  # lower-case hex only
    ("zz" * 32, "SSE-C Key has invalid format"),
    ("ab" * 31, "SSE-C Key must be 32 bytes in length"),
    (b"\x00" * 31, "SSE-C Key must be 32 bytes in length"),
])
async def test_a_malformed_key_is_refused_with_workerds_text(bucket, key, message):
    for call in (bucket.put("k", "v", ssecKey=key), bucket.get("k", ssecKey=key),
                 bucket.createMultipartUpload("k", ssecKey=key)):
        with pytest.raises(JsException) as info:
            await call
        assert str(info.value) == message
    assert await bucket.head("k") is None


async def test_put_and_get_with_a_key(bucket, tmp_path):
    import hashlib

    obj = await bucket.put("k", b"secret body " * 100, ssecKey=KEY)
    md5 = hashlib.md5(bytes.fromhex(KEY)).hexdigest()
    assert obj.ssecKeyMd5 == md5
    assert obj.etag == hashlib.md5(b"secret body " * 100).hexdigest()
    # At rest the body is not the plaintext.
    blobs = [p for p in (Path(tmp_path) / "bucket" / "blobs").rglob("*") if p.is_file()]
    assert len(blobs) == 1 and b"secret body" not in blobs[0].read_bytes()
    got = await bucket.get("k", ssecKey=KEY)
    assert got.ssecKeyMd5 == md5 and await got.bytes() == b"secret body " * 100
    # Bytes keys work too, and ranges decrypt from the middle of the stream.
    ranged = await bucket.get("k", ssecKey=bytes.fromhex(KEY), range={"offset": 17, "length": 30})
    assert await ranged.bytes() == (b"secret body " * 100)[17:47]
    assert (await bucket.head("k")).ssecKeyMd5 == md5
    assert [o.ssecKeyMd5 for o in (await bucket.list())["objects"]] == [md5]


async def test_a_large_encrypted_body_streams(bucket):
    body = bytes(range(256)) * 9000  # over the eager-read size
    await bucket.put("big", body, ssecKey=KEY)
    got = await bucket.get("big", ssecKey=KEY, range={"offset": 100_000})
    chunks = [c async for c in got.body]
    assert b"".join(chunks) == body[100_000:]


async def test_reading_without_the_key_or_with_another_fails(bucket):
    await bucket.put("k", "v", ssecKey=KEY)
    await bucket.put("plain", "v")
    with pytest.raises(JsException) as info:
        await bucket.get("k")
    assert str(info.value) == SSEC_REQUIRED.format(action="get")
    with pytest.raises(JsException) as info:
        await bucket.get("k", ssecKey="ab" * 32)
    assert str(info.value) == SSEC_WRONG_KEY.format(action="get")
    with pytest.raises(JsException) as info:
        await bucket.get("plain", ssecKey=KEY)
    assert str(info.value) == SSEC_NOT_ENCRYPTED.format(action="get")
    # Overwriting without a key stores a plain object.
    await bucket.put("k", "open")
    assert await (await bucket.get("k")).text() == "open"
    assert (await bucket.head("k")).ssecKeyMd5 is None


async def test_copying_an_encrypted_object_through_its_body(bucket):
    await bucket.put("src", b"abc" * 1000, ssecKey=KEY)
    src = await bucket.get("src", ssecKey=KEY)
    copy = await bucket.put("dst", src.body)
    assert copy.ssecKeyMd5 is None and await (await bucket.get("dst")).bytes() == b"abc" * 1000


async def test_multipart_with_a_key_is_refused_rather_than_ignored(bucket):
    for action, call in [("createMultipartUpload", bucket.createMultipartUpload("k", {"ssecKey": bytes(32)}))]:
        with pytest.raises(JsException) as info:
            await call
        assert str(info.value) == SSEC_UNSUPPORTED.format(action=action)
    upload = await bucket.createMultipartUpload("m")
    with pytest.raises(JsException) as info:
        await upload.uploadPart(1, "x", {"ssecKey": KEY})
    assert str(info.value) == SSEC_UNSUPPORTED.format(action="uploadPart")


async def test_encrypted_objects_survive_a_reopen(tmp_path):
    storage = R2Storage(Path(tmp_path) / "b2", fsync=False)
    await R2Bucket(storage, VirtualClock(0)).put("k", "kept", ssecKey=KEY)
    storage.close()
    storage = R2Storage(Path(tmp_path) / "b2", fsync=False)
    try:
        assert await (await R2Bucket(storage, VirtualClock(0)).get("k", ssecKey=KEY)).text() == "kept"
    finally:
        storage.close()


async def test_a_bucket_from_before_sse_c_opens_and_gains_the_column(tmp_path):
    import apsw

    root = Path(tmp_path) / "old"
    storage = R2Storage(root, fsync=False)
    await R2Bucket(storage, VirtualClock(0)).put("k", "old")
    storage.close()
    conn = apsw.Connection(str(root / "metadata.sqlite"))
    conn.execute("ALTER TABLE objects DROP COLUMN ssec")
    conn.close()
    storage = R2Storage(root, fsync=False)
    try:
        bucket = R2Bucket(storage, VirtualClock(0))
        assert await (await bucket.get("k")).text() == "old"
        await bucket.put("s", "new", ssecKey=KEY)
        assert await (await bucket.get("s", ssecKey=KEY)).text() == "new"
    finally:
        storage.close()
