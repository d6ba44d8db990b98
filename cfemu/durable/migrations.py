"""`[[migrations]]`: which Durable Object classes exist, under which original name, with which storage.

Applied tags and the class table are recorded in `<state>/do/classes.json`.  A class keeps the
name it was created under (its *key name*) through every rename: ids derive from it and its
objects' files live under it, so renames move nothing on disk and old ids keep working.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..config import WorkerConfig
from ..errors import ConfigError

__all__ = ["ClassInfo", "ClassTable", "apply_migrations"]


@dataclass
class ClassInfo:
    """A Durable Object class as the applied `[[migrations]]` leave it."""

    name: str  # current class name
    key_name: str  # the name it was created under: ids and storage are keyed by it
    sqlite: bool


class ClassTable:
    """The applied migration tags and the classes they declared."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tags: list[str] = []
        self.classes: dict[str, ClassInfo] = {}
        if path.exists():
            data = json.loads(path.read_text())
            self.tags = list(data.get("tags", []))
            for item in data.get("classes", []):
                info = ClassInfo(item["name"], item["key_name"], bool(item["sqlite"]))
                self.classes[info.name] = info

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {"tags": self.tags, "classes": [vars(c) for c in self.classes.values()]}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, self.path)


def _fail(config: WorkerConfig, where: str, problem: str) -> ConfigError:
    return ConfigError(f"{config.path}: {where}: {problem}")


def apply_migrations(config: WorkerConfig, do_dir: Path) -> ClassTable:
    """Apply the config's migration tags that are not applied yet, in order; check the bindings."""
    table = ClassTable(do_dir / "classes.json")
    migrations = list(config.migrations)
    applied = table.tags
    known_tags = [m.tag for m in migrations]
    # Tags already applied must be a prefix of the config's list, as wrangler requires.
    if applied[: len(known_tags)] != known_tags[: len(applied)]:
        raise _fail(config, "migrations",
                    f"the applied migration tags {applied} are not a prefix of the configured tags {known_tags}; "
                    "migrations cannot be edited or reordered once applied")
    bound = {b.class_name for b in config.durable_objects if b.script_name in (None, config.name)}
    pending = migrations[len(applied):]
    # Validate the whole batch against a scratch copy before touching disk.
    scratch = {name: ClassInfo(c.name, c.key_name, c.sqlite) for name, c in table.classes.items()}
    deletions: list[ClassInfo] = []
    for index, migration in enumerate(migrations[len(applied):], start=len(applied)):
        where = f"migrations[{index}] (tag {migration.tag!r})"
        for name in migration.new_classes + migration.new_sqlite_classes:
            if name in scratch:
                raise _fail(config, where, f"cannot create class {name!r}: it already exists")
            scratch[name] = ClassInfo(name, name, name in migration.new_sqlite_classes)
        for old, new in migration.renamed_classes:
            if old not in scratch:
                raise _fail(config, where, f"cannot rename {old!r} to {new!r}: class {old!r} does not exist")
            if new in scratch:
                raise _fail(config, where, f"cannot rename {old!r} to {new!r}: class {new!r} already exists")
            info = scratch.pop(old)
            scratch[new] = ClassInfo(new, info.key_name, info.sqlite)
        for old, script, new in migration.transferred_classes:
            if script not in (config.name,):
                raise _fail(config, where, f"transferring {old!r} from script {script!r} is not supported locally "
                                           "(only transfers within this worker)")
            if old not in scratch or new in scratch:
                raise _fail(config, where, f"cannot transfer {old!r} to {new!r}")
            info = scratch.pop(old)
            scratch[new] = ClassInfo(new, info.key_name, info.sqlite)
        for name in migration.deleted_classes:
            if name not in scratch:
                raise _fail(config, where, f"cannot delete class {name!r}: it does not exist")
            if name in bound:
                raise _fail(config, where, f"cannot delete class {name!r}: it is still bound in durable_objects.bindings; "
                                           "remove the binding first")
            deletions.append(scratch.pop(name))
    for binding in config.durable_objects:
        if binding.script_name not in (None, config.name):
            continue
        if binding.class_name not in scratch:
            raise _fail(config, "durable_objects.bindings",
                        f"class {binding.class_name!r} (binding {binding.name!r}) has no migration: add it to "
                        "new_sqlite_classes (or new_classes) in a [[migrations]] entry")
    if pending:
        for info in deletions:
            shutil.rmtree(do_dir / info.key_name, ignore_errors=True)
        table.classes = scratch
        table.tags = applied + [m.tag for m in pending]
        table.save()
    return table
