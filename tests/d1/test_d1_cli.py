"""`cfemu d1 execute` and `cfemu d1 migrations list|apply` through click's CliRunner."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from cfemu.cli import main
from cfemu.testing import Runtime

APP = Path(__file__).parent / "workers" / "app"


@pytest.fixture
def app(tmp_path):
    target = tmp_path / "app"
    shutil.copytree(APP, target)
    return target


def run(app: Path, *args: str):
    result = CliRunner().invoke(main, ["d1", *args, "--config", str(app / "wrangler.toml"),
                                       "--persist-to", str(app / "state")], catch_exceptions=False)
    return result


def test_migrations_list_apply_list(app):
    listed = run(app, "migrations", "list", "DB", "--json")
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.output) == [{"name": "0001_users.sql", "applied_at": None},
                                         {"name": "0002_posts.sql", "applied_at": None}]
    applied = run(app, "migrations", "apply", "app-db")
    assert applied.exit_code == 0, applied.output
    assert "0001_users.sql" in applied.output and "0002_posts.sql" in applied.output
    again = run(app, "migrations", "apply", "DB")
    assert "No migrations to apply!" in again.output
    listed = json.loads(run(app, "migrations", "list", "DB", "--json").output)
    assert all(m["applied_at"] for m in listed)
    human = run(app, "migrations", "list", "DB").output
    assert "No migrations to apply!" in human


def test_failed_migration_stops_and_rolls_back(app):
    (app / "migrations" / "0003_bad.sql").write_text("CREATE TABLE ok (a);\nINSERT INTO nowhere VALUES (1);\n")
    result = run(app, "migrations", "apply", "DB")
    assert result.exit_code == 1
    assert "Migration 0003_bad.sql failed: no such table: nowhere: SQLITE_ERROR" in result.output
    listed = json.loads(run(app, "migrations", "list", "DB", "--json").output)
    assert [m["applied_at"] is not None for m in listed] == [True, True, False]
    out = run(app, "execute", "DB", "--command", "SELECT name FROM sqlite_master WHERE name = 'ok'", "--json")
    assert json.loads(out.output)[0]["results"] == []


def test_execute_command_and_file(app):
    run(app, "migrations", "apply", "DB")
    out = run(app, "execute", "DB", "--command", "INSERT INTO users (name) VALUES ('bob'); SELECT id, name FROM users ORDER BY id", "--json")
    assert out.exit_code == 0, out.output
    results = json.loads(out.output)
    assert results[0]["meta"]["changes"] == 1
    assert results[1]["results"] == [{"id": 1, "name": "alice"}, {"id": 2, "name": "bob"}]
    sql_file = app / "q.sql"
    sql_file.write_text("SELECT name FROM users WHERE name = 'bob';")
    table = run(app, "execute", "app-db", "--file", str(sql_file))
    assert table.exit_code == 0
    assert "| name |" in table.output and "| bob  |" in table.output
    bad = run(app, "execute", "DB", "--command", "SELECT * FROM nope")
    assert bad.exit_code == 1 and "D1_ERROR: no such table: nope: SQLITE_ERROR" in bad.output
    unknown = run(app, "execute", "OTHER", "--command", "SELECT 1")
    assert unknown.exit_code == 1 and "no D1 database 'OTHER'" in unknown.output


async def test_cli_and_worker_share_the_state(app):
    assert run(app, "migrations", "apply", "DB").exit_code == 0
    async with Runtime.from_config(app / "wrangler.toml", persist_to=app / "state") as rt:
        assert await rt.env.DB.prepare("SELECT name FROM users").first("name") == "alice"
        await rt.env.DB.prepare("INSERT INTO users (name) VALUES ('carol')").run()
        # While the runtime holds the file open, the CLI still sees committed rows (WAL).
        out = run(app, "execute", "DB", "--command", "SELECT count(*) AS c FROM users", "--json")
        assert json.loads(out.output)[0]["results"] == [{"c": 2}]


def test_a_file_that_is_not_a_database_is_a_one_line_error(app):
    path = app / "state" / "d1" / "app-db-id.sqlite"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a database, just text" * 200)
    result = run(app, "execute", "DB", "--command", "SELECT 1")
    assert result.exit_code == 1
    assert result.output == f"Error: cannot open the D1 database files under {path.parent}: file is not a database\n"


# -- through a running `cfemu dev` -------------------------------------------------------------

SAME_OUTPUT = [  # commands that change nothing: their output must not depend on the path taken
    ("migrations", "list", "DB"),
    ("migrations", "list", "app-db", "--json"),
    ("migrations", "apply", "DB"),
    ("execute", "DB", "--command", "SELECT name FROM users ORDER BY name"),
    ("execute", "DB", "--command", "SELECT x'00ff' AS b, 1.5 AS f, 2 AS i, NULL AS n, 'é' AS t; SELECT 1 AS one", "--json"),
    ("execute", "app-db-id", "--command", "SELECT x'00ff' AS b, 1.5 AS f, NULL AS n, 'é' AS t"),
    ("execute", "DB", "--command", "SELEC oops"),
    ("execute", "DB", "--command", "-- only a comment"),
    ("execute", "NOPE", "--command", "SELECT 1"),
]


def _outputs(app):
    def timeless(output):
        if not output.startswith("[") or '"meta"' not in output:
            return output
        envelopes = json.loads(output)
        for envelope in envelopes:
            # How long each statement took differs, and a SELECT's last_row_id is its connection's
            # last insert (as in D1): the server's connection made one, a fresh one has not.
            del envelope["meta"]["duration"], envelope["meta"]["timings"], envelope["meta"]["last_row_id"]
        return envelopes

    return [(r.exit_code, timeless(r.output)) for r in (run(app, *args) for args in SAME_OUTPUT)]


def test_the_commands_go_through_a_running_cfemu_dev(app, dev_server):
    import urllib.request

    server = dev_server(app / "wrangler.toml", "--persist-to", str(app / "state"), "--no-live-reload")

    def worker(sql):
        req = urllib.request.Request(server.url + "/", data=json.dumps({"sql": sql}).encode(), method="POST")
        return json.loads(urllib.request.urlopen(req).read())["result"]

    mark = server.mark()
    applied = run(app, "migrations", "apply", "DB", "--json")
    assert [m["name"] for m in json.loads(applied.output)] == ["0001_users.sql", "0002_posts.sql"]
    server.wait_for(r"POST /cdn-cgi/cfemu/d1/DB/migrations/apply", start=mark)
    inserted = run(app, "execute", "DB", "--command", "INSERT INTO users (name) VALUES ('from-cli')")
    assert inserted.exit_code == 0 and "OK: 1 change(s)" in inserted.output
    server.wait_for(r"POST /cdn-cgi/cfemu/d1/DB/execute", start=mark)
    # The worker's own connection sees the row at once.
    assert "from-cli" in [r["name"] for r in worker("SELECT name FROM users")["results"]]
    served = _outputs(app)
    server.wait_for(r"GET /cdn-cgi/cfemu/d1/app-db/migrations/list", start=mark)
    # Errors are the binding's one-line messages, never a traceback.
    assert all("Traceback" not in out for _, out in served)
    assert served[SAME_OUTPUT.index(("execute", "DB", "--command", "-- only a comment"))] == \
        (1, "Error: No SQL statements detected.\n")
    assert served[-1][0] == 1 and "no D1 database 'NOPE' in the config" in served[-1][1]
    assert server.interrupt() == 0
    assert not (app / "state" / "dev.json").exists()
    assert _outputs(app) == served  # the same commands on the files directly print the same


def test_a_stale_dev_json_falls_back_to_the_files(app):
    import os
    import socket

    (app / "state").mkdir()
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (app / "state" / "dev.json").write_text(json.dumps({"pid": os.getpid(), "url": f"http://127.0.0.1:{port}"}))
    assert run(app, "migrations", "apply", "DB").exit_code == 0
    out = run(app, "execute", "DB", "--command", "SELECT count(*) AS c FROM users", "--json")
    assert out.exit_code == 0 and json.loads(out.output)[0]["results"] == [{"c": 1}]
