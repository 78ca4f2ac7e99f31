"""``airdock release --config release.toml``: a release described in a file kept in git.

Every ``airdock release`` option has a key spelt like the option without its dashes
(``--docker-version`` -> ``docker-version``; repeatable options take a list or one string).
A flag given on the command line wins over the file. Relative paths in the file (``output``,
``cache-dir``, ``gpg-key``, ``sign-key``, ``baseline-from``) are relative to the file's folder,
so the file means the same wherever the release is run from. The file's sha256 is recorded in
RELEASES.json.

Like zarf.yaml or hauler manifests, the file is checked before anything runs: an unknown key
(with the nearest known one), a value of the wrong type, a file that is not TOML, each is one
line naming the file and the key.
"""

from __future__ import annotations

import difflib
import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import UsageError
from .userfile import decode_user_text, read_user_file

MAX_CONFIG_BYTES = 1024 * 1024

# key -> kind: str, list (of str; one str allowed), int, number, bool, path, paths, size
KEYS: dict[str, str] = {
    "mirror": "list",
    "arch": "list",
    "os-mirror": "str",
    "docker-version": "str",
    "channel": "str",
    "package": "list",
    "closure": "str",
    "output": "path",
    "cache-dir": "path",
    "jobs": "int",
    "gpg-key": "paths",
    "image": "list",
    "no-images": "bool",
    "registry-mirror": "str",
    "registry-user": "str",
    "allow-mirror-drift": "bool",
    "split-size": "size",
    "sign-key": "key",
    "timeout": "number",
    "retries": "int",
    "no-wait": "bool",
    "verify-cache": "bool",
    "baseline-from": "path",
}
_KINDS = {
    "str": "a string",
    "list": "a string or a list of strings",
    "int": "a whole number",
    "number": "a number",
    "bool": "true or false",
    "path": "a path (string)",
    "paths": "a path or a list of paths",
    "size": 'a size such as "3900M" (or a number of bytes)',
    "key": 'a key file path or "gpg:FINGERPRINT"',
}


class ConfigError(UsageError):
    """A release file with a mistake: one line naming the file, the key and what is expected."""


@dataclass(frozen=True)
class ReleaseConfig:
    path: Path
    sha256: str
    values: dict[str, Any]  # keyed by the option's Python name (docker_version, ...)

    def record(self) -> dict[str, str]:
        """What RELEASES.json says about the file."""
        return {"file": self.path.name, "sha256": self.sha256}


def _toml_loads(text: str) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - 3.9/3.10
        import tomli as tomllib
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(exc)) from None


def load_release_config(path: Path) -> ReleaseConfig:
    where = f"--config {path}"
    expected = "the path of a release.toml"
    data = read_user_file(path, where, MAX_CONFIG_BYTES, expected, ConfigError)
    text = decode_user_text(data, where, expected, ConfigError)
    try:
        doc = _toml_loads(text)
    except ConfigError as exc:
        raise ConfigError(f"{where} is not valid TOML: {exc}") from None
    base = path.resolve().parent
    values = {}
    for key, value in doc.items():
        kind = KEYS.get(key)
        if kind is None:
            near = difflib.get_close_matches(key.replace("_", "-"), list(KEYS), n=1)
            hint = f"did you mean {near[0]!r}?" if near else f"known keys: {', '.join(KEYS)}"
            raise ConfigError(f"{where}: unknown key {key!r}; {hint}")
        values[key.replace("-", "_")] = _checked(key, kind, value, base, where)
    return ReleaseConfig(path, hashlib.sha256(data).hexdigest(), values)


def _checked(key: str, kind: str, value: Any, base: Path, where: str) -> Any:
    def wrong() -> ConfigError:
        shown = type(value).__name__
        return ConfigError(f"{where}: {key} is a {shown}, not {_KINDS[kind]}")

    if kind in ("str", "path", "key"):
        if not isinstance(value, str) or not value:
            raise wrong()
        if kind == "path":
            return str(base / value)
        if kind == "key" and not value.startswith("gpg:"):
            return str(base / value)
        return value
    if kind in ("list", "paths"):
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(v, str) and v for v in items):
            raise wrong()
        return [str(base / v) for v in items] if kind == "paths" else list(items)
    if kind == "int":
        if type(value) is not int:
            raise wrong()
        return value
    if kind == "number":
        if type(value) not in (int, float):
            raise wrong()
        return float(value)
    if kind == "bool":
        if type(value) is not bool:
            raise wrong()
        return value
    if kind == "size":
        if type(value) is int and value > 0:
            return str(value)
        if not isinstance(value, str) or not value:
            raise wrong()
        return value
    raise AssertionError(kind)
