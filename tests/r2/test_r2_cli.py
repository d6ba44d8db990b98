"""`cfemu r2 object put|get|delete|list` (registered by the lead in cfemu/cli.py; invoked here directly)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from click.testing import CliRunner

from cfemu.r2.cli import r2

APP = Path(__file__).parent / "workers" / "app"


def run(app: Path, *args: str, input: bytes | None = None):
    return CliRunner().invoke(r2, ["object", *args, "--config", str(app / "wrangler.toml"),
                                   "--persist-to", str(app / "state")], input=input, catch_exceptions=False)


def test_put_get_list_delete(tmp_path):
    app = tmp_path / "app"
    shutil.copytree(APP, app)
    src = tmp_path / "in.txt"
    src.write_bytes(b"file body")
    out = run(app, "put", "test-bucket/dir/a.txt", "--file", str(src), "--content-type", "text/plain", "--json")
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["size"] == 9
    assert run(app, "put", "BUCKET/b.txt", "--pipe", input=b"piped").exit_code == 0

    got = run(app, "get", "test-bucket/dir/a.txt", "--pipe")
    assert got.stdout_bytes == b"file body"
    dest = tmp_path / "out.txt"
    assert run(app, "get", "test-bucket/b.txt", "--file", str(dest)).exit_code == 0
    assert dest.read_bytes() == b"piped"

    listed = json.loads(run(app, "list", "test-bucket", "--json").output)
    assert [o["key"] for o in listed] == ["b.txt", "dir/a.txt"]
    assert listed[1]["httpMetadata"] == {"contentType": "text/plain"}

    assert run(app, "delete", "test-bucket/b.txt").exit_code == 0
    missing = run(app, "get", "test-bucket/b.txt", "--pipe")
    assert missing.exit_code == 1 and "does not exist" in missing.output
    bad = run(app, "get", "other/x", "--pipe")
    assert bad.exit_code == 1 and "no R2 bucket 'other'" in bad.output


def test_a_metadata_file_that_is_not_a_database_is_a_one_line_error(tmp_path):
    app = tmp_path / "app"
    shutil.copytree(APP, app)
    root = app / "state" / "r2" / "test-bucket"
    root.mkdir(parents=True)
    (root / "metadata.sqlite").write_bytes(b"not a database, just text" * 200)
    result = run(app, "list", "test-bucket")
    assert result.exit_code == 1
    assert result.output == f"Error: cannot open the R2 bucket at {root}: file is not a database\n"
