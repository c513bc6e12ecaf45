"""The secret store: its 0600 file, concurrent writers, resolution for steps, the CLI, and that
no value ever shows up in an error, a repr or the CLI's output."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from engine import Client
from engine._cli import app
from engine._home import Home
from engine._secrets import SecretStore, SecretValues
from engine.errors import SecretError

REPO = Path(__file__).resolve().parents[1]
VALUE = "s3cr3t-Value-9f2b"  # distinctive, so a scan for it cannot match by accident
OTHER = "an0ther-Value-41ce"


@pytest.fixture
def store(evenflow_home: Path) -> SecretStore:
    return SecretStore(Home.resolve().secrets)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- the store -------------------------------------------------------------------------------


def test_round_trip(store: SecretStore) -> None:
    assert store.list() == []
    store.create("db", {"DB_USER": "me", "DB_PASSWORD": VALUE})
    store.create("aws", {"AWS_KEY": OTHER})
    assert store.list() == ["aws", "db"]
    assert store.get("db") == {"DB_USER": "me", "DB_PASSWORD": VALUE}
    assert store.key_names() == {"aws": ["AWS_KEY"], "db": ["DB_PASSWORD", "DB_USER"]}
    assert store.exists("db")
    store.delete("db")
    assert store.list() == ["aws"]
    assert not store.exists("db")


def test_file_is_0600_in_a_0700_home(store: SecretStore, evenflow_home: Path) -> None:
    assert not evenflow_home.exists()
    store.create("db", {"A": VALUE})
    assert store.path == evenflow_home / "secrets.json"
    assert "secret" in store.path.name
    assert mode(store.path) == 0o600
    assert mode(evenflow_home) == 0o700
    assert mode(evenflow_home / "secrets.json.lock") == 0o600
    store.create("db", {"A": OTHER}, overwrite=True)  # the replaced file too
    assert mode(store.path) == 0o600
    assert not evenflow_home.joinpath("evenflow.db").exists()  # never in the event log
    leftovers = [p.name for p in evenflow_home.iterdir()]
    assert sorted(leftovers) == ["secrets.json", "secrets.json.lock"]


def test_file_mode_does_not_depend_on_umask(store: SecretStore) -> None:
    old = os.umask(0)
    try:
        store.create("db", {"A": VALUE})
    finally:
        os.umask(old)
    assert mode(store.path) == 0o600


def test_a_file_others_can_read_is_refused(store: SecretStore) -> None:
    store.create("db", {"A": VALUE})
    store.path.chmod(0o644)
    with pytest.raises(SecretError, match=r"mode 0644.*chmod 600") as info:
        store.get("db")
    assert VALUE not in str(info.value)
    store.path.chmod(0o600)
    assert store.get("db") == {"A": VALUE}


def test_existing_secret_needs_overwrite(store: SecretStore) -> None:
    store.create("db", {"A": VALUE})
    with pytest.raises(SecretError, match="already exists"):
        store.create("db", {"A": OTHER})
    store.create("db", {"B": OTHER}, overwrite=True)
    assert store.get("db") == {"B": OTHER}


@pytest.mark.parametrize("name", ["", "has space", "a/b", "ü"])
def test_invalid_names(store: SecretStore, name: str) -> None:
    with pytest.raises(SecretError, match="invalid secret name"):
        store.create(name, {"A": VALUE})


@pytest.mark.parametrize("key", ["", "1A", "A-B", "A B", "A=B"])
def test_invalid_keys_are_named_but_not_values(store: SecretStore, key: str) -> None:
    with pytest.raises(SecretError, match=r"secret 'db': invalid key") as info:
        store.create("db", {key: VALUE})
    assert repr(key) in str(info.value)
    assert VALUE not in str(info.value)


def test_values_must_be_strings_and_not_empty(store: SecretStore) -> None:
    with pytest.raises(SecretError, match=r"value of key 'A' must be a string, got a int"):
        store.create("db", {"A": 12345})  # type: ignore[dict-item]
    with pytest.raises(SecretError, match="at least one"):
        store.create("db", {})


def test_missing_secret_names_it_but_no_value(store: SecretStore) -> None:
    store.create("db", {"DB_PASSWORD": VALUE})
    for call in (lambda: store.get("nope"), lambda: store.delete("nope")):
        with pytest.raises(SecretError, match=r"secret 'nope' not found") as info:
            call()
        assert VALUE not in str(info.value)
        assert "evenflow secret create nope" in str(info.value)
    with pytest.raises(SecretError, match=r"secrets 'x', 'y' not found") as info:
        store.resolve(["db", "x", "y"])
    assert VALUE not in str(info.value)
    assert "DB_PASSWORD" not in str(info.value)
    with pytest.raises(SecretError, match=r"'gone' not found"):
        store.require(["gone"])


def test_resolve_merges_keys(store: SecretStore) -> None:
    store.create("db", {"DB_USER": "me", "SHARED": "same"})
    store.create("aws", {"AWS_KEY": OTHER, "SHARED": "same"})
    env = store.resolve(["db", "aws", "db"])
    assert env == {"DB_USER": "me", "SHARED": "same", "AWS_KEY": OTHER}
    assert store.resolve([]) == {}


def test_conflicting_key_names_the_key_and_both_secrets(store: SecretStore) -> None:
    store.create("db", {"TOKEN": VALUE})
    store.create("api", {"TOKEN": OTHER})
    with pytest.raises(SecretError, match=r"secrets 'db' and 'api' both set 'TOKEN'") as info:
        store.resolve(["db", "api"])
    assert VALUE not in str(info.value)
    assert OTHER not in str(info.value)


def test_reprs_hide_values(store: SecretStore) -> None:
    store.create("db", {"DB_PASSWORD": VALUE})
    values = store.get("db")
    assert isinstance(values, dict)
    assert isinstance(values, SecretValues)
    for text in (repr(values), str(values), repr(store.resolve(["db"])), repr(store)):
        assert VALUE not in text
    assert "DB_PASSWORD" in repr(values)
    assert VALUE not in store.path.with_name("secrets.json.lock").read_text()


def test_corrupt_file_error_shows_no_content(store: SecretStore) -> None:
    store.create("db", {"A": VALUE})
    store.path.write_text('{"secrets": {"db": {"A": "' + VALUE + '"')  # truncated
    with pytest.raises(SecretError, match="not valid JSON") as info:
        store.list()
    assert VALUE not in str(info.value)
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__
    store.path.write_text('{"secrets": ["db"]}')
    with pytest.raises(SecretError, match="not an evenflow secrets file"):
        store.list()


WRITER = textwrap.dedent(
    """
    import sys
    from engine._secrets import SecretStore

    store = SecretStore(sys.argv[1])
    prefix = sys.argv[2]
    for i in range(int(sys.argv[3])):
        store.create(f"{prefix}{i}", {"K": f"{prefix}-{i}"})
    """
)


def test_concurrent_writers_keep_each_others_secrets(store: SecretStore) -> None:
    count = 25
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(store.path), prefix, str(count)],
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stderr=subprocess.PIPE,
            text=True,
        )
        for prefix in ("a", "b", "c")
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    names = store.list()
    assert len(names) == 3 * count
    assert store.get("b7") == {"K": "b-7"}
    assert mode(store.path) == 0o600


# -- the Client --------------------------------------------------------------------------------


def test_client_methods(evenflow_home: Path) -> None:
    client = Client()
    client.create_secret("db", {"DB_PASSWORD": VALUE})
    assert client.list_secrets() == ["db"]
    assert client.get_secret("db") == {"DB_PASSWORD": VALUE}
    with pytest.raises(SecretError, match="already exists"):
        client.create_secret("db", {"DB_PASSWORD": OTHER})
    client.create_secret("db", {"DB_PASSWORD": OTHER}, overwrite=True)
    client.delete_secret("db")
    assert client.list_secrets() == []
    assert Client(evenflow_home).home.secrets == SecretStore(evenflow_home / "secrets.json").path


# -- the CLI -----------------------------------------------------------------------------------


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def error_line(result: Result) -> str:
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_cli_create_list_delete(store: SecretStore) -> None:
    result = invoke("secret", "create", "db", f"DB_PASSWORD={VALUE}", "DB_URL=pg://h/x=y")
    assert result.exit_code == 0, result.output
    assert "created secret 'db'" in result.stdout
    assert VALUE not in result.output
    assert store.get("db") == {"DB_PASSWORD": VALUE, "DB_URL": "pg://h/x=y"}

    result = invoke("secret", "list")
    assert result.exit_code == 0, result.output
    assert "db" in result.stdout
    assert "DB_PASSWORD" in result.stdout

    result = invoke("secret", "list", "--json")
    assert result.exit_code == 0, result.output
    assert [json.loads(line) for line in result.stdout.splitlines()] == [
        {"name": "db", "keys": ["DB_PASSWORD", "DB_URL"]}
    ]

    result = invoke("secret", "delete", "db")
    assert result.exit_code == 0, result.output
    assert "deleted secret 'db'" in result.stdout
    assert invoke("secret", "list").stdout.strip() == "no secrets yet"


def test_cli_overwrite(store: SecretStore) -> None:
    assert invoke("secret", "create", "db", f"A={VALUE}").exit_code == 0
    result = invoke("secret", "create", "db", f"A={OTHER}")
    assert result.exit_code == 2
    assert "already exists" in error_line(result)
    assert invoke("secret", "create", "db", f"A={OTHER}", "--overwrite").exit_code == 0
    assert store.get("db") == {"A": OTHER}


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["secret", "create", "db"], "give at least one KEY=VALUE"),
        (["secret", "create", "db", VALUE], "argument 1 has no ="),
        (["secret", "create", "db", "A=1", f"={VALUE}"], "argument 2 has no key"),
        (["secret", "create", "db", f"1A={VALUE}"], "invalid key '1A'"),
        (["secret", "create", "db", f"A={VALUE}", f"A={OTHER}"], "key 'A' is given twice"),
        (["secret", "create", "bad name", f"A={VALUE}"], "invalid secret name"),
        (["secret", "delete", "nope"], "secret 'nope' not found"),
    ],
)
def test_cli_errors_are_one_line_without_values(args: list[str], expected: str) -> None:
    result = invoke(*args)
    assert result.exit_code == 2
    line = error_line(result)
    assert expected in line
    assert VALUE not in result.output
    assert OTHER not in result.output


def test_cli_list_never_shows_a_value(store: SecretStore) -> None:
    values = {f"KEY_{i}": f"{VALUE}-{i}" for i in range(5)}
    store.create("one", values)
    store.create("two", {"TOKEN": OTHER})
    outputs = [invoke("secret", "list"), invoke("secret", "list", "--json")]
    for result in outputs:
        assert result.exit_code == 0, result.output
        text = result.output
        for value in [*values.values(), OTHER]:
            assert value not in text
        assert VALUE[:8] not in text  # not even a prefix (a truncated column)
        assert "KEY_4" in text
        assert "TOKEN" in text


def test_cli_secret_without_subcommand_shows_help() -> None:
    result = invoke("secret")
    assert result.exit_code == 0
    for command in ("create", "list", "delete"):
        assert command in result.stdout
