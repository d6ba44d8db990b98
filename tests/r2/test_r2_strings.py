"""Strings as workerd receives them: lone surrogates become U+FFFD (V8's UTF-8 conversion) instead of a
Python UnicodeEncodeError; list options that must be strings get jsg's field-type TypeError."""

from __future__ import annotations

from pathlib import Path

import pytest

from cfemu.clock import VirtualClock
from cfemu.errors import JsTypeError
from cfemu.r2 import R2Bucket, R2Storage


@pytest.fixture
def bucket(tmp_path):
    storage = R2Storage(Path(tmp_path) / "bucket", fsync=False)
    yield R2Bucket(storage, VirtualClock(1_800_000_000.0))
    storage.close()


async def test_lone_surrogates_become_replacement_characters(bucket):
    obj = await bucket.put("a\ud800b", "x\udc00y", customMetadata={"k\ud800": "v\udfff"},
                           httpMetadata={"contentType": "text/\ud800"})
    assert obj.key == "a\ufffdb"
    assert dict(obj.customMetadata) == {"k\ufffd": "v\ufffd"}
    assert await (await bucket.get("a\ud800b")).text() == "x\ufffdy"
    assert (await bucket.head("a\ufffdb")).httpMetadata["contentType"] == "text/\ufffd"
    listed = await bucket.list(prefix="a\ud800")
    assert [o.key for o in listed["objects"]] == ["a\ufffdb"]
    # A proper pair (as Python sometimes holds one) is the character it encodes.
    await bucket.put("\ud83d\ude00", "pair")
    assert await (await bucket.get("\U0001F600")).text() == "pair"
    await bucket.delete(["a\ud800b"])
    assert await bucket.head("a\ufffdb") is None


@pytest.mark.parametrize("field", ["prefix", "delimiter", "cursor", "startAfter"])
async def test_list_string_options_of_another_type_are_type_errors(bucket, field):
    with pytest.raises(JsTypeError) as info:
        await bucket.list(**{field: 5})
    assert str(info.value) == (f"Incorrect type for the '{field}' field on 'R2ListOptions': the provided value is "
                               "not of type 'string'.")


async def test_a_resumed_upload_with_a_lone_surrogate_id_is_an_r2_error(bucket):
    from cfemu.errors import JsException

    with pytest.raises(JsException) as info:
        await bucket.resumeMultipartUpload("k", "\ud800").abort()
    assert str(info.value) == "abortMultipartUpload: We encountered an internal error. Please try again. (10001)"


async def test_include_given_as_a_string_is_a_type_error(bucket):
    # Was "Unsupported include value h": the string was iterated character by character.
    with pytest.raises(JsTypeError) as info:
        await bucket.list(include="httpMetadata")
    assert str(info.value) == ("Incorrect type for the 'include' field on 'R2ListOptions': the provided value is "
                               "not of type 'Array'.")
    listed = await bucket.list(include=("httpMetadata",))
    assert listed["objects"] == []
