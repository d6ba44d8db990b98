"""`cfemu r2 object put|get|delete|list` (registered by the lead in cfemu/cli.py; invoked here directly)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
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


# -- through a running `cfemu dev` -------------------------------------------------------------

SAME_OUTPUT = [  # commands that change nothing: their output must not depend on the path taken
    ("get", "test-bucket/dir/a.bin", "--pipe"),
    ("get", "BUCKET/from-worker", "--pipe"),
    ("get", "test-bucket/missing", "--pipe"),
    ("list", "test-bucket"),
    ("list", "BUCKET", "--json"),
    ("list", "test-bucket", "--prefix", "dir/", "--json"),
    ("put", "test-bucket/" + "k" * 1100, "--pipe"),
    ("delete", "test-bucket/" + "k" * 1100),
]


def _outputs(app):
    return [(r.exit_code, r.stdout_bytes, r.stderr) for r in (run(app, *args, input=b"x") for args in SAME_OUTPUT)]


def test_the_object_commands_go_through_a_running_cfemu_dev(tmp_path, dev_server):
    import urllib.request

    app = tmp_path / "app"
    shutil.copytree(APP, app)
    server = dev_server(app / "wrangler.toml", "--persist-to", str(app / "state"), "--no-live-reload")
    mark = server.mark()
    body = bytes(range(256)) * 4
    put = run(app, "put", "test-bucket/dir/a.bin", "--pipe", "--content-type", "application/x-test", "--json",
              input=body)
    assert put.exit_code == 0, put.output
    server.wait_for(r"POST /cdn-cgi/cfemu/r2/test-bucket/put\?key=dir%2Fa\.bin", start=mark)
    # The worker's bucket serves it at once.
    with urllib.request.urlopen(server.url + "/dir/a.bin") as resp:
        assert resp.read() == body and resp.headers["content-type"] == "application/x-test"
    urllib.request.urlopen(urllib.request.Request(server.url + "/from-worker", data=b"hi", method="PUT")).read()
    assert run(app, "get", "test-bucket/from-worker", "--pipe").stdout_bytes == b"hi"
    served = _outputs(app)
    server.wait_for(r"GET /cdn-cgi/cfemu/r2/test-bucket/list", start=mark)
    assert all(b"Traceback" not in out and "Traceback" not in err for _, out, err in served)
    missing = served[SAME_OUTPUT.index(("get", "test-bucket/missing", "--pipe"))]
    assert missing[0] == 1 and missing[2] == "Error: The specified key does not exist: test-bucket/missing\n"
    too_long = served[SAME_OUTPUT.index(("put", "test-bucket/" + "k" * 1100, "--pipe"))]
    assert too_long[0] == 1 and too_long[2].startswith("Error: put: The specified object name is not valid.")
    assert run(app, "put", "BUCKET/tmp", "--pipe", input=b"gone soon").exit_code == 0
    assert urllib.request.urlopen(server.url + "/tmp").read() == b"gone soon"
    assert run(app, "delete", "BUCKET/tmp").exit_code == 0
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(server.url + "/tmp")
    assert info.value.code == 404
    assert server.interrupt() == 0
    assert not (app / "state" / "dev.json").exists()
    assert _outputs(app) == served  # the same commands on the files directly print the same


def test_a_stale_dev_json_falls_back_to_the_files(tmp_path):
    import os
    import socket

    app = tmp_path / "app"
    shutil.copytree(APP, app)
    (app / "state").mkdir()
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (app / "state" / "dev.json").write_text(json.dumps({"pid": os.getpid(), "url": f"http://127.0.0.1:{port}"}))
    assert run(app, "put", "test-bucket/a", "--pipe", input=b"body").exit_code == 0
    assert run(app, "get", "test-bucket/a", "--pipe").stdout_bytes == b"body"
    assert [o["key"] for o in json.loads(run(app, "list", "test-bucket", "--json").output)] == ["a"]


def test_an_empty_key_is_a_one_line_error(tmp_path):
    app = tmp_path / "app"
    shutil.copytree(APP, app)
    src = tmp_path / "in.txt"
    src.write_bytes(b"x")
    for args in (["put", "test-bucket/", "--file", str(src)], ["get", "test-bucket/", "--pipe"],
                 ["delete", "test-bucket/"]):
        result = run(app, *args)
        assert result.exit_code == 2
        assert result.output.endswith("Error: Invalid value for OBJECT_PATH: 'test-bucket/' is not <bucket>/<key>\n")
