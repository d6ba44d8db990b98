"""`cfemu kv key ...` against the state directory a runtime uses."""

from __future__ import annotations

import asyncio
import json

import pytest
from click.testing import CliRunner

from cfemu.cli import main
from cfemu.testing import Runtime

WORKER = """
from workers import Response, WorkerEntrypoint


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return Response(await self.env.KV.get("greeting") or "none")
"""


@pytest.fixture
def config(tmp_path, write_worker):
    return write_worker(tmp_path / "app", WORKER, '[[kv_namespaces]]\nbinding = "KV"\nid = "abc123"\n')


def cli(config, *args, ok=True):
    result = CliRunner().invoke(main, ["kv", "key", *args, "--config", str(config)])
    if ok:
        assert result.exit_code == 0, result.output
    return result


def test_put_get_list_delete(config):
    cli(config, "put", "greeting", "hello", "--binding", "KV", "--metadata", '{"by":"cli"}')
    cli(config, "put", "temp", "x", "--binding", "KV", "--ttl", "3600")
    assert cli(config, "get", "greeting", "--binding", "KV").stdout_bytes == b"hello"
    got = json.loads(cli(config, "get", "greeting", "--binding", "KV", "--json").stdout)
    assert got == {"key": "greeting", "value": "hello", "encoding": "utf-8", "metadata": {"by": "cli"}, "expiration": None}
    listed = json.loads(cli(config, "list", "--binding", "KV", "--json").stdout)
    assert [k["name"] for k in listed] == ["greeting", "temp"]
    assert listed[0]["metadata"] == {"by": "cli"} and "expiration" in listed[1]
    human = cli(config, "list", "--binding", "KV").stdout
    assert "greeting" in human and "expires" in human
    # The worker sees what the CLI wrote: same state directory (.cfemu/state beside wrangler.toml).
    async def worker_reads() -> str:
        async with Runtime.from_config(config, persist_to=config.parent / ".cfemu" / "state") as rt:
            return await (await rt.fetch("/")).text()

    assert asyncio.run(worker_reads()) == "hello"
    cli(config, "delete", "greeting", "--binding", "KV")
    missing = cli(config, "get", "greeting", "--binding", "KV", ok=False)
    assert missing.exit_code == 1 and "Value not found for key 'greeting'." in missing.output


def test_put_from_a_file_and_by_namespace_id(config, tmp_path):
    data = bytes(range(256))
    (tmp_path / "blob.bin").write_bytes(data)
    cli(config, "put", "blob", "--path", str(tmp_path / "blob.bin"), "--namespace-id", "abc123")
    assert cli(config, "get", "blob", "--binding", "KV").stdout_bytes == data


def test_errors_are_cloudflare_texts_and_usage_errors(config):
    bad = cli(config, "put", "k", "v", "--binding", "KV", "--ttl", "10", ok=False)
    assert bad.exit_code == 1
    assert "KV PUT failed: 400 Invalid expiration_ttl of 10. Expiration TTL must be at least 60." in bad.output
    unknown = cli(config, "list", "--binding", "NOPE", ok=False)
    assert "no KV namespace is bound as 'NOPE'" in unknown.output and "bound: KV" in unknown.output
    neither = cli(config, "list", ok=False)
    assert neither.exit_code == 2 and "--binding or --namespace-id" in neither.output


def test_namespace_list(config):
    cli_ns = lambda *a: CliRunner().invoke(main, ["kv", "namespace", "list", *a, "--config", str(config)])  # noqa: E731
    assert json.loads(cli_ns("--json").stdout) == [{"binding": "KV", "id": "abc123", "keys": 0}]
    cli(config, "put", "a", "1", "--binding", "KV")
    assert json.loads(cli_ns("--json").stdout) == [{"binding": "KV", "id": "abc123", "keys": 1}]
    assert "KV  id=abc123  1 key(s) stored" in cli_ns().stdout


def test_get_json_keeps_binary_values_intact(config, tmp_path):
    import base64

    data = b"\xff\x00\x01 not text"
    (tmp_path / "blob.bin").write_bytes(data)
    cli(config, "put", "blob", "--path", str(tmp_path / "blob.bin"), "--binding", "KV")
    got = json.loads(cli(config, "get", "blob", "--binding", "KV", "--json").stdout)
    assert got["encoding"] == "base64" and base64.b64decode(got["value"]) == data
    cli(config, "put", "text", "héllo", "--binding", "KV")
    got = json.loads(cli(config, "get", "text", "--binding", "KV", "--json").stdout)
    assert got["value"] == "héllo" and got["encoding"] == "utf-8"


def test_an_unusable_state_file_is_a_clean_error(config):
    # The namespace's file is a directory: SQLite cannot open it.
    (config.parent / ".cfemu" / "state" / "kv" / "abc123.sqlite").mkdir(parents=True)
    result = cli(config, "get", "k", "--binding", "KV", ok=False)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "cannot open the KV namespace file" in result.output and "abc123.sqlite" in result.output
    listed = CliRunner().invoke(main, ["kv", "namespace", "list", "--config", str(config)])
    assert listed.exit_code == 1 and "cannot open the KV namespace file" in listed.output


# -- through a running `cfemu dev` -------------------------------------------------------------

SAME_OUTPUT = [  # commands that change nothing: their output must not depend on the path taken
    ("get", "greeting", "--binding", "KV"),
    ("get", "greeting", "--binding", "KV", "--json"),
    ("get", "greeting", "--binding", "KV", "--text"),
    ("get", "blob", "--namespace-id", "abc123", "--json"),
    ("get", "missing", "--binding", "KV"),
    ("get", "missing", "--binding", "KV", "--json"),
    ("list", "--binding", "KV"),
    ("list", "--binding", "KV", "--json"),
    ("list", "--binding", "KV", "--prefix", "g", "--json"),
    ("put", "k" * 600, "v", "--binding", "KV"),
    ("put", "k", "v", "--binding", "KV", "--ttl", "10"),
    ("delete", "", "--binding", "KV"),
]


def _outputs(config):
    results = [cli(config, *args, ok=False) for args in SAME_OUTPUT]
    results += [CliRunner().invoke(main, ["kv", "namespace", "list", *a, "--config", str(config)]) for a in [(), ("--json",)]]
    return [(r.exit_code, r.output) for r in results]


def test_the_key_commands_go_through_a_running_cfemu_dev(config, tmp_path, dev_server):
    import urllib.request

    server = dev_server(config, "--no-live-reload")
    mark = server.mark()
    cli(config, "put", "greeting", "from the cli", "--binding", "KV", "--metadata", '{"by":"cli"}',
        "--expiration", "4000000000")
    # The server's own namespace took the write: its request log shows the internal request.
    server.wait_for(r"POST /cdn-cgi/cfemu/kv/abc123/put\?key=greeting", start=mark)
    assert urllib.request.urlopen(server.url + "/").read() == b"from the cli"
    data = b"\xff\x00\x01 not text"
    (tmp_path / "blob.bin").write_bytes(data)
    cli(config, "put", "blob", "--path", str(tmp_path / "blob.bin"), "--namespace-id", "abc123")
    assert cli(config, "get", "blob", "--binding", "KV").stdout_bytes == data
    served = _outputs(config)
    server.wait_for(r"GET /cdn-cgi/cfemu/kv/abc123/list", start=mark)
    server.wait_for(r"GET /cdn-cgi/cfemu/kv/abc123/count", start=mark)
    assert json.loads(served[-1][1]) == [{"binding": "KV", "id": "abc123", "keys": 2}]
    # Errors come back as the binding's one-line message, never a traceback.
    too_long = served[SAME_OUTPUT.index(("put", "k" * 600, "v", "--binding", "KV"))]
    assert too_long[0] == 1 and "KV PUT failed: 414 UTF-8 encoded length of 600 exceeds key length limit of 512." in too_long[1]
    assert all("Traceback" not in out for _, out in served)
    cli(config, "delete", "blob", "--binding", "KV")
    assert json.loads(cli(config, "get", "blob", "--binding", "KV", "--json").stdout)["value"] is None
    cli(config, "put", "blob", "--path", str(tmp_path / "blob.bin"), "--namespace-id", "abc123")
    assert server.interrupt() == 0
    assert not (config.parent / ".cfemu" / "state" / "dev.json").exists()
    assert _outputs(config) == served  # the same commands on the files directly print the same


def test_a_stale_dev_json_falls_back_to_the_files(config):
    """A `cfemu dev` killed with -9 leaves dev.json behind; its pid may be reused by a live process."""
    import os
    import socket

    state = config.parent / ".cfemu" / "state"
    state.mkdir(parents=True)
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (state / "dev.json").write_text(json.dumps({"pid": os.getpid(), "url": f"http://127.0.0.1:{port}"}))
    cli(config, "put", "greeting", "hello", "--binding", "KV")
    assert cli(config, "get", "greeting", "--binding", "KV").stdout_bytes == b"hello"
    assert [k["name"] for k in json.loads(cli(config, "list", "--binding", "KV", "--json").stdout)] == ["greeting"]
    cli(config, "delete", "greeting", "--binding", "KV")
    assert cli(config, "get", "greeting", "--binding", "KV", ok=False).exit_code == 1


def test_the_cli_reaches_the_namespace_while_the_worker_code_is_broken(config, dev_server):
    server = dev_server(config)
    cli(config, "put", "greeting", "kept", "--binding", "KV")
    mark = server.mark()
    (config.parent / "worker.py").write_text('raise RuntimeError("broken on purpose")\n')
    server.wait_for(r"broken on purpose", start=mark)
    assert cli(config, "get", "greeting", "--binding", "KV").stdout_bytes == b"kept"
    server.wait_for(r"GET /cdn-cgi/cfemu/kv/abc123/get\?key=greeting 200", start=mark)


async def test_the_endpoints_answer_loopback_clients_only():
    from types import SimpleNamespace

    from cfemu.server import DevServer

    def request(peer, local=("192.0.2.1", 8787)):
        transport = SimpleNamespace(get_extra_info=lambda name: {"peername": peer, "sockname": local}[name])
        return SimpleNamespace(transport=transport, raw_path="/cdn-cgi/cfemu/kv/abc123/get?key=k", method="GET")

    refused = await DevServer._internal(None, request(("192.0.2.7", 40000)), None)
    assert refused.status == 403 and json.loads(refused.body) == {"error": "internal endpoints answer loopback clients only"}
    # Loopback clients, and one on this machine that dialled the server's own (non-loopback) address,
    # get past the check (no runtime here: "not served", use the files).
    for peer in [("127.0.0.1", 1), ("::1", 1, 0, 0), ("::ffff:127.0.0.1", 1, 0, 0), ("192.0.2.1", 50000)]:
        assert (await DevServer._internal(None, request(peer), None)).status == 503
