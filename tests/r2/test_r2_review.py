"""R2 review findings: values coerced to strings as JS coerces them, malformed arguments give
clear JS errors (never a bare Python KeyError/ValueError)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cfemu.clock import VirtualClock
from cfemu.errors import JsTypeError
from cfemu.http import Headers
from cfemu.r2 import R2Bucket, R2Storage


@pytest.fixture
def bucket(tmp_path):
    storage = R2Storage(Path(tmp_path) / "bucket", fsync=False)
    yield R2Bucket(storage, VirtualClock(1_800_000_000.0))
    storage.close()


async def test_custom_metadata_values_become_strings_as_in_js(bucket):
    # customMetadata is a Record<string, string>: workerd coerces each value with JS's String().
    obj = await bucket.put("k", "v", customMetadata={"flag": True, "off": False, "n": 1.0, "x": 2.5, "none": None, "i": 7})
    expected = {"flag": "true", "off": "false", "n": "1", "x": "2.5", "none": "null", "i": "7"}
    assert dict(obj.customMetadata) == expected
    assert dict((await bucket.head("k")).customMetadata) == expected


async def test_http_metadata_values_become_strings_as_in_js(bucket):
    obj = await bucket.put("k", "v", httpMetadata={"contentLanguage": True, "cacheControl": 60.0})
    assert dict(obj.httpMetadata) == {"contentLanguage": "true", "cacheControl": "60"}


async def test_complete_with_a_malformed_part_is_a_type_error(bucket):
    upload = await bucket.createMultipartUpload("mp")
    part = await upload.uploadPart(1, b"x")
    with pytest.raises(JsTypeError) as info:
        await upload.complete([{"partNumber": 1}])
    assert str(info.value) == ("Incorrect type for the 'etag' field on 'UploadedPart': the provided value is "
                               "not of type 'string'.")
    with pytest.raises(JsTypeError) as info:
        await upload.complete([{"etag": part["etag"]}])
    assert str(info.value) == ("Incorrect type for the 'partNumber' field on 'UploadedPart': the provided value "
                               "is not of type 'number'.")
    # The upload is still usable.
    done = await upload.complete([part])
    assert done.size == 1


async def test_unparsable_conditional_date_header_is_a_js_error(bucket):
    await bucket.put("k", "v")
    with pytest.raises(JsTypeError) as info:
        await bucket.get("k", onlyIf=Headers({"if-modified-since": "not a date"}))
    assert str(info.value) == 'Invalid date in If-Modified-Since: "not a date"'
