"""Release artifacts: one bundle per (mirror, arch), checked against each other.

A release engineer ships one artifact per mirror and architecture. All bundles
share one Downloader, hence one content-addressed cache: an RPM or blob that is
identical on two mirrors is downloaded once. Every plan is made before any RPM
is fetched, so a mirror that disagrees with another about a package's digest
stops the release before it writes anything. ``RELEASES.json`` and
``RELEASES.md`` list the artifacts with their sizes and digests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .bundle import BuildResult, build, work_folder, write_json, write_text_atomic
from .consistency import image_drift, plan_drift, raise_on_drift
from .download import Downloader
from .mirrors import resolve_chain
from .plan import BuildOptions, Plan, Reporter, make_plan


@dataclass
class ReleaseEntry:
    mirror: str
    arch: str
    result: BuildResult


def release(
    base: BuildOptions,
    mirrors: Sequence[str],
    arches: Sequence[str],
    os_mirror: str | None,
    downloader: Downloader,
    reporter: Reporter | None = None,
    config: dict[str, str] | None = None,
) -> list[ReleaseEntry]:
    """Every (mirror, arch) planned, checked against each other, then built; ``config`` (the
    --config file's name and sha256) is recorded in RELEASES.json."""
    reporter = reporter or Reporter()
    targets = [(m, a) for m in mirrors for a in arches]
    plans: dict[tuple[str, str], tuple[BuildOptions, Plan]] = {}
    with work_folder(_mkdir(base.output)) as tmp:  # a killed release's is swept like a build's
        for mirror, arch in targets:
            opts = replace(base, mirror=resolve_chain(mirror, os_mirror), arch=arch)
            reporter.step(f"planning {mirror} {arch}")
            plans[(mirror, arch)] = (
                opts,
                make_plan(opts, downloader, Path(tmp) / f"{mirror}-{arch}", reporter),
            )
    for arch in arches:  # x86_64 and altarch trees build their noarch RPMs apart
        same_arch = {m: plan.packages for (m, a), (_, plan) in plans.items() if a == arch}
        raise_on_drift(plan_drift(same_arch), base.allow_mirror_drift, reporter.step)
    images = {
        f"{m} ({a})": [i.describe() for i in plan.images] for (m, a), (_, plan) in plans.items()
    }
    raise_on_drift(image_drift(images), base.allow_mirror_drift, reporter.step)  # before building

    entries = []
    for (mirror, arch), (opts, plan) in plans.items():
        reporter.step(f"building {plan.name}")
        entries.append(ReleaseEntry(mirror, arch, build(opts, downloader, reporter, plan)))
    write_releases(base.output, entries, config)
    if base.signer is not None:
        base.signer.sign_file(base.output / "RELEASES.json")
    return entries


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def release_rows(entries: Sequence[ReleaseEntry]) -> list[dict[str, Any]]:
    rows = []
    for e in entries:
        r = e.result
        files = r.parts or [r.tarball]
        rows.append(
            {
                "artifact": r.tarball.name,
                "files": [f.name for f in files],
                "size": sum(f.stat().st_size for f in files),
                "sha256": r.tarball_sha256,
                "sha256sums_sha256": r.sha256sums_sha256,
                "docker_version": r.manifest.docker_version,
                "mirror": r.manifest.mirror["name"],
                "arch": e.arch,
                "packages": len(r.manifest.packages),
                "images": [i.reference for i in r.manifest.images],
            }
        )
    return sorted(rows, key=lambda row: (row["mirror"], row["arch"]))


def write_releases(
    output: Path, entries: Sequence[ReleaseEntry], config: dict[str, str] | None = None
) -> None:
    rows = release_rows(entries)
    document: dict[str, Any] = {"format_version": 1, "artifacts": rows}
    if config is not None:
        document["config"] = config
    write_json(output / "RELEASES.json", document)
    lines = [
        "# airdock release",
        "",
        "| artifact | mirror | arch | docker-ce | size | sha256 |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['artifact']} | {row['mirror']} | {row['arch']} | {row['docker_version']} | "
            f"{row['size'] / 1e6:.1f} MB | `{row['sha256']}` |"
        )
    lines += ["", "Check an artifact with `sha256sum -c <artifact>.sha256`.", ""]
    write_text_atomic(output / "RELEASES.md", "\n".join(lines))
