"""Cross-mirror consistency: one NEVRA, one set of bytes.

Mirrors copy the same upstream files, so a package with the same name, epoch,
version, release and arch must have the same digest on every mirror (and an
image reference the same digest on every registry). When two disagree, one is
stale or tampered with, and a bundle must not silently mix them. The checks
work on repository metadata and plans, before anything is downloaded; the
downloads are then verified against the digests checked here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from .download import Digest, Downloader
from .errors import AirdockError, NotFoundError
from .repodata import Repo, fetch_repo
from .resolve import Package, Solver


class MirrorDriftError(AirdockError):
    """The same package or image has different digests on different mirrors."""


def repo_digests(repo: Repo, arch: str) -> dict[str, Digest]:
    """NEVRA -> digest for every package in a repository's primary metadata, read by the
    solver's own loader: a primary that cannot be read is an error here too."""
    solver = Solver(arch)
    solver.add_repo(repo)
    return solver.digests(repo.id)


def chain_drift(
    repos: Iterable[Repo],
    packages: Iterable[Package],
    downloader: Downloader,
    workdir: Path,
    arch: str,
) -> list[str]:
    """Compare the planned packages with every other mirror of a fallback chain."""
    problems: list[str] = []
    by_repo: dict[str, list[Package]] = {}
    for p in packages:
        by_repo.setdefault(p.repo_id, []).append(p)
    for repo in repos:
        for index, base in enumerate(repo.baseurls[1:], 1):
            try:
                other = fetch_repo(downloader, repo.id, [base], workdir / f"{repo.id}-alt{index}")
            except NotFoundError:
                continue  # that mirror lacks the repo: the fallback never takes files from it
            digests = repo_digests(other, arch)
            for p in by_repo.get(repo.id, []):
                theirs = digests.get(p.nevra)
                if theirs is not None and theirs.algo == p.digest.algo and theirs != p.digest:
                    problems.append(
                        f"{p.nevra}: {repo.baseurl} says {p.digest}, {base} says {theirs}"
                    )
    return problems


def plan_drift(plans: Mapping[str, Iterable[Package]]) -> list[str]:
    """Compare package digests across plans built from different mirrors (a release)."""
    seen: dict[str, tuple[str, Digest]] = {}
    problems = []
    for label, packages in plans.items():
        for p in packages:
            if p.nevra in seen:
                first_label, first = seen[p.nevra]
                if first.algo == p.digest.algo and first != p.digest:
                    problems.append(f"{p.nevra}: {first_label} has {first}, {label} has {p.digest}")
            else:
                seen[p.nevra] = (label, p.digest)
    return problems


def image_drift(images: Mapping[str, Iterable[Mapping[str, Any]]]) -> list[str]:
    """Compare image manifest digests (per reference and platform) across plans or bundles:
    ``{label: [{"reference", "platform", "manifest_digest"}, …]}``."""
    seen: dict[tuple[str, str], tuple[str, str]] = {}
    problems = []
    for label, entries in images.items():
        for image in entries:
            key = (image["reference"], image["platform"])
            digest = image["manifest_digest"]
            if key in seen and seen[key][1] != digest:
                problems.append(
                    f"{key[0]} ({key[1]}): {seen[key][0]} has {seen[key][1]}, {label} has {digest}"
                )
            seen.setdefault(key, (label, digest))
    return problems


def raise_on_drift(problems: list[str], allow: bool, warn: Callable[[str], None]) -> None:
    if not problems:
        return
    if allow:
        for line in problems:
            warn(f"warning: mirror drift allowed: {line}")
        return
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    raise MirrorDriftError(
        f"mirrors disagree: {problems[0]}{more}; one mirror is stale or tampered — "
        "use one mirror, wait for it to sync, or pass --allow-mirror-drift"
    )
