"""What changed between two bundles, read from their manifests.

Operators ask "what does this new USB stick change on my hosts?": packages
added, removed or moved to another EVR, images whose digest changed, and the
size difference. Only manifest.json is read, so a diff works on folders
without their payload too.
"""

from __future__ import annotations

import json
from pathlib import Path

import solv

from .errors import UsageError


def load_manifest(path: Path) -> dict:
    """A bundle's manifest from its folder (or the manifest file itself)."""
    file = path / "manifest.json" if path.is_dir() else path
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(
            f"{path} is not a bundle (no manifest.json); give a bundle folder"
        ) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"{file} is not valid JSON ({exc}); the bundle is damaged") from None
    if not isinstance(data, dict) or data.get("format") != "airdock-bundle":
        raise UsageError(f"{file} is not an airdock manifest; give a bundle folder")
    return data


def _evr(p: dict) -> str:
    return (
        f"{p['epoch']}:{p['version']}-{p['release']}"
        if p.get("epoch")
        else f"{p['version']}-{p['release']}"
    )


def _size(m: dict) -> int:
    return sum(p["size"] for p in m.get("packages", [])) + sum(
        i["size"] for i in m.get("images", [])
    )


def diff_manifests(old: dict, new: dict) -> dict:
    """What changed from ``old`` to ``new``; a manifest missing fields is a UsageError."""
    try:
        return _diff(old, new)
    except (KeyError, TypeError, AttributeError) as exc:
        raise UsageError(
            f"a bundle manifest lacks or mangles the field {exc}; the bundle is damaged "
            "or was not written by airdock"
        ) from None


def _diff(old: dict, new: dict) -> dict:
    def by_name(m: dict) -> dict[tuple[str, str], dict]:
        return {(p["name"], p["arch"]): p for p in m.get("packages", [])}

    a, b = by_name(old), by_name(new)
    changed = []
    for key in sorted(a.keys() & b.keys()):
        if (_evr(a[key]), a[key]["sha256"]) != (_evr(b[key]), b[key]["sha256"]):
            changed.append(
                {
                    "name": key[0],
                    "arch": key[1],
                    "old": _evr(a[key]),
                    "new": _evr(b[key]),
                    "direction": _direction(a[key], b[key]),
                }
            )
    images_a = {i["reference"]: i for i in old.get("images", [])}
    images_b = {i["reference"]: i for i in new.get("images", [])}
    return {
        "old": old.get("name"),
        "new": new.get("name"),
        "docker_version": {"old": old.get("docker_version"), "new": new.get("docker_version")},
        "packages": {
            "added": [f"{k[0]}-{_evr(b[k])}.{k[1]}" for k in sorted(b.keys() - a.keys())],
            "removed": [f"{k[0]}-{_evr(a[k])}.{k[1]}" for k in sorted(a.keys() - b.keys())],
            "changed": changed,
        },
        "images": {
            "added": sorted(images_b.keys() - images_a.keys()),
            "removed": sorted(images_a.keys() - images_b.keys()),
            "changed": [
                {
                    "reference": r,
                    "old": images_a[r]["config_digest"],
                    "new": images_b[r]["config_digest"],
                }
                for r in sorted(images_a.keys() & images_b.keys())
                if images_a[r]["config_digest"] != images_b[r]["config_digest"]
            ],
        },
        "size": {"old": _size(old), "new": _size(new), "delta": _size(new) - _size(old)},
    }


def _direction(old: dict, new: dict) -> str:
    """upgrade, downgrade or rebuilt (same EVR, other bytes), comparing EVRs as rpm does."""
    result = _evrcmp(_evr(old), _evr(new))
    return "rebuilt" if result == 0 else "upgrade" if result < 0 else "downgrade"


def _evrcmp(a: str, b: str) -> int:
    """rpm's EVR comparison, done by libsolv on two throwaway solvables."""
    pool = solv.Pool()
    repo = pool.add_repo("cmp")
    sa, sb = repo.add_solvable(), repo.add_solvable()
    sa.name = sb.name = "x"
    sa.evr, sb.evr = a, b
    sa.arch = sb.arch = "noarch"
    return sa.evrcmp(sb)


def format_diff(d: dict) -> str:
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
