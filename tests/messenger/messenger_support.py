"""Helpers shared by the messenger's tests (a uniquely named module: `conftest` names collide across folders)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "wrangler.toml"


def test_config(tmp_path: Path, extra_vars: dict | None = None) -> Path:
    """A copy of the root wrangler.toml with absolute paths (and extra vars), for a runtime in tmp_path."""
    raw = tomllib.loads(CONFIG.read_text())
    raw["main"] = str(ROOT / raw["main"])
    raw["assets"]["directory"] = str(ROOT / raw["assets"]["directory"])
    for db in raw.get("d1_databases", []):
        db["migrations_dir"] = str(ROOT / db["migrations_dir"])
    raw.setdefault("vars", {}).update(extra_vars or {})
    path = tmp_path / "wrangler.json"
    path.write_text(json.dumps(raw, indent=2))
    return path


test_config.__test__ = False
