"""What changed between two bundles, read from their manifests.

Operators ask "what does this new USB stick change on my hosts?": packages
added, removed or moved to another EVR, images whose digest changed, and the
size difference. Only manifest.json is read, so a diff works on folders
without their payload too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import solv

from .manifest import BundleManifest, ManifestPackage


def load_manifest(path: Path) -> BundleManifest:
    """A bundle's manifest from its folder (or the manifest file itself), validated."""
    return BundleManifest.load(path)


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
