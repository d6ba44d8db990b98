"""wrangler.toml / wrangler.json(c) -> typed config: errors name the file and the key; warnings never crash."""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path

import pytest

from cfemu.config import find_config, load_config
from cfemu.errors import ConfigError

BARE_HEAD = 'name = "w"\nmain = "worker.py"\ncompatibility_date = "2026-11-01"\n'
HEAD = BARE_HEAD + 'compatibility_flags = ["python_workers"]\n'


def _dir(tmp_path: Path, toml: str, *, worker: bool = True) -> Path:
    if worker:
        (tmp_path / "worker.py").write_text("from workers import WorkerEntrypoint\nclass Default(WorkerEntrypoint):\n    pass\n")
    (tmp_path / "wrangler.toml").write_text(textwrap.dedent(toml))
    return tmp_path / "wrangler.toml"


# (id, toml, key the message must name, what is wrong, env)
BAD = [
    ("missing-main", 'name = "w"\n', "main", "is required", None),
    ("main-not-py", 'name = "w"\nmain = "worker.js"\n', "main", "'worker.js' must be a Python module (.py)", None),
    ("main-missing-file", 'name = "w"\nmain = "src/nope.py"\n', "main", "'src/nope.py' does not exist", None),
    ("main-not-string", 'name = "w"\nmain = 3\n', "main", "expected a string, got an integer 3", None),
    ("bad-name", 'name = "my worker"\nmain = "worker.py"\n', "name", "may contain only letters, digits", None),
    ("bad-compat-date", HEAD.replace("2026-11-01", "2026/11/01"), "compatibility_date",
     "'2026/11/01' is not a date like", None),
    ("impossible-compat-date", HEAD.replace("2026-11-01", "2026-13-45"), "compatibility_date",
     "'2026-13-45' is not a date like", None),
    ("compat-flags-not-strings", BARE_HEAD + "compatibility_flags = [1]\n", "compatibility_flags",
     "expected an array of strings", None),
    ("vars-not-table", HEAD + 'vars = "x"\n', "vars", "expected a table, got a string 'x'", None),
    ("bad-var-name", HEAD + '[vars]\n"MY-VAR" = "x"\n', "vars.MY-VAR", "is not a valid JavaScript identifier", None),
    ("bad-binding-name", HEAD + '[[kv_namespaces]]\nbinding = "MY-KV"\nid = "a"\n', "kv_namespaces[0].binding",
     "binding name 'MY-KV' is not a valid JavaScript identifier", None),
    ("duplicate-binding-across-kinds", HEAD + '[vars]\nCACHE = "x"\n[[kv_namespaces]]\nbinding = "CACHE"\nid = "a"\n',
     "kv_namespaces", "binding name 'CACHE' is already used by vars", None),
    ("duplicate-binding-kv-r2", HEAD + '[[kv_namespaces]]\nbinding = "B"\n[[r2_buckets]]\nbinding = "B"\nbucket_name = "bb-b"\n',
     "r2_buckets", "binding name 'B' is already used by kv_namespaces", None),
    ("kv-not-array", HEAD + 'kv_namespaces = "KV"\n', "kv_namespaces", "expected an array of tables ([[kv_namespaces]])", None),
    ("kv-array-of-strings", HEAD + 'kv_namespaces = ["KV"]\n', "kv_namespaces[0]", "expected a table, got a string", None),
    ("kv-missing-binding", HEAD + '[[kv_namespaces]]\nid = "a"\n', "kv_namespaces[0].binding", "is required", None),
    ("do-missing-class-name", HEAD + '[[durable_objects.bindings]]\nname = "ROOMS"\n',
     "durable_objects.bindings[0].class_name", "is required", None),
    ("do-bad-class-name", HEAD + '[[durable_objects.bindings]]\nname = "ROOMS"\nclass_name = "Chat Room"\n',
     "durable_objects.bindings[0].class_name", "'Chat Room' is not a valid class name", None),
    ("duplicate-migration-tag", HEAD + '[[migrations]]\ntag = "v1"\nnew_classes = ["A"]\n[[migrations]]\ntag = "v1"\n',
     "migrations[1].tag", "duplicate migration tag 'v1'", None),
    ("migration-missing-tag", HEAD + '[[migrations]]\nnew_classes = ["A"]\n', "migrations[0].tag", "is required", None),
    ("renamed-missing-to", HEAD + '[[migrations]]\ntag = "v1"\nrenamed_classes = [{from = "A"}]\n',
     "migrations[0].renamed_classes[0].to", "is required", None),
    ("ratelimit-period-30", HEAD + '[[ratelimits]]\nname = "RL"\nnamespace_id = "1001"\nsimple = { limit = 10, period = 30 }\n',
     "ratelimits[0].simple.period", "must be 10 or 60 (seconds), got 30", None),
    ("ratelimit-limit-zero", HEAD + '[[ratelimits]]\nname = "RL"\nnamespace_id = "1001"\nsimple = { limit = 0, period = 60 }\n',
     "ratelimits[0].simple.limit", "must be a positive integer, got 0", None),
    ("ratelimit-limit-bool", HEAD + '[[ratelimits]]\nname = "RL"\nnamespace_id = "1001"\nsimple = { limit = true, period = 60 }\n',
     "ratelimits[0].simple.limit", "expected an integer, got a boolean True", None),
    ("queue-batch-size-500", HEAD + '[[queues.consumers]]\nqueue = "q"\nmax_batch_size = 500\n',
     "queues.consumers[0].max_batch_size", "must be between 1 and 100, got 500", None),
    ("queue-batch-timeout-90", HEAD + '[[queues.consumers]]\nqueue = "q"\nmax_batch_timeout = 90\n',
     "queues.consumers[0].max_batch_timeout", "must be between 0 and 60 seconds, got 90", None),
    ("queue-retries-101", HEAD + '[[queues.consumers]]\nqueue = "q"\nmax_retries = 101\n',
     "queues.consumers[0].max_retries", "must be between 0 and 100, got 101", None),
    ("queue-dlq-itself", HEAD + '[[queues.consumers]]\nqueue = "q"\ndead_letter_queue = "q"\n',
     "queues.consumers[0].dead_letter_queue", "a queue cannot be its own dead letter queue", None),
    ("queue-two-consumers", HEAD + '[[queues.consumers]]\nqueue = "q"\n[[queues.consumers]]\nqueue = "q"\n',
     "queues.consumers[1].queue", "queue 'q' already has a consumer", None),
    ("producer-delay", HEAD + '[[queues.producers]]\nbinding = "Q"\nqueue = "q"\ndelivery_delay = 50000\n',
     "queues.producers[0].delivery_delay", "must be between 0 and 43200, got 50000", None),
    ("bad-cron", HEAD + '[triggers]\ncrons = ["*/5 * * *"]\n', "triggers.crons[0]", "'*/5 * * *' is not a valid cron expression", None),
    ("bad-cron-field", HEAD + '[triggers]\ncrons = ["61 * * * *"]\n', "triggers.crons[0]", "is not a valid cron expression", None),
    ("assets-dir-missing", HEAD + '[assets]\ndirectory = "./public"\n', "assets.directory", "'./public' is not a directory", None),
    ("assets-bad-not-found", HEAD + '[assets]\ndirectory = "."\nnot_found_handling = "spa"\n',
     "assets.not_found_handling", "must be one of none, 404-page, single-page-application, got 'spa'", None),
    ("r2-bad-bucket", HEAD + '[[r2_buckets]]\nbinding = "B"\nbucket_name = "Bad_Bucket"\n',
     "r2_buckets[0].bucket_name", "must be 3-63 lowercase letters", None),
    ("d1-bad-id", HEAD + '[[d1_databases]]\nbinding = "DB"\ndatabase_id = "a/b"\n',
     "d1_databases[0].database_id", "may contain only letters, digits", None),
    ("analytics-bad-dataset", HEAD + '[[analytics_engine_datasets]]\nbinding = "AE"\ndataset = "my-data"\n',
     "analytics_engine_datasets[0].dataset", "may contain only letters, digits and '_'", None),
    ("ai-missing-binding", HEAD + "[ai]\nremote = true\n", "ai.binding", "is required", None),
    ("unknown-env", HEAD + '[env.staging]\nname = "s"\n', "env", "no environment named 'prod' (defined: staging)", "prod"),
    ("env-bad-main", HEAD + '[env.staging]\nmain = "other.js"\n', "env.staging.main", "must be a Python module (.py)", "staging"),
    ("env-vars-not-table", HEAD + "[env.staging]\nvars = 5\n", "env.staging.vars", "expected a table", "staging"),
    ("env-not-table", HEAD + "[env]\nstaging = 5\n", "env.staging", "expected a table", None),
]


@pytest.mark.parametrize("toml, key, problem, env", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_config_names_file_and_key(tmp_path, toml, key, problem, env):
    path = _dir(tmp_path, toml)
    with pytest.raises(ConfigError) as info:
        load_config(path, env)
    message = str(info.value)
    assert message.startswith(f"{path}: {key}: "), message
    assert problem in message


def test_at_least_a_dozen_distinct_bad_inputs():
    assert len({b[2] for b in BAD}) >= 12


def test_toml_syntax_error_names_file_and_line(tmp_path):
    path = _dir(tmp_path, BARE_HEAD + "[vars\nA = 1\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: not valid TOML: ")
    assert "line 4" in message


def test_no_config_file(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert str(info.value) == f"{tmp_path}: no wrangler.toml, wrangler.jsonc or wrangler.json found"


def test_secret_with_a_binding_name(tmp_path):
    path = _dir(tmp_path, HEAD + '[[kv_namespaces]]\nbinding = "TOKEN"\n')
    (tmp_path / ".dev.vars").write_text("TOKEN=s3cret\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: .dev.vars: secret 'TOKEN' has the same name as a binding in kv_namespaces"


def test_unknown_keys_warn_and_do_not_crash(tmp_path, caplog):
    path = _dir(tmp_path, HEAD + 'colour = "blue"\n[[kv_namespaces]]\nbinding = "KV"\nid = "x"\nttl = 5\n'
                          "[triggers]\ncrons = []\nevery = 1\n")
    with caplog.at_level(logging.WARNING, logger="cfemu.config"):
        config = load_config(path)
    assert config.kv_namespaces[0].binding == "KV"
    expected = [f"{path}: colour: unknown key, ignored",
                f"{path}: kv_namespaces[0].ttl: unknown key, ignored",
                f"{path}: triggers.every: unknown key, ignored"]
    assert sorted(config.warnings) == sorted(expected)
    assert sorted(r.getMessage() for r in caplog.records) == sorted(expected)


def test_a_full_config_parses_into_typed_bindings(tmp_path):
    (tmp_path / "public").mkdir()
    path = _dir(tmp_path, BARE_HEAD + """
        compatibility_flags = ["python_workers"]
        [vars]
        GREETING = "hi"
        LIMITS = { max = 3 }
        [[kv_namespaces]]
        binding = "KV"
        id = "abc"
        [[durable_objects.bindings]]
        name = "ROOMS"
        class_name = "Room"
        [[migrations]]
        tag = "v1"
        new_sqlite_classes = ["Room"]
        [[migrations]]
        tag = "v2"
        renamed_classes = [{ from = "Room", to = "ChatRoom" }]
        [[queues.producers]]
        binding = "JOBS"
        queue = "jobs"
        [[queues.consumers]]
        queue = "jobs"
        max_batch_size = 5
        dead_letter_queue = "jobs-dlq"
        [[analytics_engine_datasets]]
        binding = "AE"
        [[d1_databases]]
        binding = "DB"
        database_name = "main"
        [[r2_buckets]]
        binding = "BUCKET"
        bucket_name = "files"
        [[ratelimits]]
        name = "RL"
        namespace_id = "1001"
        simple = { limit = 100, period = 60 }
        [ai]
        binding = "AI"
        [assets]
        directory = "public"
        binding = "ASSETS"
        [triggers]
        crons = ["*/5 * * * *", "0 0 * * *"]
    """.replace("\n        ", "\n"))
    c = load_config(path)
    assert (c.name, c.main, c.compatibility_date, c.compatibility_flags) == (
        "w", tmp_path / "worker.py", "2026-11-01", ("python_workers",))
    assert c.vars == {"GREETING": "hi", "LIMITS": {"max": 3}}
    assert c.kv_namespaces[0].id == "abc"
    assert c.durable_objects[0].class_name == "Room"
    assert [m.tag for m in c.migrations] == ["v1", "v2"]
    assert c.migrations[1].renamed_classes == (("Room", "ChatRoom"),)
    assert c.queue_producers[0].queue == "jobs"
    consumer = c.queue_consumers[0]
    assert (consumer.max_batch_size, consumer.max_batch_timeout, consumer.max_retries, consumer.dead_letter_queue) == (
        5, 5, 3, "jobs-dlq")
    assert c.analytics_engine_datasets[0].dataset == "AE"
    assert c.d1_databases[0].database_id == "main"
    assert c.d1_databases[0].migrations_dir == tmp_path / "migrations"
    assert c.r2_buckets[0].bucket_name == "files"
    assert (c.ratelimits[0].limit, c.ratelimits[0].period) == (100, 60)
    assert c.ai.binding == "AI"
    assert c.assets.directory == tmp_path / "public"
    assert c.crons == ("*/5 * * * *", "0 0 * * *")
    assert c.warnings == []


def test_env_inherits_main_but_not_vars_and_suffixes_the_name(tmp_path):
    (tmp_path / "other.py").write_text("")
    path = _dir(tmp_path, HEAD + """
[vars]
A = "top"
[[kv_namespaces]]
binding = "KV"
[triggers]
crons = ["0 * * * *"]
[env.staging]
[env.staging.vars]
B = "staging"
[env.named]
name = "custom"
main = "other.py"
""")
    top = load_config(path)
    assert (top.name, top.env_name, top.vars) == ("w", None, {"A": "top"})
    staging = load_config(path, "staging")
    assert staging.name == "w-staging"
    assert staging.env_name == "staging"
    assert staging.main == tmp_path / "worker.py"
    assert staging.compatibility_date == "2026-11-01"
    assert staging.crons == ("0 * * * *",)
    assert staging.vars == {"B": "staging"}
    assert staging.kv_namespaces == ()
    named = load_config(path, "named")
    assert (named.name, named.main, named.vars) == ("custom", tmp_path / "other.py", {})


def test_dev_vars_secrets_and_per_env_file(tmp_path):
    path = _dir(tmp_path, HEAD + '[vars]\nA = "1"\n[env.staging]\n')
    (tmp_path / ".dev.vars").write_text('SECRET = "dev"\n# a comment\nEMPTY=\n')
    (tmp_path / ".dev.vars.staging").write_text("SECRET=staging\n")
    assert load_config(path).secrets == {"SECRET": "dev", "EMPTY": ""}
    assert load_config(path, "staging").secrets == {"SECRET": "staging"}
    (tmp_path / ".dev.vars.staging").unlink()
    assert load_config(path, "staging").secrets == {"SECRET": "dev", "EMPTY": ""}


def test_extra_vars_add_and_override(tmp_path):
    path = _dir(tmp_path, HEAD + '[vars]\nA = "1"\nB = "2"\n')
    config = load_config(path, extra_vars={"B": "override", "C": "new"})
    assert config.vars == {"A": "1", "B": "override", "C": "new"}


def test_wrangler_jsonc_with_comments_and_trailing_commas(tmp_path):
    (tmp_path / "worker.py").write_text("")
    (tmp_path / "wrangler.jsonc").write_text("""{
  // the worker
  "name": "j",
  "main": "worker.py", /* block comment */
  "vars": {"A": "1",},
  "kv_namespaces": [{"binding": "KV", "id": "x"},],
  "triggers": {"crons": ["*/5 * * * *"]},
}
""")
    assert find_config(tmp_path) == tmp_path / "wrangler.jsonc"
    config = load_config(tmp_path)
    assert (config.name, config.vars, config.kv_namespaces[0].binding, config.crons) == (
        "j", {"A": "1"}, "KV", ("*/5 * * * *",))


def test_wrangler_json_errors_name_the_key(tmp_path):
    (tmp_path / "worker.py").write_text("")
    (tmp_path / "wrangler.json").write_text('{"name": "j", "main": "worker.py", "ratelimits": [{"name": "RL", '
                                            '"namespace_id": 1, "simple": {"limit": 1, "period": 30}}]}')
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert str(info.value) == (f"{tmp_path / 'wrangler.json'}: ratelimits[0].simple.period: "
                               "must be 10 or 60 (seconds), got 30")


def test_invalid_json_names_the_file(tmp_path):
    (tmp_path / "wrangler.json").write_text('{"name": ')
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert str(info.value).startswith(f"{tmp_path / 'wrangler.json'}: not valid JSON: ")


def test_toml_wins_over_json(tmp_path):
    path = _dir(tmp_path, HEAD)
    (tmp_path / "wrangler.json").write_text("{}")
    assert find_config(tmp_path) == path


def test_defaults_name_from_directory_and_ids_from_bindings(tmp_path):
    d = tmp_path / "my-worker"
    d.mkdir()
    path = _dir(d, 'main = "worker.py"\n[[kv_namespaces]]\nbinding = "KV"\n[[r2_buckets]]\nbinding = "FILES"\n')
    c = load_config(path)
    assert c.name == "my-worker"
    assert c.kv_namespaces[0].id == "KV"
    assert c.r2_buckets[0].bucket_name == "files"


def test_dot_env_files_when_there_is_no_dev_vars(tmp_path, monkeypatch):
    # Wrangler 4: without a .dev.vars file, every matching .env file is loaded and merged, the most
    # specific winning: .env.<env>.local > .env.local > .env.<env> > .env.
    monkeypatch.delenv("CLOUDFLARE_LOAD_DEV_VARS_FROM_DOT_ENV", raising=False)
    path = _dir(tmp_path, HEAD + "[env.staging]\n")
    (tmp_path / ".env").write_text("A=env\nB=env\nC=env\nD=env\n")
    (tmp_path / ".env.staging").write_text("B=staging\nC=staging\nD=staging\n")
    (tmp_path / ".env.local").write_text("C=local\nD=local\n")
    (tmp_path / ".env.staging.local").write_text("D=staging-local\n")
    assert load_config(path).secrets == {"A": "env", "B": "env", "C": "local", "D": "local"}
    assert load_config(path, "staging").secrets == {"A": "env", "B": "staging", "C": "local", "D": "staging-local"}
    # a .dev.vars file (even only the generic one) means .env files are not read at all
    (tmp_path / ".dev.vars").write_text("ONLY=dev\n")
    assert load_config(path, "staging").secrets == {"ONLY": "dev"}
    (tmp_path / ".dev.vars").unlink()
    monkeypatch.setenv("CLOUDFLARE_LOAD_DEV_VARS_FROM_DOT_ENV", "false")
    assert load_config(path).secrets == {}


NO_PYTHON_WORKERS = ('compatibility_flags: no "python_workers" flag: Cloudflare runs a Python Worker only with it '
                     '(cfemu runs it anyway)')


def test_a_config_without_the_python_workers_flag_warns(tmp_path, caplog):
    path = _dir(tmp_path, BARE_HEAD + 'compatibility_flags = ["nodejs_compat"]\n')
    with caplog.at_level(logging.WARNING, logger="cfemu.config"):
        config = load_config(path)
    assert config.warnings == [f"{path}: {NO_PYTHON_WORKERS}"]
    assert [r.getMessage() for r in caplog.records] == [f"{path}: {NO_PYTHON_WORKERS}"]
    assert config.name == "w"  # a warning, not a failure


@pytest.mark.parametrize("flags", ['["python_workers"]', '["nodejs_compat", "python_workers"]',
                                   '["python_workers_development"]'])
def test_the_python_workers_flag_silences_the_warning(tmp_path, flags):
    path = _dir(tmp_path, BARE_HEAD + f"compatibility_flags = {flags}\n")
    assert load_config(path).warnings == []


def test_the_flag_warning_names_the_file_for_json_and_envs(tmp_path):
    (tmp_path / "worker.py").write_text("")
    path = tmp_path / "wrangler.jsonc"
    path.write_text('{"name": "w", "main": "worker.py", "compatibility_date": "2026-11-01", // no flags\n'
                    '"env": {"staging": {"compatibility_flags": ["python_workers"]}}}')
    assert load_config(path).warnings == [f"{path}: {NO_PYTHON_WORKERS}"]
    assert load_config(path, "staging").warnings == []
