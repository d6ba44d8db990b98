"""SSE-C (`ssecKey`): the key is checked with workerd's texts (r2-bucket.c++ buildSsecKey); cfemu does not
encrypt objects, so a valid key is refused with a clear error instead of being silently ignored."""

from __future__ import annotations

from pathlib import Path

import pytest

from cfemu.clock import VirtualClock
from cfemu.errors import JsException
from cfemu.r2 import R2Bucket, R2Storage
from cfemu.r2.errors import SSEC_UNSUPPORTED

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


async def test_a_valid_key_is_refused_rather_than_ignored(bucket):
    await bucket.put("plain", "v")
    for action, call in [("put", bucket.put("k", "v", ssecKey=KEY)), ("get", bucket.get("plain", ssecKey=KEY)),
                         ("createMultipartUpload", bucket.createMultipartUpload("k", {"ssecKey": bytes(32)}))]:
        with pytest.raises(JsException) as info:
            await call
        assert str(info.value) == SSEC_UNSUPPORTED.format(action=action)
    assert await bucket.head("k") is None
    upload = await bucket.createMultipartUpload("m")
    with pytest.raises(JsException) as info:
        await upload.uploadPart(1, "x", {"ssecKey": KEY})
    assert str(info.value) == SSEC_UNSUPPORTED.format(action="uploadPart")
    assert (await bucket.head("plain")).ssecKeyMd5 is None
