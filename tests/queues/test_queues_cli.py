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


async def test_stale_dev_info_falls_back_to_the_files(tmp_path, write_worker):
    """A `cfemu dev` killed with -9 leaves dev.json behind; its pid may be reused by a live process."""
    import os
    import socket

    config = write_worker(tmp_path / "w", WORKER, TOML)
    state = tmp_path / "state"
    async with Runtime.from_config(config, persist_to=state) as rt:
        await rt.fetch("/")
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (state / "dev.json").write_text(json.dumps({"pid": os.getpid(), "url": f"http://127.0.0.1:{port}"}))
    assert _list(config, state)["jobs"]["depth"] == 1
    result = CliRunner().invoke(main, ["queues", "purge", "jobs", "--config", str(config), "--persist-to", str(state)])
    assert result.exit_code == 0 and "Purged 1 message(s) from jobs" in result.output


async def test_pull_consumers_are_not_pushed_to_the_worker(tmp_path, write_worker):
    config = write_worker(tmp_path / "w", WORKER, TOML.replace('max_batch_timeout = 60', 'type = "http_pull"'))
    async with Runtime.from_config(config, persist_to=tmp_path / "state") as rt:
        await rt.fetch("/")
        await rt.advance(120)
        assert rt.service("queues").pending("jobs") == 1  # stored, never delivered (and retried)
