"""A crash in the middle of an R2 write never leaves half an object; start-up cleans what it strands."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cfemu.clock import VirtualClock
from cfemu.r2 import R2Bucket, R2Storage
from cfemu.testing import Runtime

APP = Path(__file__).parent / "workers" / "app" / "wrangler.toml"


class _Crash(Exception):
    pass


def _files(root: Path) -> tuple[list[Path], list[Path]]:
    blobs = [p for p in (root / "blobs").rglob("*") if p.is_file()]
    temps = [p for p in (root / "tmp").iterdir()]
    return blobs, temps


@pytest.mark.parametrize("step", ["written", "renamed", "before_commit", "committed"])
async def test_crash_between_steps_of_a_put(tmp_path, step):
    state = tmp_path / "state"
    root = state / "r2" / "test-bucket"
    async with Runtime.from_config(APP, persist_to=state) as rt:
        await rt.env.BUCKET.put("k", "old")
        storage = rt.service("r2").storage("BUCKET")

        def fault(name: str) -> None:
            if name == step:
                raise _Crash(name)

        storage.fault = fault
        with pytest.raises(_Crash):
            await rt.env.BUCKET.put("k", "new")
        await rt.crash()
        await rt.restart()
        text = await (await rt.env.BUCKET.get("k")).text()
        # Once the metadata committed the new object is the object; before that, the old one is.
        assert text == ("new" if step == "committed" else "old")
        blobs, temps = _files(root)
        assert len(blobs) == 1 and temps == []


async def test_start_removes_stray_files(tmp_path):
    state = tmp_path / "state"
    root = state / "r2" / "test-bucket"
    async with Runtime.from_config(APP, persist_to=state) as rt:
        await rt.env.BUCKET.put("k", "v")
    (root / "tmp" / "half-written").write_bytes(b"partial")
    (root / "blobs" / "ff").mkdir(exist_ok=True)
    (root / "blobs" / "ff" / "ff00").write_bytes(b"orphan")
    async with Runtime.from_config(APP, persist_to=state) as rt:
        assert await (await rt.env.BUCKET.get("k")).text() == "v"
    blobs, temps = _files(root)
    assert len(blobs) == 1 and temps == []


async def test_crash_during_multipart_complete(tmp_path):
    state = tmp_path / "state"
    async with Runtime.from_config(APP, persist_to=state) as rt:
        upload = await rt.env.BUCKET.createMultipartUpload("mp")
        part = await upload.uploadPart(1, b"data")
        storage = rt.service("r2").storage("BUCKET")
        storage.fault = lambda name: (_ for _ in ()).throw(_Crash()) if name == "before_commit" else None
        with pytest.raises(_Crash):
            await upload.complete([part])
        await rt.crash()
        await rt.restart()
        assert await rt.env.BUCKET.head("mp") is None
        # The upload is still in progress and its part survived: completing now works.
        resumed = rt.env.BUCKET.resumeMultipartUpload("mp", upload.uploadId)
        assert (await resumed.complete([part])).size == 4
        assert len(_files(state / "r2" / "test-bucket")[0]) == 1


_KILL_SCRIPT = textwrap.dedent("""
    import asyncio, os, signal, sys
    from cfemu.clock import VirtualClock
    from cfemu.r2 import R2Bucket, R2Storage

    root, step = sys.argv[1], sys.argv[2]

    async def main():
        storage = R2Storage(root)
        bucket = R2Bucket(storage, VirtualClock(0))
        await bucket.put("k", "old")
        def fault(name):
            if name == step:
                os.kill(os.getpid(), signal.SIGKILL)
        storage.fault = fault
        await bucket.put("k", b"new" * 100_000)

    asyncio.run(main())
""")


@pytest.mark.parametrize("step", ["written", "renamed", "before_commit"])
def test_kill_9_mid_put(tmp_path, step):
    root = tmp_path / "bucket"
    proc = subprocess.run([sys.executable, "-c", _KILL_SCRIPT, str(root), step], capture_output=True, timeout=60)
    assert proc.returncode == -9, proc.stderr.decode()
    leftovers = [p for p in root.rglob("*") if p.is_file() and p.parent.name != "bucket"]
    assert len(leftovers) == 2  # the old body plus the stranded new one (temp or renamed)

    storage = R2Storage(root)  # opening cleans up
    bucket = R2Bucket(storage, VirtualClock(0))

    async def read():
        return await (await bucket.get("k")).text()

    assert asyncio.run(read()) == "old"
    blobs, temps = _files(root)
    assert len(blobs) == 1 and temps == []
    storage.close()


@pytest.mark.parametrize("step", ["written", "renamed", "before_commit"])
async def test_opening_the_bucket_during_a_write_leaves_that_write_alone(tmp_path, step):
    # A `cfemu dev` starting (or reloading) while the CLI, or a request, is writing must not clean
    # away the body of that write as if a crash had stranded it.
    root = tmp_path / "bucket"
    storage = R2Storage(root, fsync=False)
    bucket = R2Bucket(storage, VirtualClock(0))

    def fault(name: str) -> None:
        if name == step:
            R2Storage(root, fsync=False).close()  # another opener runs its start-up clean-up

    storage.fault = fault
    await bucket.put("k", b"body")
    storage.fault = None
    assert await (await bucket.get("k")).text() == "body"
    upload = await bucket.createMultipartUpload("mp")
    storage.fault = fault
    part = await upload.uploadPart(1, b"part")
    done = await upload.complete([part])
    storage.fault = None
    assert done.size == 4 and await (await bucket.get("mp")).text() == "part"
    storage.close()
    # With nobody writing, opening cleans as before.
    (root / "tmp" / "stray").write_bytes(b"x")
    R2Storage(root, fsync=False).close()
    assert not (root / "tmp" / "stray").exists()
