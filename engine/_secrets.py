"""The secret store: named sets of ``KEY=VALUE`` pairs in their own file, never in the event log.

``$EVENFLOW_HOME/secrets.json`` (:attr:`Home.secrets <engine._home.Home.secrets>`) holds
``{"version": 1, "secrets": {name: {key: value}}}``. A step's ``secrets=[...]`` expose their keys
as environment variables (:meth:`SecretStore.resolve`); the event log records only the names.

Invariants:

* The file is created with mode 0600 (and its directory 0700 when it is new), and every write
  goes to a 0600 temporary file moved into place with one ``os.replace``: a reader sees the old
  or the new file, never a partial one, and the values are never readable by others, not even
  for a moment.
* Writers hold an exclusive ``fcntl.flock`` on the sibling ``secrets.json.lock`` across the
  read-modify-replace, so two processes creating secrets at once keep both. Readers take no lock
  (the replace is atomic).
* A secrets file readable or writable by group or others is refused, as ssh refuses a loose
  private key: its values may already have leaked, and fixing the mode silently would hide that.
  The error says which ``chmod`` fixes it.
* No message, ``repr`` or log line carries a value: errors name secrets and keys, and values
  come back as :class:`SecretValues`, a ``dict`` whose ``repr`` shows keys only.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from .errors import SecretError

__all__ = ["SecretStore", "SecretValues", "check_key", "check_name"]

_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FORMAT_VERSION = 1


class SecretValues(dict[str, str]):
    """A secret's (or a step's merged secrets') values: a plain ``dict`` whose ``repr`` and
    ``str`` show the keys only, so printing or logging it never shows a value."""

    def __repr__(self) -> str:
        return f"SecretValues(keys={sorted(self)!r})"

    __str__ = __repr__


def check_name(name: object) -> str:
    """``name`` if it is a valid secret name (letters, digits, ``_``, ``.``, ``-``).

    Raises:
        SecretError: it is not.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        shown = repr(name) if isinstance(name, str) else f"a {type(name).__name__}"
        raise SecretError(
            f"invalid secret name {shown}: use letters, digits, '_', '.' and '-' only"
        )
    return name


def check_key(secret: str, key: object) -> str:
    """``key`` if it is a valid environment variable name (``[A-Za-z_][A-Za-z0-9_]*``).

    Raises:
        SecretError: it is not; the message names the secret and the key, not the value.
    """
    if not isinstance(key, str) or not _KEY.match(key):
        shown = repr(key) if isinstance(key, str) else f"a {type(key).__name__}"
        raise SecretError(
            f"secret {secret!r}: invalid key {shown}: a key becomes an environment variable, "
            "so it must match [A-Za-z_][A-Za-z0-9_]*"
        )
    return key


def _check_values(name: str, values: object) -> dict[str, str]:
    if not isinstance(values, Mapping):
        raise SecretError(f"secret {name!r}: values must be a mapping of KEY to string value")
    if not values:
        raise SecretError(f"secret {name!r}: give at least one KEY=VALUE")
    checked: dict[str, str] = {}
    for key, value in values.items():
        check_key(name, key)
        if not isinstance(value, str):
            raise SecretError(
                f"secret {name!r}: the value of key {key!r} must be a string, "
                f"got a {type(value).__name__}"
            )
        checked[key] = value
    return checked


class SecretStore:
    """The secrets of one home, in one JSON file (see the module docstring).

    Args:
        path: the secrets file, normally ``Home.resolve().secrets``. Neither it nor its
            directory needs to exist until the first secret is created.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"SecretStore({str(self.path)!r})"

    # -- reading ---------------------------------------------------------------------------------

    def _read(self) -> dict[str, dict[str, str]]:
        try:
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise SecretError(f"cannot read the secrets file {self.path}: {exc.strerror}") from None
        with os.fdopen(fd, "rb") as file:
            mode = os.fstat(file.fileno()).st_mode
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise SecretError(
                    f"the secrets file {self.path} has mode {stat.S_IMODE(mode):04o}, so other "
                    f"users can read or change it; refusing to use it. Check who could have "
                    f"read it, then run: chmod 600 {self.path}"
                )
            raw = file.read()
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            # ``from None``: a JSONDecodeError carries the whole document (values included)
            where = f" (line {exc.lineno})" if isinstance(exc, json.JSONDecodeError) else ""
            raise SecretError(f"the secrets file {self.path} is not valid JSON{where}") from None
        secrets = data.get("secrets") if isinstance(data, dict) else None
        if not isinstance(secrets, dict) or not all(
            isinstance(v, dict) and all(isinstance(x, str) for x in v.values())
            for v in secrets.values()
        ):
            raise SecretError(f"the secrets file {self.path} is not an evenflow secrets file")
        return secrets

    def key_names(self) -> dict[str, list[str]]:
        """Each secret's name -> its sorted key names (no values)."""
        return {name: sorted(values) for name, values in sorted(self._read().items())}

    def get(self, name: str) -> SecretValues:
        """A secret's values.

        Raises:
            SecretError: no secret has that name.
        """
        check_name(name)
        secrets = self._read()
        if name not in secrets:
            raise SecretError(self._missing([name]))
        return SecretValues(secrets[name])

    def exists(self, name: str) -> bool:
        """Whether a secret named ``name`` exists."""
        return check_name(name) in self._read()

    def require(self, names: Iterable[str]) -> None:
        """Check that every secret in ``names`` exists (what a run checks before it starts).

        Raises:
            SecretError: one or more are missing; all of them are named.
        """
        self.resolve(names)

    def resolve(self, names: Iterable[str]) -> SecretValues:
        """The environment variables a step with ``secrets=names`` sees: all their keys.

        Raises:
            SecretError: a secret is missing (every missing name is listed), or two secrets
                give one key different values (the key and both secrets are named).
        """
        wanted = list(dict.fromkeys(check_name(n) for n in names))
        if not wanted:
            return SecretValues()
        secrets = self._read()
        missing = [n for n in wanted if n not in secrets]
        if missing:
            raise SecretError(self._missing(missing))
        merged = SecretValues()
        source: dict[str, str] = {}
        for name in wanted:
            for key, value in secrets[name].items():
                if key in merged and merged[key] != value:
                    raise SecretError(
                        f"secrets {source[key]!r} and {name!r} both set {key!r} to different "
                        "values; a step sees one environment, so drop the key from one of them"
                    )
                merged[key] = value
                source.setdefault(key, name)
        return merged

    def _missing(self, names: list[str]) -> str:
        which = ", ".join(repr(n) for n in names)
        noun = "secret" if len(names) == 1 else "secrets"
        return (
            f"{noun} {which} not found in {self.path}; create it with "
            f"`evenflow secret create {names[0]} KEY=VALUE`"
        )

    # -- writing ---------------------------------------------------------------------------------

    def create(self, name: str, values: Mapping[str, str], *, overwrite: bool = False) -> None:
        """Store a secret.

        Raises:
            SecretError: the name or a key is invalid, a value is not a string, or the secret
                exists and ``overwrite`` is false.
        """
        check_name(name)
        checked = _check_values(name, values)
        with self._locked() as secrets:
            if name in secrets and not overwrite:
                raise SecretError(
                    f"secret {name!r} already exists; delete it first or pass overwrite=True "
                    "(--overwrite)"
                )
            secrets[name] = checked

    def delete(self, name: str) -> None:
        """Remove a secret.

        Raises:
            SecretError: no secret has that name.
        """
        check_name(name)
        with self._locked() as secrets:
            if name not in secrets:
                raise SecretError(self._missing([name]))
            del secrets[name]

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, dict[str, str]]]:
        """The current secrets, under the writers' lock; what the block leaves in the dict is
        written back atomically when it exits without an error."""
        import fcntl  # POSIX only; reading needs no lock

        self._ensure_dir()
        lock = os.open(
            self.path.with_name(self.path.name + ".lock"),
            os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0),
            0o600,
        )
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            secrets = self._read()
            yield secrets
            self._write(secrets)
        finally:
            os.close(lock)  # closing releases the flock

    def _ensure_dir(self) -> None:
        directory = self.path.parent
        if not directory.is_dir():
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)

    def _write(self, secrets: dict[str, dict[str, str]]) -> None:
        data = json.dumps({"version": _FORMAT_VERSION, "secrets": secrets}, indent=2)
        tmp = self.path.with_name(f".{self.path.name}.{os.urandom(6).hex()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                os.fchmod(file.fileno(), 0o600)  # whatever the umask
                file.write(data + "\n")
                file.flush()
                os.fsync(file.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _fsync_dir(self.path.parent)

    # Defined last: in the annotations below it, ``list`` would name this method.
    def list(self) -> list[str]:
        """The names of all secrets, sorted."""
        return sorted(self._read())


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot fsync a directory; the replace itself is atomic
    finally:
        os.close(fd)
