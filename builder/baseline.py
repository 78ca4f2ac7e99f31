"""The target host's own package set (``--baseline-from``), read as hostile input.

``install.sh inventory`` on the target writes one JSON document (``airdock-inventory/1``):
host name, os-release, kernel, arch, python, docker presence and every installed package as
name/epoch/version/release/arch. A plain ``rpm -qa`` listing (``name-version-release.arch`` per
line) is accepted too; its epochs are unknown and are taken later from a repository package of
the same name-version-release.arch, else of the same name, else 0 (see
:meth:`builder.resolve.Solver.install_host`).

The file comes from another machine, carried by hand: its size is bounded, every field is
checked for type and shape, and the first thing wrong is named in one line. The result is a
:class:`HostBaseline` that the solver turns into libsolv's installed repository, and whose
sha256 and host name the manifest records.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import UsageError
from .userfile import decode_user_text, read_user_file

INVENTORY_FORMAT = "airdock-inventory/1"
MAX_INVENTORY_BYTES = 16 * 1024 * 1024
MAX_PACKAGES = 50_000
MAX_TEXT = 4096

_NAME = re.compile(r"^[A-Za-z0-9_+][A-Za-z0-9._+-]{0,199}$")
_VERSION = re.compile(r"^[A-Za-z0-9._+~^]{1,200}$")
_ARCH = re.compile(r"^[A-Za-z0-9_]{1,32}$")
_HOSTNAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,252}$")
_PRINTABLE = re.compile(r"^[\x20-\x7e\u00a0-\uffff]*$")
# gpg-pubkey "packages" are keys in rpmdb, not software: never part of a host's closure
_NOT_PACKAGES = ("gpg-pubkey",)


class InventoryError(UsageError):
    """An inventory file that is not what ``install.sh inventory`` or ``rpm -qa`` writes."""


@dataclass(frozen=True)
class HostPackage:
    name: str
    epoch: int | None  # None: unknown (rpm -qa listing)
    version: str
    release: str
    arch: str

    @property
    def nvra(self) -> str:
        return f"{self.name}-{self.version}-{self.release}.{self.arch}"


@dataclass(frozen=True)
class HostBaseline:
    """A host's installed packages and where they came from."""

    source: str  # the file name as given (for messages)
    sha256: str
    hostname: str | None
    arch: str | None
    packages: tuple[HostPackage, ...]
    kind: str  # "inventory" | "rpm-qa"

    def describe(self) -> str:
        if self.hostname:
            return f"host {self.hostname} with {len(self.packages)} packages"
        return f"an rpm -qa listing of {len(self.packages)} packages"


def load_baseline(path: Path) -> HostBaseline:
    """Read ``--baseline-from FILE``: an inventory JSON or an ``rpm -qa`` listing."""
    data = read_user_file(
        path,
        f"--baseline-from {path}",
        MAX_INVENTORY_BYTES,
        "the file `./install.sh inventory -o host.json` wrote on the target",
        InventoryError,
    )
    return parse_baseline(data, str(path))


def parse_baseline(data: bytes, source: str) -> HostBaseline:
    where = f"--baseline-from {source}"
    text = decode_user_text(data, where, "the inventory JSON", InventoryError)
    digest = hashlib.sha256(data).hexdigest()
    if text.lstrip().startswith("{"):
        return _from_json(text, source, where, digest)
    return _from_rpm_qa(text, source, where, digest)


# -- the inventory JSON ----------------------------------------------------------------------
def _from_json(text: str, source: str, where: str, digest: str) -> HostBaseline:
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise InventoryError(f"{where} is not valid JSON ({exc}); carry the file again") from None
    if not isinstance(doc, dict):
        raise InventoryError(f"{where} is not a JSON object")
    if doc.get("format") != INVENTORY_FORMAT:
        raise InventoryError(
            f"{where}: format is {_shown(doc.get('format'))}, not {INVENTORY_FORMAT!r}; "
            "write it with `./install.sh inventory -o host.json`"
        )
    hostname = _text(doc, "hostname", where, _HOSTNAME, "a host name")
    arch = _text(doc, "arch", where, _ARCH, "an architecture")
    for key in ("kernel", "python"):
        _text(doc, key, where, _PRINTABLE, "printable text")
    os_release = doc.get("os_release")
    if not isinstance(os_release, dict) or len(os_release) > 200:
        raise InventoryError(f"{where}: os_release is not an object of os-release fields")
    for key, value in os_release.items():
        if not isinstance(value, str) or len(key) > 100 or len(value) > MAX_TEXT:
            raise InventoryError(f"{where}: os_release.{key[:40]} is not a short text")
    docker = doc.get("docker")
    if not isinstance(docker, dict):
        raise InventoryError(f"{where}: docker is missing or not an object")
    for key in ("present", "old_docker"):
        if type(docker.get(key)) is not bool:
            raise InventoryError(
                f"{where}: docker.{key} is {_shown(docker.get(key))}, not true/false"
            )
    if not isinstance(docker.get("packages"), list) or len(docker["packages"]) > 1000:
        raise InventoryError(f"{where}: docker.packages is not a list")
    packages = doc.get("packages")
    if not isinstance(packages, list):
        raise InventoryError(f"{where}: packages is missing or not a list")
    if len(packages) > MAX_PACKAGES:
        raise InventoryError(f"{where}: more than {MAX_PACKAGES} packages; this is no host")
    out = []
    for index, entry in enumerate(packages):
        at = f"{where}: packages[{index}]"
        if not isinstance(entry, dict):
            raise InventoryError(f"{at} is not an object")
        name = _text(entry, "name", at, _NAME, "a package name")
        epoch = entry.get("epoch")
        if type(epoch) is not int or not 0 <= epoch < 2**31:
            raise InventoryError(
                f"{at} ({name}): epoch is {_shown(epoch)}, not a whole number >= 0"
            )
        version = _text(entry, "version", at, _VERSION, "a version")
        release = _text(entry, "release", at, _VERSION, "a release")
        pkg_arch = entry.get("arch")
        if name in _NOT_PACKAGES:
            continue
        pkg_arch = _text(entry, "arch", at, _ARCH, "an architecture")
        out.append(HostPackage(name, epoch, version, release, pkg_arch))
    return _checked(source, digest, hostname, arch, out, "inventory", where)


def _text(doc: dict[str, Any], key: str, where: str, shape: re.Pattern[str], what: str) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or len(value) > MAX_TEXT or not shape.match(value):
        raise InventoryError(f"{where}: {key} is {_shown(value)}, not {what}")
    return value


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# -- a plain rpm -qa listing -----------------------------------------------------------------
_NVRA = re.compile(
    r"^(?P<name>[A-Za-z0-9_+][A-Za-z0-9._+-]*)-(?:(?P<epoch>[0-9]+):)?"
    r"(?P<version>[A-Za-z0-9._+~^]+)-(?P<release>[A-Za-z0-9._+~^]+)\.(?P<arch>[A-Za-z0-9_]+)$"
)


def _from_rpm_qa(text: str, source: str, where: str, digest: str) -> HostBaseline:
    out: list[HostPackage] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#") or line.startswith("gpg-pubkey-"):
            continue
        m = _NVRA.match(line)
        if m is None or len(line) > 600:
            raise InventoryError(
                f"{where} line {number}: {_shown(line)} is not name-version-release.arch; "
                "give the output of `rpm -qa` or `./install.sh inventory`"
            )
        if len(out) >= MAX_PACKAGES:
            raise InventoryError(f"{where}: more than {MAX_PACKAGES} packages; this is no host")
        epoch = int(m["epoch"]) if m["epoch"] is not None else None
        out.append(HostPackage(m["name"], epoch, m["version"], m["release"], m["arch"]))
    return _checked(source, digest, None, None, out, "rpm-qa", where)


def _checked(
    source: str,
    digest: str,
    hostname: str | None,
    arch: str | None,
    packages: list[HostPackage],
    kind: str,
    where: str,
) -> HostBaseline:
    if not packages:
        raise InventoryError(f"{where} lists no package; it is not a host's inventory")
    return HostBaseline(
        source=source,
        sha256=digest,
        hostname=hostname,
        arch=arch,
        packages=tuple(sorted(set(packages), key=lambda p: (p.name, p.arch, p.version, p.release))),
        kind=kind,
    )


def check_baseline_arch(baseline: HostBaseline, arch: str) -> None:
    """The inventory's host must be of the arch the bundle is built for."""
    if baseline.arch is not None and baseline.arch != arch:
        raise InventoryError(
            f"--baseline-from {baseline.source} is a {baseline.arch} host but the build is for "
            f"{arch}; pass --arch {baseline.arch}"
        )
