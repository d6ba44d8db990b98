"""R2 object names as the R2 service checks them: not empty, at most 1024 UTF-8 bytes."""

from __future__ import annotations

from pathlib import Path

import pytest

from cfemu.clock import VirtualClock
from cfemu.errors import JsException
from cfemu.r2 import R2Bucket, R2Storage


@pytest.fixture
def bucket(tmp_path):
    storage = R2Storage(Path(tmp_path) / "bucket", fsync=False)
    yield R2Bucket(storage, VirtualClock(1_800_000_000.0))
    storage.close()


def _invalid(action: str) -> str:
    return f"{action}: The specified object name is not valid. (10020)"


# -- keys -----------------------------------------------------------------------------------------

async def test_empty_key_is_an_invalid_object_name(bucket):
    # workerd sends the key as given; the R2 service refuses "" as it refuses a name over 1024 bytes.
    for action, call in [("put", bucket.put("", "v")), ("get", bucket.get("")), ("head", bucket.head("")),
                         ("delete", bucket.delete("")), ("delete", bucket.delete(["a", ""])),
                         ("createMultipartUpload", bucket.createMultipartUpload(""))]:
        with pytest.raises(JsException) as info:
            await call
        assert str(info.value) == _invalid(action)
    assert (await bucket.list())["objects"] == []


async def test_key_of_exactly_1024_bytes_is_valid_and_1025_is_not(bucket):
    ok = "é" * 512  # 1024 bytes
    assert (await bucket.put(ok, "v")).key == ok
    with pytest.raises(JsException) as info:
        await bucket.put(ok + "x", "v")
    assert str(info.value) == _invalid("put")
