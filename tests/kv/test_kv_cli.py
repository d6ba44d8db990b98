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
