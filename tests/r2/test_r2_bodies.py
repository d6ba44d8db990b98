"""R2 put bodies as workerd takes them (r2-rpc.c++): strings, bytes, Blobs and streams of known length
only; and R2ObjectBody.blob() (r2-bucket.c++)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cfemu.clock import VirtualClock
from cfemu.errors import JsTypeError
from cfemu.r2 import R2Bucket, R2Storage
from cfemu.r2.errors import STREAM_LENGTH_UNKNOWN
from cfemu.sdk.forms import Blob


@pytest.fixture
def bucket(tmp_path):
    storage = R2Storage(Path(tmp_path) / "bucket", fsync=False)
    yield R2Bucket(storage, VirtualClock(1_800_000_000.0))
    storage.close()


# -- bodies ---------------------------------------------------------------------------------------

async def test_put_of_a_stream_of_unknown_length_is_refused(bucket):
    async def stream():
        yield b"ab"

    with pytest.raises(JsTypeError) as info:
        await bucket.put("s", stream())
    assert str(info.value) == STREAM_LENGTH_UNKNOWN
    assert STREAM_LENGTH_UNKNOWN == ("Provided readable stream must have a known length (request/response body "
                                     "or readable half of FixedLengthStream)")
    assert await bucket.head("s") is None
    upload = await bucket.createMultipartUpload("m")
    with pytest.raises(JsTypeError) as info:
        await upload.uploadPart(1, stream())
    assert str(info.value) == STREAM_LENGTH_UNKNOWN


async def test_put_of_another_objects_body_copies_it(bucket):
    # An R2 get body has a known length, so it can be put as is (copying an object).
    await bucket.put("src", b"x" * 3000)
    src = await bucket.get("src")
    copy = await bucket.put("dst", src.body)
    assert copy.size == 3000
    assert await (await bucket.get("dst")).bytes() == b"x" * 3000
    ranged = await bucket.get("src", range={"offset": 10, "length": 5})
    assert (await bucket.put("part", ranged.body)).size == 5


async def test_put_of_a_blob_stores_its_bytes(bucket):
    obj = await bucket.put("b", Blob([b"ab", "cd"], content_type="text/plain"))
    assert obj.size == 4
    assert await (await bucket.get("b")).text() == "abcd"


async def test_put_of_a_list_is_a_type_error(bucket):
    with pytest.raises(JsTypeError):
        await bucket.put("l", [b"a", b"b"])
    assert await bucket.head("l") is None


async def test_object_body_blob_has_the_content_type(bucket):
    await bucket.put("k", b"hello", httpMetadata={"contentType": "text/plain"})
    obj = await bucket.get("k")
    blob = await obj.blob()
    assert isinstance(blob, Blob)
    assert await blob.bytes() == b"hello" and blob.size == 5 and blob.type == "text/plain"
    assert obj.bodyUsed
    with pytest.raises(JsTypeError):
        await obj.blob()
    await bucket.put("n", b"x")
    assert (await (await bucket.get("n")).blob()).type == ""


async def test_put_of_a_used_body_is_a_type_error_and_leaves_no_file(bucket, tmp_path):
    await bucket.put("src", b"abc")
    src = await bucket.get("src")
    await src.bytes()
    with pytest.raises(JsTypeError):
        await bucket.put("dst", src.body)
    assert await bucket.head("dst") is None
    assert list((Path(tmp_path) / "bucket" / "tmp").glob("*")) == []


async def test_json_of_a_body_that_is_not_json_is_a_js_syntax_error(bucket):
    from cfemu.errors import JsException

    await bucket.put("bad", "{not json")
    with pytest.raises(JsException) as info:
        await (await bucket.get("bad")).json()
    assert info.value.name == "SyntaxError"
    assert not isinstance(info.value, ValueError)
