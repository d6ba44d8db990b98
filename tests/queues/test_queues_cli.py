"""`cfemu queues list|purge`, offline on the state files and through a running `cfemu dev`."""

import json
import urllib.request

from click.testing import CliRunner

from cfemu.cli import main
from cfemu.testing import Runtime

WORKER = """
from workers import Response, WorkerEntrypoint

class Default(WorkerEntrypoint):
    async def fetch(self, request):
        await self.env.Q.send({"n": 1})
        return Response("sent")

    async def queue(self, batch, env, ctx):
        raise RuntimeError("keep them")
"""
TOML = """
[[queues.producers]]
binding = "Q"
queue = "jobs"

[[queues.consumers]]
queue = "jobs"
max_batch_timeout = 60
"""


def _list(config, state):
    result = CliRunner().invoke(main, ["queues", "list", "--config", str(config), "--persist-to", str(state), "--json"])
    assert result.exit_code == 0, result.output
    return {row["queue"]: row for row in json.loads(result.stdout)}


async def test_list_and_purge_offline(tmp_path, write_worker):
    config = write_worker(tmp_path / "w", WORKER, TOML)
    state = tmp_path / "state"
    async with Runtime.from_config(config, persist_to=state) as rt:
        for _ in range(3):
            await rt.fetch("/")
    assert _list(config, state)["jobs"]["depth"] == 3
    result = CliRunner().invoke(main, ["queues", "purge", "jobs", "--config", str(config), "--persist-to", str(state)])
    assert result.exit_code == 0 and "Purged 3 message(s) from jobs" in result.output
    assert _list(config, state)["jobs"]["depth"] == 0


def test_list_and_purge_through_the_running_server(tmp_path, write_worker, dev_server):
    config = write_worker(tmp_path / "w", WORKER, TOML)
    state = tmp_path / "state"
    server = dev_server(config, "--persist-to", str(state), "--no-live-reload")
    for _ in range(2):
        urllib.request.urlopen(server.url + "/").read()
    assert _list(config, state)["jobs"]["depth"] == 2
    result = CliRunner().invoke(main, ["queues", "purge", "jobs", "--json", "--config", str(config),
                                       "--persist-to", str(state)])
    assert json.loads(result.stdout) == {"queue": "jobs", "purged": 2}
    assert _list(config, state)["jobs"]["depth"] == 0
    # the server's broker forgot them too: a new message is the only one delivered later
    urllib.request.urlopen(server.url + "/").read()
    assert _list(config, state)["jobs"]["depth"] == 1
