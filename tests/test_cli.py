"""The `cfemu` command line: options of `cfemu dev` reach the server as given; bad input is a clean error."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

import cfemu.server
from cfemu.cli import main


@pytest.fixture
def captured(monkeypatch):
    calls = []

    def fake_run_dev(**kwargs):
        calls.append(kwargs)
        return 0

    monkeypatch.setattr(cfemu.server, "run_dev", fake_run_dev)
    return calls


def test_help_lists_the_commands():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    assert "dev" in result.output and "Serve the worker" in result.output


def test_version():
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0 and "0.1.0" in result.output


def test_dev_defaults(captured, tmp_path):
    result = CliRunner().invoke(main, ["dev", "--config", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert captured == [{"config_path": str(tmp_path), "env": None, "persist_to": None, "port": 8787,
                         "host": "127.0.0.1", "extra_vars": {}, "live_reload": True, "log_level": "info"}]


def test_dev_options(captured, tmp_path):
    result = CliRunner().invoke(main, [
        "dev", "-c", str(tmp_path), "--env", "staging", "--persist-to", str(tmp_path / "s"), "--port", "0",
        "--host", "0.0.0.0", "--var", "A:1", "--var", "URL:http://x:8080/p", "--var", "EMPTY:",
        "--no-live-reload", "--log-level", "debug"])
    assert result.exit_code == 0, result.output
    (call,) = captured
    assert call["extra_vars"] == {"A": "1", "URL": "http://x:8080/p", "EMPTY": ""}
    assert (call["env"], call["persist_to"], call["port"], call["host"], call["live_reload"], call["log_level"]) == (
        "staging", str(tmp_path / "s"), 0, "0.0.0.0", False, "debug")


@pytest.mark.parametrize("bad", ["NOCOLON", ":value"])
def test_dev_bad_var(captured, tmp_path, bad):
    result = CliRunner().invoke(main, ["dev", "-c", str(tmp_path), "--var", bad])
    assert result.exit_code == 2
    assert f"{bad!r} is not KEY:VALUE" in result.output
    assert captured == []


def test_dev_missing_config_path(captured, tmp_path):
    result = CliRunner().invoke(main, ["dev", "-c", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "does not exist" in result.output


def test_run_dev_without_a_config_file(tmp_path, capsys):
    code = cfemu.server.run_dev(config_path=str(tmp_path), env=None, persist_to=None, port=0, host="127.0.0.1",
                                extra_vars={}, live_reload=False)
    assert code == 2
    assert f"cfemu: {tmp_path}: no wrangler.toml, wrangler.jsonc or wrangler.json found" in capsys.readouterr().err


def test_dev_accepts_wranglers_ip_and_test_scheduled(captured, tmp_path):
    result = CliRunner().invoke(main, ["dev", "-c", str(tmp_path), "--ip", "0.0.0.0", "--test-scheduled",
                                       "--local-protocol", "http"])
    assert result.exit_code == 0, result.output
    assert captured[0]["host"] == "0.0.0.0"


@pytest.mark.parametrize("args, message", [
    (["--local-protocol", "https"], "cfemu dev serves plain HTTP only; --local-protocol https is not supported"),
    (["--remote"], "cfemu runs workers locally only; --remote is not supported"),
    (["--port", "70000"], "70000 is not in the range 0<=x<=65535"),
])
def test_dev_rejects_what_it_cannot_do_clearly(captured, tmp_path, args, message):
    # Was: --port 70000 ended in an OverflowError traceback; the wrangler options were unknown.
    result = CliRunner().invoke(main, ["dev", "-c", str(tmp_path), *args])
    assert result.exit_code == 2 and message in result.output, result.output
    assert captured == []
