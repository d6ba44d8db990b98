"""`cfemu dev` applies new [[migrations]] when the config changes, keeping the objects' data."""

import json
import time
import urllib.error
import urllib.request

import pytest

WORKER = """
from workers import DurableObject, Response, WorkerEntrypoint


class {cls}(DurableObject):
    async def fetch(self, request):
        if request.method == "POST":
            await self.ctx.storage.put("v", await request.text())
        return Response(await self.ctx.storage.get("v") or "")


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return await self.env.OBJ.getByName("one").fetch(request)
"""
TOML = """
[[durable_objects.bindings]]
name = "OBJ"
class_name = "{cls}"

[[migrations]]
tag = "v1"
new_sqlite_classes = ["Old"]
"""
RENAME = """
[[migrations]]
tag = "v2"
renamed_classes = [{ from = "Old", to = "New" }]
"""


def _get(url: str) -> str:
    return urllib.request.urlopen(url, timeout=5).read().decode()


@pytest.mark.slow
def test_rename_applied_on_config_change(tmp_path, write_worker, dev_server):
    config = write_worker(tmp_path / "w", WORKER.format(cls="Old"), TOML.format(cls="Old"))
    server = dev_server(config, "--persist-to", str(tmp_path / "state"))
    urllib.request.urlopen(urllib.request.Request(server.url + "/", data=b"kept", method="POST"), timeout=5).read()
    mark = server.mark()
    (tmp_path / "w" / "worker.py").write_text(WORKER.format(cls="New"))
    config.write_text(config.read_text().replace('class_name = "Old"', 'class_name = "New"') + RENAME)
    server.wait_for("Reloaded worker", start=mark, timeout=15)
    deadline = time.monotonic() + 10
    while True:
        try:
            body = _get(server.url + "/")
            break
        except urllib.error.HTTPError:
            if time.monotonic() > deadline:
                raise AssertionError(server.output)
            time.sleep(0.1)
    assert body == "kept"
    tags = json.loads((tmp_path / "state" / "do" / "classes.json").read_text())["tags"]
    assert tags == ["v1", "v2"]
