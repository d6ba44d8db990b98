"""wrangler.toml / wrangler.json(c) -> validated, typed configuration.

A mistake raises `ConfigError` naming the file, the key and what is wrong.  Unknown keys are kept
out of the result and reported in `WorkerConfig.warnings` (and logged), never a crash.
Environments follow wrangler: `[env.<name>]` inherits the top-level "inheritable" keys (main,
compatibility_date, triggers, ...) but vars and bindings must be declared again in the environment.
"""

from __future__ import annotations

import logging
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

__all__ = [
    "WorkerConfig",
    "KVNamespaceConfig",
    "DurableObjectBindingConfig",
    "MigrationConfig",
    "QueueProducerConfig",
    "QueueConsumerConfig",
    "AnalyticsEngineConfig",
    "D1DatabaseConfig",
    "R2BucketConfig",
    "RateLimitConfig",
    "AIConfig",
    "AssetsConfig",
    "load_config",
    "find_config",
]

log = logging.getLogger("cfemu.config")

# Cloudflare runs Python modules only with the `python_workers` flag (workerd gives it no enable date;
# `python_workers_development` implies it).  cfemu runs the worker either way, and says so.
PYTHON_WORKERS_FLAGS = frozenset({"python_workers", "python_workers_development"})
NO_PYTHON_WORKERS_FLAG = 'no "python_workers" flag: Cloudflare runs a Python Worker only with it (cfemu runs it anyway)'

CONFIG_NAMES = ("wrangler.toml", "wrangler.jsonc", "wrangler.json")
_BINDING_NAME = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")


@dataclass(frozen=True)
class KVNamespaceConfig:
    """One `[[kv_namespaces]]` entry of wrangler.toml (binding -> namespace id)."""

    binding: str
    id: str


@dataclass(frozen=True)
class DurableObjectBindingConfig:
    """One `[[durable_objects.bindings]]` entry of wrangler.toml."""

    name: str
    class_name: str
    script_name: str | None = None


@dataclass(frozen=True)
class MigrationConfig:
    """One `[[migrations]]` entry of wrangler.toml: the Durable Object class changes of a deploy."""

    tag: str
    new_classes: tuple[str, ...] = ()
    new_sqlite_classes: tuple[str, ...] = ()
    renamed_classes: tuple[tuple[str, str], ...] = ()
    deleted_classes: tuple[str, ...] = ()
    transferred_classes: tuple[tuple[str, str, str], ...] = ()  # (from, from_script, to)


@dataclass(frozen=True)
class QueueProducerConfig:
    """One `[[queues.producers]]` entry of wrangler.toml."""

    binding: str
    queue: str
    delivery_delay: int = 0


@dataclass(frozen=True)
class QueueConsumerConfig:
    """One `[[queues.consumers]]` entry of wrangler.toml, with Cloudflare's defaults."""

    queue: str
    max_batch_size: int = 10
    max_batch_timeout: float = 5
    max_retries: int = 3
    dead_letter_queue: str | None = None
    retry_delay: int = 0
    max_concurrency: int | None = None
    type: str = "worker"  # "http_pull": messages wait to be pulled over HTTP, never pushed to the worker


@dataclass(frozen=True)
class AnalyticsEngineConfig:
    """One `[[analytics_engine_datasets]]` entry of wrangler.toml."""

    binding: str
    dataset: str


@dataclass(frozen=True)
class D1DatabaseConfig:
    """One `[[d1_databases]]` entry of wrangler.toml (migrations_dir resolved against the config)."""

    binding: str
    database_name: str
    database_id: str
    migrations_dir: Path
    migrations_table: str = "d1_migrations"


@dataclass(frozen=True)
class R2BucketConfig:
    """One `[[r2_buckets]]` entry of wrangler.toml."""

    binding: str
    bucket_name: str


@dataclass(frozen=True)
class RateLimitConfig:
    """One `[[ratelimits]]` (or `[[unsafe.bindings]]` type "ratelimit") entry: the Rate Limiting binding."""

    name: str
    namespace_id: str
    limit: int
    period: int


@dataclass(frozen=True)
class AIConfig:
    """The `[ai]` section of wrangler.toml (the Workers AI binding)."""

    binding: str


@dataclass(frozen=True)
class AssetsConfig:
    """The `[assets]` section of wrangler.toml (Workers static assets)."""

    directory: Path
    binding: str | None = None
    not_found_handling: str = "none"  # none | 404-page | single-page-application
    html_handling: str = "auto-trailing-slash"
    # True/False, or route patterns ("/api/*", "!/api/docs/*") naming where the worker runs first.
    run_worker_first: bool | tuple[str, ...] = False


@dataclass
class WorkerConfig:
    """Everything cfemu needs from a wrangler config, with paths resolved against its directory."""

    path: Path
    name: str
    main: Path
    compatibility_date: str | None = None
    compatibility_flags: tuple[str, ...] = ()
    env_name: str | None = None
    vars: dict[str, Any] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    kv_namespaces: tuple[KVNamespaceConfig, ...] = ()
    durable_objects: tuple[DurableObjectBindingConfig, ...] = ()
    migrations: tuple[MigrationConfig, ...] = ()
    queue_producers: tuple[QueueProducerConfig, ...] = ()
    queue_consumers: tuple[QueueConsumerConfig, ...] = ()
    analytics_engine_datasets: tuple[AnalyticsEngineConfig, ...] = ()
    d1_databases: tuple[D1DatabaseConfig, ...] = ()
    r2_buckets: tuple[R2BucketConfig, ...] = ()
    ratelimits: tuple[RateLimitConfig, ...] = ()
    ai: AIConfig | None = None
    assets: AssetsConfig | None = None
    crons: tuple[str, ...] = ()
    warnings: list[str] = field(default_factory=list)

    @property
    def root(self) -> Path:
        """The directory holding the config file; relative paths resolve against it."""
        return self.path.parent


# Keys wrangler lets an environment inherit from the top level, and those it does not.
_INHERITABLE = {
    "name", "main", "compatibility_date", "compatibility_flags", "triggers", "assets", "workers_dev",
    "route", "routes", "account_id", "minify", "node_compat", "build", "no_bundle", "rules",
    "find_additional_modules", "base_dir", "preserve_file_names", "usage_model", "limits",
    "observability", "placement", "logpush", "upload_source_maps", "keep_vars", "send_metrics",
}
_NON_INHERITABLE = {
    "vars", "kv_namespaces", "durable_objects", "queues", "analytics_engine_datasets", "d1_databases",
    "r2_buckets", "ratelimits", "ai", "unsafe", "services", "vectorize", "hyperdrive", "browser",
    "send_email", "mtls_certificates", "tail_consumers", "dispatch_namespaces", "version_metadata",
    "workflows", "images", "secrets_store_secrets", "define", "cloudchamber", "containers",
}
_TOP_ONLY = {"env", "migrations", "dev", "site", "$schema", "keep_vars"}
_KNOWN_TOP = _INHERITABLE | _NON_INHERITABLE | _TOP_ONLY


def find_config(start: Path) -> Path:
    """The wrangler config in `start` (a file or a directory)."""
    start = Path(start)
    if start.is_file():
        return start
    for name in CONFIG_NAMES:
        candidate = start / name
        if candidate.is_file():
            return candidate
    raise ConfigError(f"{start}: no wrangler.toml, wrangler.jsonc or wrangler.json found")


def load_config(path: str | Path, env: str | None = None, *, extra_vars: dict[str, str] | None = None) -> WorkerConfig:
    """Read and validate a wrangler config; `env` selects an `[env.<name>]` section."""
    path = find_config(Path(path)).resolve()
    raw = _read_raw(path)
    return _Parser(path, raw, env, extra_vars or {}).parse()


def _read_raw(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    try:
        if path.suffix == ".toml":
            data = tomllib.loads(text)
        else:
            import json5

            data = json5.loads(text)
    except (tomllib.TOMLDecodeError, ValueError) as e:
        raise ConfigError(f"{path}: not valid {path.suffix[1:].upper()}: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a table/object")
    return data


class _Parser:
    def __init__(self, path: Path, raw: dict[str, Any], env: str | None, extra_vars: dict[str, str]) -> None:
        self.path = path
        self.raw = raw
        self.env = env
        self.extra_vars = extra_vars
        self.warnings: list[str] = []
        self.env_keys: set[str] = set()  # keys the selected [env.<name>] section sets itself

    # -- helpers ------------------------------------------------------------------------------

    def fail(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.path}: {key}: {problem}")

    def label(self, key: str, where: str) -> str:
        # A top-level key the environment sets is reported where the user wrote it.
        if where:
            return f"{where}.{key}"
        return f"env.{self.env}.{key}" if key in self.env_keys else key

    def warn(self, key: str, problem: str) -> None:
        message = f"{self.path}: {key}: {problem}"
        self.warnings.append(message)
        log.warning("%s", message)

    def typed(self, table: dict[str, Any], key: str, where: str, kind: type | tuple[type, ...],
              default: Any = None, *, required: bool = False) -> Any:
        if key not in table:
            if required:
                raise self.fail(self.label(key, where), "is required")
            return default
        value = table[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        # bool is an int in Python; a config that says `limit = true` is still wrong.
        if isinstance(value, bool) and bool not in kinds:
            ok = False
        else:
            ok = isinstance(value, kinds)
        if not ok:
            names = " or ".join(_type_name(k) for k in kinds)
            raise self.fail(self.label(key, where), f"expected {names}, got {_type_name(type(value))} {value!r}")
        return value

    def table_list(self, table: dict[str, Any], key: str, where: str) -> list[dict[str, Any]]:
        value = table.get(key, [])
        label = self.label(key, where)
        if not isinstance(value, list):
            raise self.fail(label, f"expected an array of tables ([[{key}]]), got {_type_name(type(value))}")
        for i, item in enumerate(value):
            if not isinstance(item, dict):
                raise self.fail(f"{label}[{i}]", f"expected a table, got {_type_name(type(item))}")
        return value

    def unknown(self, table: dict[str, Any], known: set[str], where: str) -> None:
        for key in table:
            if key not in known:
                self.warn(f"{where}.{key}" if where else key, "unknown key, ignored")

    def binding_name(self, value: Any, label: str) -> str:
        if not isinstance(value, str) or not _BINDING_NAME.match(value):
            raise self.fail(label, f"binding name {value!r} is not a valid JavaScript identifier")
        return value

    def str_list(self, table: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
        value = table.get(key, [])
        label = self.label(key, where)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(label, "expected an array of strings")
        return tuple(value)

    def int_in(self, table: dict[str, Any], key: str, where: str, default: int | None, lo: int, hi: int) -> int | None:
        value = self.typed(table, key, where, int, default)
        if value is not None and not lo <= value <= hi:
            raise self.fail(f"{where}.{key}", f"must be between {lo} and {hi}, got {value}")
        return value

    # -- the config ----------------------------------------------------------------------------

    def parse(self) -> WorkerConfig:
        raw = self.raw
        self.unknown(raw, _KNOWN_TOP, "")
        section = raw
        where = ""
        if self.env is not None:
            envs = self.typed(raw, "env", "", dict, {})
            if self.env not in envs:
                raise self.fail("env", f"no environment named {self.env!r} (defined: {', '.join(sorted(envs)) or 'none'})")
            section = envs[self.env]
            if not isinstance(section, dict):
                raise self.fail(f"env.{self.env}", "expected a table")
            where = f"env.{self.env}"
            self.unknown(section, _INHERITABLE | _NON_INHERITABLE, where)
            self.env_keys = set(section)
            merged = {k: v for k, v in raw.items() if k in _INHERITABLE}
            merged.update(section)
            section = merged
        elif "env" in raw:
            envs = self.typed(raw, "env", "", dict, {})
            for name, body in envs.items():
                if not isinstance(body, dict):
                    raise self.fail(f"env.{name}", "expected a table")

        def key(k: str) -> str:
            # Errors name the key where the user wrote it.
            if where and k in self.raw.get("env", {}).get(self.env, {}):
                return f"{where}.{k}"
            return k

        name = self.typed(section, "name", "", str, None)
        if name is None:
            name = self.path.parent.name or "worker"
        if not re.match(r"^[a-zA-Z0-9_-]+$", name):
            raise self.fail(key("name"), f"{name!r} may contain only letters, digits, '-' and '_'")
        if self.env is not None and "name" not in raw.get("env", {}).get(self.env, {}):
            name = f"{name}-{self.env}"
        main_value = self.typed(section, "main", "", str, None, required=True)
        main = (self.path.parent / main_value).resolve()
        if main.suffix != ".py":
            raise self.fail(key("main"), f"{main_value!r} must be a Python module (.py)")
        if not main.is_file():
            raise self.fail(key("main"), f"{main_value!r} does not exist (looked for {main})")

        compat_date = self.typed(section, "compatibility_date", "", str, None)
        if compat_date is not None and not _is_date(compat_date):
            raise self.fail(key("compatibility_date"), f"{compat_date!r} is not a date like 2025-01-31")
        flags = self.str_list(section, "compatibility_flags", "")
        if not PYTHON_WORKERS_FLAGS.intersection(flags):
            self.warn(key("compatibility_flags"), NO_PYTHON_WORKERS_FLAG)

        vars_ = self.typed(section, "vars", "", dict, {})
        for k in vars_:
            self.binding_name(k, f"{key('vars')}.{k}")
        vars_ = dict(vars_)
        vars_.update(self.extra_vars)

        triggers = self.typed(section, "triggers", "", dict, {})
        self.unknown(triggers, {"crons"}, key("triggers"))
        crons = self.str_list(triggers, "crons", key("triggers"))
        for i, cron in enumerate(crons):
            _check_cron(self, cron, f"{key('triggers')}.crons[{i}]")

        config = WorkerConfig(
            path=self.path,
            name=name,
            main=main,
            compatibility_date=compat_date,
            compatibility_flags=flags,
            env_name=self.env,
            vars=vars_,
            secrets=self.secrets(),
            kv_namespaces=self.kv(section, key("kv_namespaces")),
            durable_objects=self.durable_objects(section, key("durable_objects")),
            migrations=self.migrations(raw),
            queue_producers=(),
            queue_consumers=(),
            analytics_engine_datasets=self.analytics(section, key("analytics_engine_datasets")),
            d1_databases=self.d1(section, key("d1_databases")),
            r2_buckets=self.r2(section, key("r2_buckets")),
            ratelimits=self.ratelimits(section, key("ratelimits"), key("unsafe")),
            ai=self.ai(section, key("ai")),
            assets=self.assets(section, key("assets")),
            crons=crons,
            warnings=self.warnings,
        )
        config.queue_producers, config.queue_consumers = self.queues(section, key("queues"))
        self.check_unique_bindings(config)
        return config

    def secrets(self) -> dict[str, str]:
        from dotenv import dotenv_values

        candidates = []
        if self.env:
            candidates.append(self.path.parent / f".dev.vars.{self.env}")
        candidates.append(self.path.parent / ".dev.vars")
        for candidate in candidates:
            if candidate.is_file():
                values = dotenv_values(candidate)
                return {k: (v or "") for k, v in values.items()}
        # Wrangler 4 falls back to .env files when there is no .dev.vars: all that match are merged,
        # the most specific winning (.env < .env.<env> < .env.local < .env.<env>.local).
        if os.environ.get("CLOUDFLARE_LOAD_DEV_VARS_FROM_DOT_ENV", "").lower() == "false":
            return {}
        names = [".env", f".env.{self.env}" if self.env else None, ".env.local",
                 f".env.{self.env}.local" if self.env else None]
        merged: dict[str, str] = {}
        for name in names:
            candidate = self.path.parent / name if name else None
            if candidate is not None and candidate.is_file():
                merged.update({k: (v or "") for k, v in dotenv_values(candidate).items()})
        return merged

    def kv(self, section: dict[str, Any], where: str) -> tuple[KVNamespaceConfig, ...]:
        out = []
        for i, item in enumerate(self.table_list(section, "kv_namespaces", "")):
            label = f"{where}[{i}]"
            self.unknown(item, {"binding", "id", "preview_id"}, label)
            binding = self.binding_name(self.typed(item, "binding", label, str, required=True), f"{label}.binding")
            ns_id = self.typed(item, "id", label, str, None) or binding
            out.append(KVNamespaceConfig(binding=binding, id=ns_id))
        return tuple(out)

    def durable_objects(self, section: dict[str, Any], where: str) -> tuple[DurableObjectBindingConfig, ...]:
        table = self.typed(section, "durable_objects", "", dict, {})
        self.unknown(table, {"bindings"}, where)
        out = []
        for i, item in enumerate(self.table_list(table, "bindings", where)):
            label = f"{where}.bindings[{i}]"
            self.unknown(item, {"name", "class_name", "script_name", "environment"}, label)
            name = self.binding_name(self.typed(item, "name", label, str, required=True), f"{label}.name")
            class_name = self.typed(item, "class_name", label, str, required=True)
            if not class_name.isidentifier():
                raise self.fail(f"{label}.class_name", f"{class_name!r} is not a valid class name")
            script = self.typed(item, "script_name", label, str, None)
            out.append(DurableObjectBindingConfig(name=name, class_name=class_name, script_name=script))
        return tuple(out)

    def migrations(self, raw: dict[str, Any]) -> tuple[MigrationConfig, ...]:
        out = []
        seen: set[str] = set()
        known = {"tag", "new_classes", "new_sqlite_classes", "renamed_classes", "deleted_classes", "transferred_classes"}
        for i, item in enumerate(self.table_list(raw, "migrations", "")):
            label = f"migrations[{i}]"
            self.unknown(item, known, label)
            tag = self.typed(item, "tag", label, str, required=True)
            if tag in seen:
                raise self.fail(f"{label}.tag", f"duplicate migration tag {tag!r}")
            seen.add(tag)
            renamed = []
            for j, r in enumerate(self.table_list(item, "renamed_classes", label)):
                rl = f"{label}.renamed_classes[{j}]"
                renamed.append((self.typed(r, "from", rl, str, required=True), self.typed(r, "to", rl, str, required=True)))
            transferred = []
            for j, r in enumerate(self.table_list(item, "transferred_classes", label)):
                rl = f"{label}.transferred_classes[{j}]"
                transferred.append((self.typed(r, "from", rl, str, required=True),
                                    self.typed(r, "from_script", rl, str, required=True),
                                    self.typed(r, "to", rl, str, required=True)))
            out.append(MigrationConfig(
                tag=tag,
                new_classes=self.str_list(item, "new_classes", label),
                new_sqlite_classes=self.str_list(item, "new_sqlite_classes", label),
                renamed_classes=tuple(renamed),
                deleted_classes=self.str_list(item, "deleted_classes", label),
                transferred_classes=tuple(transferred),
            ))
        return tuple(out)

    def queues(self, section: dict[str, Any], where: str) -> tuple[tuple[QueueProducerConfig, ...], tuple[QueueConsumerConfig, ...]]:
        table = self.typed(section, "queues", "", dict, {})
        self.unknown(table, {"producers", "consumers"}, where)
        producers = []
        for i, item in enumerate(self.table_list(table, "producers", where)):
            label = f"{where}.producers[{i}]"
            self.unknown(item, {"binding", "queue", "delivery_delay"}, label)
            producers.append(QueueProducerConfig(
                binding=self.binding_name(self.typed(item, "binding", label, str, required=True), f"{label}.binding"),
                queue=self.typed(item, "queue", label, str, required=True),
                delivery_delay=self.int_in(item, "delivery_delay", label, 0, 0, 43200),
            ))
        consumers = []
        seen: set[str] = set()
        known = {"queue", "max_batch_size", "max_batch_timeout", "max_retries", "dead_letter_queue",
                 "retry_delay", "max_concurrency", "type", "visibility_timeout_ms"}
        for i, item in enumerate(self.table_list(table, "consumers", where)):
            label = f"{where}.consumers[{i}]"
            self.unknown(item, known, label)
            queue = self.typed(item, "queue", label, str, required=True)
            if queue in seen:
                raise self.fail(f"{label}.queue", f"queue {queue!r} already has a consumer")
            seen.add(queue)
            timeout = self.typed(item, "max_batch_timeout", label, (int, float), 5)
            if not 0 <= timeout <= 60:
                raise self.fail(f"{label}.max_batch_timeout", f"must be between 0 and 60 seconds, got {timeout}")
            dlq = self.typed(item, "dead_letter_queue", label, str, None)
            if dlq == queue:
                raise self.fail(f"{label}.dead_letter_queue", "a queue cannot be its own dead letter queue")
            consumers.append(QueueConsumerConfig(
                queue=queue,
                max_batch_size=self.int_in(item, "max_batch_size", label, 10, 1, 100),
                max_batch_timeout=timeout,
                max_retries=self.int_in(item, "max_retries", label, 3, 0, 100),
                dead_letter_queue=dlq,
                retry_delay=self.int_in(item, "retry_delay", label, 0, 0, 43200),
                max_concurrency=self.int_in(item, "max_concurrency", label, None, 1, 250),
                type=self.consumer_type(item, label),
            ))
        return tuple(producers), tuple(consumers)

    def consumer_type(self, item: dict[str, Any], label: str) -> str:
        kind = self.typed(item, "type", label, str, "worker")
        if kind not in ("worker", "http_pull"):
            raise self.fail(f"{label}.type", f'must be "worker" or "http_pull", got {kind!r}')
        return kind

    def analytics(self, section: dict[str, Any], where: str) -> tuple[AnalyticsEngineConfig, ...]:
        out = []
        for i, item in enumerate(self.table_list(section, "analytics_engine_datasets", "")):
            label = f"{where}[{i}]"
            self.unknown(item, {"binding", "dataset"}, label)
            binding = self.binding_name(self.typed(item, "binding", label, str, required=True), f"{label}.binding")
            dataset = self.typed(item, "dataset", label, str, None) or binding
            if not re.match(r"^[A-Za-z0-9_]+$", dataset):
                raise self.fail(f"{label}.dataset", f"{dataset!r} may contain only letters, digits and '_'")
            out.append(AnalyticsEngineConfig(binding=binding, dataset=dataset))
        return tuple(out)

    def d1(self, section: dict[str, Any], where: str) -> tuple[D1DatabaseConfig, ...]:
        out = []
        known = {"binding", "database_name", "database_id", "preview_database_id", "migrations_dir", "migrations_table"}
        for i, item in enumerate(self.table_list(section, "d1_databases", "")):
            label = f"{where}[{i}]"
            self.unknown(item, known, label)
            binding = self.binding_name(self.typed(item, "binding", label, str, required=True), f"{label}.binding")
            db_name = self.typed(item, "database_name", label, str, None) or binding
            db_id = self.typed(item, "database_id", label, str, None) or db_name
            if not re.match(r"^[A-Za-z0-9_.-]+$", db_id):
                raise self.fail(f"{label}.database_id", f"{db_id!r} may contain only letters, digits, '.', '-' and '_'")
            mdir = self.typed(item, "migrations_dir", label, str, "migrations")
            out.append(D1DatabaseConfig(
                binding=binding, database_name=db_name, database_id=db_id,
                migrations_dir=(self.path.parent / mdir).resolve(),
                migrations_table=self.typed(item, "migrations_table", label, str, "d1_migrations"),
            ))
        return tuple(out)

    def r2(self, section: dict[str, Any], where: str) -> tuple[R2BucketConfig, ...]:
        out = []
        for i, item in enumerate(self.table_list(section, "r2_buckets", "")):
            label = f"{where}[{i}]"
            self.unknown(item, {"binding", "bucket_name", "preview_bucket_name", "jurisdiction"}, label)
            binding = self.binding_name(self.typed(item, "binding", label, str, required=True), f"{label}.binding")
            bucket = self.typed(item, "bucket_name", label, str, None) or binding.lower()
            if not re.match(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$", bucket):
                raise self.fail(f"{label}.bucket_name", f"{bucket!r} must be 3-63 lowercase letters, digits or '-'")
            out.append(R2BucketConfig(binding=binding, bucket_name=bucket))
        return tuple(out)

    def ratelimits(self, section: dict[str, Any], where: str, unsafe_where: str) -> tuple[RateLimitConfig, ...]:
        items = [(f"{where}[{i}]", item) for i, item in enumerate(self.table_list(section, "ratelimits", ""))]
        unsafe = self.typed(section, "unsafe", "", dict, {})
        for i, item in enumerate(self.table_list(unsafe, "bindings", unsafe_where)):
            if item.get("type") == "ratelimit":
                items.append((f"{unsafe_where}.bindings[{i}]", item))
        out = []
        for label, item in items:
            self.unknown(item, {"name", "namespace_id", "simple", "type"}, label)
            name = self.binding_name(self.typed(item, "name", label, str, required=True), f"{label}.name")
            ns = self.typed(item, "namespace_id", label, (str, int), required=True)
            simple = self.typed(item, "simple", label, dict, required=True)
            self.unknown(simple, {"limit", "period"}, f"{label}.simple")
            limit = self.typed(simple, "limit", f"{label}.simple", int, required=True)
            if limit <= 0:
                raise self.fail(f"{label}.simple.limit", f"must be a positive integer, got {limit}")
            period = self.typed(simple, "period", f"{label}.simple", int, required=True)
            if period not in (10, 60):
                raise self.fail(f"{label}.simple.period", f"must be 10 or 60 (seconds), got {period}")
            out.append(RateLimitConfig(name=name, namespace_id=str(ns), limit=limit, period=period))
        return tuple(out)

    def ai(self, section: dict[str, Any], where: str) -> AIConfig | None:
        table = self.typed(section, "ai", "", dict, None)
        if table is None:
            return None
        self.unknown(table, {"binding", "remote"}, where)
        return AIConfig(binding=self.binding_name(self.typed(table, "binding", where, str, required=True), f"{where}.binding"))

    def assets(self, section: dict[str, Any], where: str) -> AssetsConfig | None:
        table = self.typed(section, "assets", "", dict, None)
        if table is None:
            return None
        self.unknown(table, {"directory", "binding", "not_found_handling", "html_handling", "run_worker_first"}, where)
        directory = self.typed(table, "directory", where, str, required=True)
        path = (self.path.parent / directory).resolve()
        if not path.is_dir():
            raise self.fail(f"{where}.directory", f"{directory!r} is not a directory (looked for {path})")
        binding = self.typed(table, "binding", where, str, None)
        if binding is not None:
            self.binding_name(binding, f"{where}.binding")
        nfh = self.typed(table, "not_found_handling", where, str, "none")
        if nfh not in ("none", "404-page", "single-page-application"):
            raise self.fail(f"{where}.not_found_handling", f"must be one of none, 404-page, single-page-application, got {nfh!r}")
        hh = self.typed(table, "html_handling", where, str, "auto-trailing-slash")
        if hh not in ("auto-trailing-slash", "force-trailing-slash", "drop-trailing-slash", "none"):
            raise self.fail(f"{where}.html_handling", f"unknown html_handling {hh!r}")
        rwf = self.typed(table, "run_worker_first", where, (bool, list), False)
        if isinstance(rwf, list):
            for i, rule in enumerate(rwf):
                if not isinstance(rule, str) or not (rule.startswith("/") or rule.startswith("!/")):
                    raise self.fail(f"{where}.run_worker_first[{i}]",
                                    f"a route pattern must be a string starting with '/' or '!/', got {rule!r}")
            rwf = tuple(rwf)
        return AssetsConfig(directory=path, binding=binding, not_found_handling=nfh, html_handling=hh,
                            run_worker_first=rwf)

    def check_unique_bindings(self, config: WorkerConfig) -> None:
        names: dict[str, str] = {}
        groups = [
            ("vars", list(config.vars)),
            ("kv_namespaces", [b.binding for b in config.kv_namespaces]),
            ("durable_objects.bindings", [b.name for b in config.durable_objects]),
            ("queues.producers", [b.binding for b in config.queue_producers]),
            ("analytics_engine_datasets", [b.binding for b in config.analytics_engine_datasets]),
            ("d1_databases", [b.binding for b in config.d1_databases]),
            ("r2_buckets", [b.binding for b in config.r2_buckets]),
            ("ratelimits", [b.name for b in config.ratelimits]),
            ("ai", [config.ai.binding] if config.ai else []),
            ("assets", [config.assets.binding] if config.assets and config.assets.binding else []),
        ]
        for group, bindings in groups:
            for b in bindings:
                if b in names:
                    raise self.fail(group, f"binding name {b!r} is already used by {names[b]}")
                names[b] = group
        for name in config.secrets:
            if name in names and names[name] != "vars":
                raise self.fail(".dev.vars", f"secret {name!r} has the same name as a binding in {names[name]}")


def _is_date(value: str) -> bool:
    import datetime

    if not re.match(r"^\d{4}-\d{2}-\d{2}$", value):
        return False
    try:
        datetime.date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _check_cron(parser: _Parser, cron: str, label: str) -> None:
    from croniter import croniter

    if not croniter.is_valid(cron):
        raise parser.fail(label, f"{cron!r} is not a valid cron expression")


def _type_name(kind: type) -> str:
    return {str: "a string", int: "an integer", float: "a number", bool: "a boolean", dict: "a table",
            list: "an array"}.get(kind, kind.__name__)
