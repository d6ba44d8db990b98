"""Against a real `cfemu dev`: the SQL API at Cloudflare's path, and the CLI going through the server."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

import pytest

WORKER = """
from workers import WorkerEntrypoint, Response

class Default(WorkerEntrypoint):
    async def fetch(self, request):
        path = request.url.split("/", 3)[-1]
        self.env.AE.writeDataPoint({"blobs": ["/" + path], "doubles": [len(path)], "indexes": ["site"]})
        return Response("ok")
"""

TOML = """
[[analytics_engine_datasets]]
binding = "AE"
dataset = "pageviews"
"""


@pytest.mark.slow
def test_sql_api_and_cli_through_cfemu_dev(tmp_path, write_worker, dev_server):
    config = write_worker(tmp_path / "site", WORKER, TOML)
    state = tmp_path / "state"
    dev = dev_server(config, "--persist-to", str(state))
    for path in ("a", "a", "bb"):
        with urllib.request.urlopen(f"{dev.url}/{path}") as resp:
            assert resp.read() == b"ok"
    sql = b"SELECT blob1 AS path, count() AS views FROM pageviews GROUP BY path ORDER BY path"
    request = urllib.request.Request(f"{dev.url}/client/v4/accounts/abc123/analytics_engine/sql", data=sql,
                                     method="POST", headers={"Authorization": "Bearer not-checked"})
    with urllib.request.urlopen(request) as resp:
        body = json.loads(resp.read())
    assert body["data"] == [{"path": "/a", "views": "2"}, {"path": "/bb", "views": "1"}]

    # The server holds the DuckDB file; the CLI finds it through <state>/dev.json and asks it.
    result = subprocess.run(
        [sys.executable, "-m", "cfemu", "analytics", "query", "SELECT sum(double1) AS s FROM pageviews",
         "--format", "TabSeparated", "--config", str(config), "--persist-to", str(state)],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "4\n"

    # Without the discovery file the CLI opens the files itself, which the server holds locked.
    info = (state / "dev.json").read_text()
    (state / "dev.json").unlink()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "cfemu", "analytics", "query", "SHOW TABLES", "--config", str(config),
             "--persist-to", str(state)], capture_output=True, text=True, timeout=60)
    finally:
        (state / "dev.json").write_text(info)
    assert result.returncode == 1
    assert "is in use by another process" in result.stderr
