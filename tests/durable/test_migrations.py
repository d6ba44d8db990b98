import shutil
from pathlib import Path

import pytest

from cfemu.errors import ConfigError
from cfemu.testing import Runtime

BASIC = Path(__file__).parent / "workers" / "basic"


def make_worker(tmp_path: Path, toml: str, rename: dict[str, str] | None = None) -> Path:
    root = tmp_path / "w"
    root.mkdir(exist_ok=True)
    source = (BASIC / "worker.py").read_text()
    for old, new in (rename or {}).items():
        source = source.replace(f"class {old}(", f"class {new}(")
    (root / "worker.py").write_text(source)
    (root / "wrangler.toml").write_text(toml)
    return root / "wrangler.toml"


V1 = """
name = "basic"
main = "worker.py"
[[durable_objects.bindings]]
name = "STORE"
class_name = "Store"
[[migrations]]
tag = "v1"
new_sqlite_classes = ["Store"]
"""

V2_RENAME = V1.replace('class_name = "Store"', 'class_name = "Shop"') + """
[[migrations]]
tag = "v2"
renamed_classes = [{ from = "Store", to = "Shop" }]
"""

V3_DELETE = """
name = "basic"
main = "worker.py"
[[migrations]]
tag = "v1"
new_sqlite_classes = ["Store"]
[[migrations]]
tag = "v2"
deleted_classes = ["Store"]
"""


async def test_rename_keeps_data_and_ids(tmp_path):
    config = make_worker(tmp_path, V1)
    async with Runtime.from_config(config, persist_to=tmp_path / "state") as rt:
        unique = rt.env.STORE.newUniqueId()
        await rt.env.STORE.getByName("room").put("k", "by name")
        await rt.env.STORE.get(unique).put("k", "by unique id")
        make_worker(tmp_path, V2_RENAME, rename={"Store": "Shop"})
        await rt.redeploy(config)
        assert await rt.env.STORE.getByName("room").get("k") == "by name"
        same = rt.env.STORE.idFromString(unique.toString())
        assert await rt.env.STORE.get(same).get("k") == "by unique id"


async def test_delete_removes_all_objects(tmp_path):
    config = make_worker(tmp_path, V1)
    state = tmp_path / "state"
    async with Runtime.from_config(config, persist_to=state) as rt:
        await rt.env.STORE.getByName("room").put("k", 1)
        assert rt.list_ids("STORE")
    make_worker(tmp_path, V3_DELETE)
    (tmp_path / "w" / "worker.py").write_text(
        "from workers import WorkerEntrypoint, Response\n"
        "class Default(WorkerEntrypoint):\n    async def fetch(self, request):\n        return Response('ok')\n")
    async with Runtime.from_config(config, persist_to=state) as rt:
        assert (await rt.fetch("/")).status == 200
    assert not (state / "do" / "Store").exists()


@pytest.mark.parametrize("toml, message", [
    (V1 + '[[migrations]]\ntag = "v2"\nrenamed_classes = [{ from = "Store", to = "Store" }]\n', "already exists"),
    (V1 + '[[migrations]]\ntag = "v2"\ndeleted_classes = ["Store"]\n', "still bound"),
    (V1.replace('new_sqlite_classes = ["Store"]', 'new_sqlite_classes = ["Other"]'), "has no migration"),
    (V1 + '[[migrations]]\ntag = "v2"\nnew_classes = ["Store"]\n', "already exists"),
    (V1 + '[[migrations]]\ntag = "v2"\nrenamed_classes = [{ from = "Nope", to = "X" }]\n', "does not exist"),
])
async def test_invalid_migrations_name_the_problem(tmp_path, toml, message):
    config = make_worker(tmp_path, toml)
    rt = Runtime.from_config(config, persist_to=tmp_path / "state")
    with pytest.raises(ConfigError, match=message):
        await rt.start()
    await rt.close()


async def test_applied_tags_are_recorded(tmp_path):
    config = make_worker(tmp_path, V1)
    state = tmp_path / "state"
    async with Runtime.from_config(config, persist_to=state):
        pass
    import json

    assert json.loads((state / "do" / "classes.json").read_text())["tags"] == ["v1"]
    shutil.rmtree(state)
