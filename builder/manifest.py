"""manifest.json: one typed model for the writer and every reader.

The bundle writer builds a :class:`BundleManifest`; ``diff``, ``release``, ``verify`` and the
tests read manifests back through :meth:`BundleManifest.from_dict`, which validates every
field (type, and the shape of names, digests and paths) and names the first thing wrong in one
line. The JSON Schema in ``docs/manifest.schema.json`` is generated from these classes
(:func:`json_schema`, checked by a test), and the installer's own reader is held to the same
examples, so the builder, the docs and the target agree on one schema.

Readers ignore keys they do not know and refuse a ``format_version`` they do not know.
"""

from __future__ import annotations

import dataclasses
import json
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

from .errors import UsageError
from .names import nevra_text

# Annotations here are read at run time (get_type_hints) on Python 3.9 too: Optional, not "|".

FORMAT = "airdock-bundle"
FORMAT_VERSION = 1

# Patterns the values must match (what the installer checks too).
_PATTERNS = {
    "name": r"^[A-Za-z0-9_+][A-Za-z0-9._+-]*$",
    "version": r"^[A-Za-z0-9._+~^]+$",
    "release": r"^[A-Za-z0-9._+~^]+$",
    "arch": r"^[A-Za-z0-9_]+$",
    "sha256": r"^[0-9a-f]{64}$",
    "fingerprint": r"^[0-9A-F]{40}$",
    "rpm_file": r"^rpms/[A-Za-z0-9_+][A-Za-z0-9._+~^-]*\.rpm$",
    "image_file": r"^images/[A-Za-z0-9_.+-]+\.tar$",
    "key_file": r"^keys/[A-Za-z0-9_.+-]+\.asc$",
    "digest": r"^sha256:[0-9a-f]{64}$|^sha512:[0-9a-f]{128}$",
    "hostname": r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,252}$",
}


class ManifestError(UsageError):
    """A manifest.json that is not what airdock writes: one line naming the field."""


def _meta(pattern: str | None = None, minimum: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if pattern:
        out["pattern"] = _PATTERNS[pattern]
    if minimum is not None:
        out["minimum"] = minimum
    return out


@dataclass(frozen=True)
class ManifestPackage:
    name: str = field(metadata=_meta("name"))
    epoch: int = field(metadata=_meta(minimum=0))
    version: str = field(metadata=_meta("version"))
    release: str = field(metadata=_meta("release"))
    arch: str = field(metadata=_meta("arch"))
    file: str = field(metadata=_meta("rpm_file"))
    size: int = field(metadata=_meta(minimum=0))
    sha256: str = field(metadata=_meta("sha256"))
    url: str
    repo: str
    signing_key: Optional[str]
    requested: bool

    @property
    def nevra(self) -> str:
        return nevra_text(self.name, self.epoch, self.version, self.release, self.arch)

    @property
    def evr(self) -> str:
        base = f"{self.version}-{self.release}"
        return f"{self.epoch}:{base}" if self.epoch else base


@dataclass(frozen=True)
class ManifestKey:
    file: str = field(metadata=_meta("key_file"))
    fingerprint: str = field(metadata=_meta("fingerprint"))
    key_ids: list[str]
    vendor: bool = False


@dataclass(frozen=True)
class ManifestImage:
    reference: str
    repo_tag: str
    registry: str
    index_digest: Optional[str]
    manifest_digest: str = field(metadata=_meta("digest"))
    config_digest: str = field(metadata=_meta("digest"))
    platform: str
    file: str = field(metadata=_meta("image_file"))
    size: int = field(metadata=_meta(minimum=0))
    sha256: str = field(metadata=_meta("sha256"))


@dataclass(frozen=True)
class HostInventory:
    """The host a ``--baseline-from`` build was made for: its inventory file and host name."""

    sha256: str = field(metadata=_meta("sha256"))
    hostname: Optional[str] = field(default=None, metadata=_meta("hostname"))
    packages: int = field(default=0, metadata=_meta(minimum=0))


@dataclass(frozen=True)
class Target:
    os: str
    releasever: str
    arch: str = field(metadata=_meta("arch"))
    baseline: str
    closure: str
    inventory: Optional[HostInventory] = None  # only for builds made --baseline-from a host


@dataclass(frozen=True)
class Publisher:
    file: str = field(metadata=_meta("key_file"))
    fingerprint: str = field(metadata=_meta("fingerprint"))


@dataclass(frozen=True)
class FileRef:
    file: str
    sha256: str = field(metadata=_meta("sha256"))
    format: Optional[str] = None


@dataclass
class BundleManifest:
    name: str
    tool: dict[str, str]
    created: str
    docker_version: str = field(metadata=_meta("version"))
    channel: str
    target: Target
    requested: list[str]
    mirror: dict[str, Any]
    repos: list[dict[str, str]]
    keys: list[ManifestKey]
    packages: list[ManifestPackage]
    remove: list[str]
    images: list[ManifestImage]
    installer: FileRef
    format: str = FORMAT
    format_version: int = FORMAT_VERSION
    publisher: Optional[Publisher] = None
    sbom: Optional[FileRef] = None

    # -- writing ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The JSON object, optional sections left out when absent."""
        data = dataclasses.asdict(self)
        for key in ("publisher", "sbom"):
            if data[key] is None:
                del data[key]
        if data["target"].get("inventory") is None:
            del data["target"]["inventory"]
        elif data["target"]["inventory"].get("hostname") is None:
            del data["target"]["inventory"]["hostname"]
        if data["installer"].get("format") is None:
            del data["installer"]["format"]
        return data

    # -- reading ---------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Any, source: str = "manifest.json") -> BundleManifest:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ManifestError(f"{source} is not an airdock bundle manifest")
        version = data.get("format_version")
        if type(version) is not int:
            raise ManifestError(f"{source}: format_version {version!r} is not a whole number")
        if version != FORMAT_VERSION:
            raise ManifestError(
                f"{source} is format_version {version}; this airdock reads "
                f"{FORMAT_VERSION}: use the airdock that made the bundle, or rebuild it"
            )
        try:
            manifest: BundleManifest = _build(cls, data, "")
            return manifest
        except ManifestError as exc:
            raise ManifestError(
                f"{source}: {exc}; the bundle is damaged or was not written by airdock"
            ) from None

    @classmethod
    def load(cls, path: Path) -> BundleManifest:
        """From a bundle folder or its manifest.json."""
        file = path / "manifest.json" if path.is_dir() else path
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ManifestError(f"{path} is not a bundle (no manifest.json)") from None
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise ManifestError(
                f"{file} is not valid JSON ({exc}); the bundle is damaged"
            ) from None
        return cls.from_dict(data, str(file))

    # -- what readers ask ------------------------------------------------------------------
    @property
    def payload_size(self) -> int:
        return sum(p.size for p in self.packages) + sum(i.size for i in self.images)


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    """A dataclass from a dict, each field checked against its annotation and metadata."""
    if not isinstance(data, dict):
        raise ManifestError(f"{where or 'the manifest'} is not an object")
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        path = f"{where}.{f.name}" if where else f.name
        if f.name not in data:
            if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING:
                continue
            if _optional(hints[f.name]):
                values[f.name] = None
                continue
            raise ManifestError(f"{path} is missing")
        values[f.name] = _value(hints[f.name], data[f.name], path, f.metadata)
    return cls(**values)


def _optional(hint: Any) -> bool:
    return type(None) in typing.get_args(hint) and _is_union(hint)


_UNIONS = tuple(u for u in (Union, getattr(types, "UnionType", None)) if u is not None)


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) in _UNIONS


def _value(hint: Any, value: Any, path: str, meta: Any = None) -> Any:
    if _is_union(hint):
        if value is None and _optional(hint):
            return None
        (inner,) = [a for a in typing.get_args(hint) if a is not type(None)]
        return _value(inner, value, path, meta)
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, path)  # type: ignore[arg-type]
    if origin is list:
        if not isinstance(value, list):
            raise ManifestError(f"{path} is not a list")
        (item,) = typing.get_args(hint)
        return [_value(item, v, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ManifestError(f"{path} is not an object")
        return value
    expected = {str: str, int: int, bool: bool}.get(hint)
    if expected is not None and type(value) is not expected:
        raise ManifestError(f"{path} is {type(value).__name__}, not {expected.__name__}")
    if expected is str and meta and "pattern" in meta and not re.match(meta["pattern"], value):
        raise ManifestError(f"{path} {value[:80]!r} is malformed")
    if expected is int and meta and value < meta.get("minimum", value):
        raise ManifestError(f"{path} {value} is below {meta['minimum']}")
    return value


# -- the JSON Schema (docs/manifest.schema.json) ----------------------------------------------
def json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of manifest.json, generated from the classes above."""
    schema = _schema(BundleManifest)
    schema["properties"]["format"] = {"const": FORMAT}
    schema["properties"]["format_version"] = {"const": FORMAT_VERSION}
    schema["required"] = sorted({*schema["required"], "format", "format_version"})
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://airdock.invalid/manifest.schema.json",
        "title": "airdock bundle manifest (format_version 1)",
        **schema,
    }


def _schema(hint: Any) -> dict[str, Any]:
    if _is_union(hint):
        inner = [_schema(a) for a in typing.get_args(hint) if a is not type(None)]
        return {"anyOf": [*inner, {"type": "null"}]}
    if dataclasses.is_dataclass(hint):
        hints = typing.get_type_hints(hint)
        props = {}
        required = []
        for f in dataclasses.fields(hint):
            props[f.name] = {**_schema(hints[f.name]), **dict(f.metadata)}
            no_default = (
                f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            )
            if no_default and not _optional(hints[f.name]):
                required.append(f.name)
        return {"type": "object", "properties": props, "required": required}
    origin = typing.get_origin(hint)
    if origin is list:
        return {"type": "array", "items": _schema(typing.get_args(hint)[0])}
    if origin is dict:
        return {"type": "object"}
    return {"type": {str: "string", int: "integer", bool: "boolean"}[hint]}
