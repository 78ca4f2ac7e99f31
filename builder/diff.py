"""What changed between two bundles, read from their manifests.

Operators ask "what does this new USB stick change on my hosts?": packages
added, removed or moved to another EVR, images whose digest changed, and the
size difference. Only manifest.json is read, so a diff works on folders
without their payload too, and on tarballs and split parts (streamed, never unpacked).
"""

from __future__ import annotations

import glob
import io
import json
import re
import tarfile
import zlib
from pathlib import Path
from typing import IO, Any

from .errors import UsageError
from .manifest import BundleManifest, ManifestError, ManifestPackage

MAX_MANIFEST_BYTES = 16 * 1024 * 1024
_PART = re.compile(r"^(.*\.tar(?:\.gz)?)\.part-(\d+)$")


def load_manifest(path: Path) -> BundleManifest:
    """A bundle's manifest, validated, from its folder, its manifest.json, its tarball, one of
    its parts or its ``NAME.JOIN.txt``.

    A tarball (or the parts, read in order as one stream) is read as a stream up to the
    bundle's ``manifest.json``, a regular file at most 16 MiB, directly under the one
    top-level folder; nothing is written to disk.
    """
    if path.is_dir() or path.name == "manifest.json":
        return BundleManifest.load(path)
    if not path.is_file():
        raise UsageError(f"{path}: no such bundle folder, tarball, part or JOIN.txt file")
    files = _tar_files(path)
    where = f"{path.name}:manifest.json"
    with io.BufferedReader(_Joined(files), 1 << 20) as stream:
        data = _manifest_member(stream, path)
    try:
        doc = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{where} is not valid JSON ({exc}); the bundle is damaged") from None
    return BundleManifest.from_dict(doc, where)


def _tar_files(path: Path) -> list[Path]:
    """The files that make up the tarball ``path`` names (itself, or all its parts in order)."""
    match = _PART.match(path.name)
    if path.name.endswith(".JOIN.txt"):
        stem = path.name[: -len(".JOIN.txt")]
        candidates = [p for p in path.parent.glob(f"{glob.escape(stem)}.tar*.part-*")]
    elif match:
        candidates = [p for p in path.parent.glob(f"{glob.escape(match.group(1))}.part-*")]
    else:
        return [path]
    parts = sorted(
        (p for p in candidates if _PART.match(p.name)),
        key=lambda p: int(_PART.match(p.name).group(2)),  # type: ignore[union-attr]
    )
    if not parts:
        raise UsageError(f"{path}: no parts (NAME.tar*.part-NNN) beside it; copy them here")
    numbers = [int(_PART.match(p.name).group(2)) for p in parts]  # type: ignore[union-attr]
    if numbers != list(range(len(parts))):
        raise UsageError(
            f"{path}: the parts are not numbered 0..{len(parts) - 1} without gaps; "
            "copy every part of the bundle"
        )
    return parts


class _Joined(io.RawIOBase):
    """Several files read as one stream, in order (split parts)."""

    def __init__(self, files: list[Path]) -> None:
        self.files = list(files)
        self.current: io.BufferedReader | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while True:
            if self.current is None:
                if not self.files:
                    return 0
                self.current = open(self.files.pop(0), "rb")  # noqa: SIM115 - closed below
            n: int = self.current.readinto(buffer)
            if n:
                return n
            self.current.close()
            self.current = None

    def close(self) -> None:
        if self.current is not None:
            self.current.close()
            self.current = None
        super().close()


def _manifest_member(stream: IO[bytes], path: Path) -> bytes:
    try:
        with tarfile.open(fileobj=stream, mode="r|*") as tar:
            for member in tar:
                parts = member.name.split("/")
                if len(parts) == 2 and parts[1] == "manifest.json" and member.isfile():
                    if member.size > MAX_MANIFEST_BYTES:
                        break
                    f = tar.extractfile(member)
                    if f is None:
                        break
                    return f.read(MAX_MANIFEST_BYTES)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise ManifestError(
            f"{path.name} cannot be read as a bundle tarball ({exc}); check it against its "
            ".sha256 (airdock verify)"
        ) from None
    raise ManifestError(
        f"{path.name} holds no NAME/manifest.json of at most 16 MiB; it is not an airdock bundle"
    )


def diff_manifests(old: BundleManifest, new: BundleManifest) -> dict[str, Any]:
    """What changed from ``old`` to ``new``."""

    def by_name(m: BundleManifest) -> dict[tuple[str, str], ManifestPackage]:
        return {(p.name, p.arch): p for p in m.packages}

    a, b = by_name(old), by_name(new)
    changed = []
    for key in sorted(a.keys() & b.keys()):
        if (a[key].evr, a[key].sha256) != (b[key].evr, b[key].sha256):
            changed.append(
                {
                    "name": key[0],
                    "arch": key[1],
                    "old": a[key].evr,
                    "new": b[key].evr,
                    "direction": _direction(a[key], b[key]),
                }
            )
    images_a = {i.reference: i for i in old.images}
    images_b = {i.reference: i for i in new.images}
    return {
        "old": old.name,
        "new": new.name,
        "docker_version": {"old": old.docker_version, "new": new.docker_version},
        "packages": {
            "added": [f"{k[0]}-{b[k].evr}.{k[1]}" for k in sorted(b.keys() - a.keys())],
            "removed": [f"{k[0]}-{a[k].evr}.{k[1]}" for k in sorted(a.keys() - b.keys())],
            "changed": changed,
        },
        "images": {
            "added": sorted(images_b.keys() - images_a.keys()),
            "removed": sorted(images_a.keys() - images_b.keys()),
            "changed": [
                {
                    "reference": r,
                    "old": images_a[r].config_digest,
                    "new": images_b[r].config_digest,
                }
                for r in sorted(images_a.keys() & images_b.keys())
                if images_a[r].config_digest != images_b[r].config_digest
            ],
        },
        "size": {
            "old": old.payload_size,
            "new": new.payload_size,
            "delta": new.payload_size - old.payload_size,
        },
    }


def _direction(old: ManifestPackage, new: ManifestPackage) -> str:
    """upgrade, downgrade or rebuilt (same EVR, other bytes), comparing EVRs as rpm does."""
    result = _evrcmp(old.evr, new.evr)
    return "rebuilt" if result == 0 else "upgrade" if result < 0 else "downgrade"


def _evrcmp(a: str, b: str) -> int:
    """rpm's EVR comparison, done by libsolv on two throwaway solvables."""
    import solv  # lazily: `airdock --help` should not load libsolv

    pool = solv.Pool()
    repo = pool.add_repo("cmp")
    sa, sb = repo.add_solvable(), repo.add_solvable()
    sa.name = sb.name = "x"
    sa.evr, sb.evr = a, b
    sa.arch = sb.arch = "noarch"
    return int(sa.evrcmp(sb))


def format_diff(d: dict[str, Any]) -> str:
    lines = [f"{d['old']} -> {d['new']}"]
    dv = d["docker_version"]
    if dv["old"] != dv["new"]:
        lines.append(f"docker-ce: {dv['old']} -> {dv['new']}")
    pk = d["packages"]
    lines += [f"  + {n}" for n in pk["added"]]
    lines += [f"  - {n}" for n in pk["removed"]]
    lines += [
        f"  ~ {c['name']}.{c['arch']}: {c['old']} -> {c['new']} ({c['direction']})"
        for c in pk["changed"]
    ]
    im = d["images"]
    lines += [f"  + image {r}" for r in im["added"]]
    lines += [f"  - image {r}" for r in im["removed"]]
    lines += [f"  ~ image {c['reference']}: {c['old']} -> {c['new']}" for c in im["changed"]]
    if len(lines) == 1 + (dv["old"] != dv["new"]):
        lines.append("  no package or image changes")
    delta = d["size"]["delta"]
    lines.append(
        f"size: {d['size']['old'] / 1e6:.1f} MB -> {d['size']['new'] / 1e6:.1f} MB "
        f"({'+' if delta >= 0 else ''}{delta / 1e6:.1f} MB)"
    )
    return "\n".join(lines)
