"""R2's size limits as the R2 docs state them (r2/platform/limits, r2/api/error-codes): a single upload
(put or one part) at most 5 GiB - 5 MiB, custom metadata at most 8,192 bytes."""

from __future__ import annotations

from pathlib import Path

import pytest

from cfemu.clock import VirtualClock
from cfemu.errors import JsException
from cfemu.r2 import R2Bucket, R2Storage
from cfemu.r2.errors import MAX_CUSTOM_METADATA, MAX_VALUE_SIZE
from cfemu.r2.objects import KnownLengthStream


@pytest.fixture
def bucket(tmp_path):
    storage = R2Storage(Path(tmp_path) / "bucket", fsync=False)
    yield R2Bucket(storage, VirtualClock(1_800_000_000.0))
    storage.close()


class _Huge(KnownLengthStream):
    """A stream that says how long it is and must never be read."""

    def __init__(self, length: int) -> None:
        self._n = length

    @property
    def length(self) -> int:
        return self._n

    def __aiter__(self):
        raise AssertionError("a body over the limit was read")


def test_limits_are_the_documented_base_2_values():
    assert MAX_VALUE_SIZE == 5 * 1024**3 - 5 * 1024**2
    assert MAX_CUSTOM_METADATA == 8192


async def test_a_body_over_the_upload_limit_is_refused_before_it_is_read(bucket, tmp_path):
    too_large = "Your proposed upload exceeds the maximum allowed object size. (100100)"
    with pytest.raises(JsException) as info:
        await bucket.put("big", _Huge(MAX_VALUE_SIZE + 1))
    assert str(info.value) == f"put: {too_large}"
    upload = await bucket.createMultipartUpload("big")
    with pytest.raises(JsException) as info:
        await upload.uploadPart(1, _Huge(MAX_VALUE_SIZE + 1))
    assert str(info.value) == f"uploadPart: {too_large}"
    assert await bucket.head("big") is None
    assert list((Path(tmp_path) / "bucket" / "tmp").glob("*")) == []


async def test_custom_metadata_up_to_8192_bytes(bucket):
    ok = {"k": "v" * (8192 - 1)}
    assert dict((await bucket.put("m", "x", customMetadata=ok)).customMetadata) == ok
    with pytest.raises(JsException) as info:
        await bucket.put("m2", "x", customMetadata={"k": "v" * 8192})
    assert str(info.value) == "put: Your metadata headers exceed the maximum allowed metadata size. (10012)"
    # Outside Latin-1 a character counts twice (the R2 gateway's serialised length).
    with pytest.raises(JsException):
        await bucket.put("m3", "x", customMetadata={"k": "é" * 4096 + "€"})
    assert await bucket.head("m2") is None and await bucket.head("m3") is None
