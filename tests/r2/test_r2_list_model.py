"""`list()` pagination against a model: every page obeys `limit`, cursors walk the whole listing,
delimited prefixes appear once, order is UTF-8 byte order."""

from __future__ import annotations

import asyncio
import shutil
import tempfile

from hypothesis import given, settings
from hypothesis import strategies as st

from cfemu.clock import VirtualClock
from cfemu.r2 import R2Bucket, R2Storage

keys = st.sets(st.text(alphabet="a/éz", min_size=1, max_size=5), max_size=25)


def model(all_keys: set[str], prefix: str, delimiter: str | None, start_after: str | None) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for key in sorted(all_keys, key=lambda k: k.encode()):
        if not key.startswith(prefix) or (start_after is not None and key.encode() <= start_after.encode()):
            continue
        if delimiter:
            i = key.find(delimiter, len(prefix))
            if i >= 0:
                group = key[: i + len(delimiter)]
                if group not in seen:
                    seen.add(group)
                    out.append(("prefix", group))
                continue
        out.append(("object", key))
    return out


@settings(max_examples=50, deadline=None)
@given(keys, st.sampled_from(["", "a", "a/", "é"]), st.sampled_from([None, "/", "z", "a/"]),
       st.integers(min_value=1, max_value=4), st.one_of(st.none(), st.text(alphabet="a/éz", max_size=3)))
def test_list_pages_match_the_model(all_keys, prefix, delimiter, limit, start_after):
    root = tempfile.mkdtemp(prefix="cfemu-r2-model-")
    storage = R2Storage(root, synchronous="OFF", fsync=False)
    try:
        bucket = R2Bucket(storage, VirtualClock(0))

        async def walk() -> list[tuple[str, str]]:
            for key in all_keys:
                await bucket.put(key, key)
            got: list[tuple[str, str]] = []
            cursor = None
            for _ in range(100):
                page = await bucket.list(prefix=prefix, delimiter=delimiter, limit=limit, cursor=cursor,
                                         startAfter=start_after)
                items = [("object", o.key) for o in page["objects"]] + [("prefix", p) for p in page["delimitedPrefixes"]]
                assert len(items) <= limit
                got.extend(items)
                if not page["truncated"]:
                    assert "cursor" not in page
                    return got
                assert items, "a truncated page must not be empty"
                cursor = page["cursor"]
            raise AssertionError("list never finished")

        got = asyncio.run(walk())
        expected = model(all_keys, prefix, delimiter, start_after)
        # Within a page objects and prefixes come as two lists; across pages the order is the model's.
        assert sorted(got, key=lambda i: i[1].encode()) == sorted(expected, key=lambda i: i[1].encode())
        assert len(got) == len(expected)
    finally:
        storage.close()
        shutil.rmtree(root, ignore_errors=True)
