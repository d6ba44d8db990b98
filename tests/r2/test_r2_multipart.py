"""R2 multipart uploads: the happy path, resume, and production's part-size rules and errors."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from cfemu.errors import JsException, JsTypeError
from cfemu.r2.errors import MIN_PART_SIZE
from cfemu.testing import Runtime

APP = Path(__file__).parent / "workers" / "app" / "wrangler.toml"
PART = MIN_PART_SIZE


@pytest.fixture
async def bucket(tmp_path):
    async with Runtime.from_config(APP, persist_to=tmp_path / "state") as rt:
        yield rt.env.BUCKET


async def test_happy_path(bucket):
    upload = await bucket.createMultipartUpload("big", httpMetadata={"contentType": "application/octet-stream"},
                                                customMetadata={"who": "me"})
    assert upload.key == "big" and upload.uploadId
    a, b, c = b"a" * PART, b"b" * PART, b"tail"
    # Parts may arrive in any order; resume works from the id alone.
    p2 = await upload.uploadPart(2, b)
    resumed = bucket.resumeMultipartUpload("big", upload.uploadId)
    p1 = await resumed.uploadPart(1, a)
    p3 = await upload.uploadPart(3, c)
    assert p1 == {"partNumber": 1, "etag": p1["etag"]} and p1.etag != p2.etag
    assert await bucket.head("big") is None  # nothing visible until complete
    obj = await upload.complete([p1, p2, p3])
    md5s = b"".join(hashlib.md5(x).digest() for x in (a, b, c))
    assert obj.etag == f"{hashlib.md5(md5s).hexdigest()}-3"
    assert obj.size == 2 * PART + 4
    assert obj.httpMetadata == {"contentType": "application/octet-stream"} and obj.customMetadata == {"who": "me"}
    body = await bucket.get("big", range={"offset": PART - 2, "length": 4})
    assert await body.bytes() == b"aabb"
    whole = await bucket.get("big")
    assert hashlib.md5(await whole.bytes()).digest() == hashlib.md5(a + b + c).digest()
    # Completed: further parts and a second completion fail; abort is a no-op.
    with pytest.raises(JsException) as info:
        await upload.uploadPart(4, b"x")
    assert str(info.value) == "uploadPart: The specified multipart upload does not exist. (10024)"
    with pytest.raises(JsException) as info:
        await upload.complete([p1, p2, p3])
    assert str(info.value) == "completeMultipartUpload: The specified multipart upload does not exist. (10024)"
    await upload.abort()
    assert (await bucket.head("big")).size == obj.size


async def test_single_small_part_is_fine(bucket):
    upload = await bucket.createMultipartUpload("small")
    part = await upload.uploadPart(1, "only")
    obj = await upload.complete([part])
    assert obj.size == 4 and await (await bucket.get("small")).text() == "only"


async def test_part_too_small(bucket):
    upload = await bucket.createMultipartUpload("k")
    p1 = await upload.uploadPart(1, b"x" * 10)
    p2 = await upload.uploadPart(2, b"y" * 10)
    with pytest.raises(JsException) as info:
        await upload.complete([p1, p2])
    assert str(info.value) == ("completeMultipartUpload: Your proposed upload is smaller than the minimum allowed "
                               "object size. (10011)")


async def test_unequal_parts(bucket):
    upload = await bucket.createMultipartUpload("k")
    p1 = await upload.uploadPart(1, b"x" * PART)
    p2 = await upload.uploadPart(2, b"y" * (PART + 1))
    p3 = await upload.uploadPart(3, b"z")
    with pytest.raises(JsException) as info:
        await upload.complete([p1, p2, p3])
    assert str(info.value) == "completeMultipartUpload: There was a problem with the multipart upload. (10048)"
    # A last part larger than the others is refused too.
    upload = await bucket.createMultipartUpload("k2")
    q1 = await upload.uploadPart(1, b"x" * PART)
    q2 = await upload.uploadPart(2, b"y" * (PART + 1))
    with pytest.raises(JsException) as info:
        await upload.complete([q1, q2])
    assert "(10048)" in str(info.value)


async def test_bad_parts_and_numbers(bucket):
    upload = await bucket.createMultipartUpload("k")
    p1 = await upload.uploadPart(1, b"data")
    with pytest.raises(JsException) as info:
        await upload.complete([{"partNumber": 1, "etag": "wrong"}])
    assert str(info.value) == "completeMultipartUpload: One or more of the specified parts could not be found. (10025)"
    with pytest.raises(JsException) as info:
        await upload.complete([p1, p1])
    assert str(info.value) == "completeMultipartUpload: We encountered an internal error. Please try again. (10001)"
    for n in (0, 10001):
        with pytest.raises(JsTypeError) as info:
            await upload.uploadPart(n, b"x")
        assert str(info.value) == f"Part number must be between 1 and 10000 (inclusive). Actual value was: {n}"
    # Re-uploading a part number replaces it (and its etag).
    p1b = await upload.uploadPart(1, b"other")
    assert p1b["etag"] != p1["etag"]
    obj = await upload.complete([p1b])
    assert await (await bucket.get("k")).text() == "other" and obj.size == 5


async def test_abort(bucket):
    upload = await bucket.createMultipartUpload("k")
    await upload.uploadPart(1, b"data")
    await upload.abort()
    await upload.abort()  # twice is fine
    with pytest.raises(JsException) as info:
        await upload.uploadPart(2, b"x")
    assert str(info.value) == "uploadPart: The specified multipart upload does not exist. (10024)"
    stranger = bucket.resumeMultipartUpload("k", "no-such-id")
    with pytest.raises(JsException) as info:
        await stranger.abort()
    assert str(info.value) == "abortMultipartUpload: We encountered an internal error. Please try again. (10001)"
    with pytest.raises(JsException) as info:
        await bucket.createMultipartUpload("x" * 1025)
    assert str(info.value) == "createMultipartUpload: The specified object name is not valid. (10020)"
