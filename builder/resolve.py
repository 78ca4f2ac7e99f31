"""Dependency resolution with libsolv, the solver behind dnf and zypper.

The question we ask is the one yum answers on the target: *which packages does
``yum install <requested>`` add to a freshly installed CentOS 7.9 minimal host?*
So the pool holds the docker-ce repo and CentOS os/extras/updates; the "system"
is the ``@core`` group of the os repo, itself solved by libsolv from an empty
system (mandatory + default packages, as anaconda installs them); and the
answer is the transaction's new solvables — installs and the upgrades of
baseline packages that some dependency forces. ``closure="full"`` answers for
an empty system instead: every package needed, for hosts older than 7.9.

Weak dependencies are ignored (el7's yum does not know them), and EVRs compare
as rpm compares them because libsolv does the comparing.
"""

from __future__ import annotations

import importlib.metadata
import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import solv

try:
    _SOLV_VERSION = importlib.metadata.version("solv")
except importlib.metadata.PackageNotFoundError:  # a distribution's python3-solv
    _SOLV_VERSION = "system"

from .download import Digest
from .errors import ResolveError, UsageError
from .names import check_href, check_nevra, checked_digest, nevra_text
from .repodata import Repo

DOCKER_FAMILY = ("docker-ce", "docker-ce-cli", "docker-ce-rootless-extras")


@dataclass(frozen=True)
class Package:
    """A package chosen for the bundle, with where to get it and what it must hash to."""

    name: str
    epoch: int
    version: str
    release: str
    arch: str
    repo_id: str
    urls: tuple[str, ...]
    href: str
    digest: Digest
    size: int
    requested: bool

    @property
    def evr(self) -> str:
        return (
            f"{self.epoch}:{self.version}-{self.release}"
            if self.epoch
            else f"{self.version}-{self.release}"
        )

    @property
    def url(self) -> str:
        return self.urls[0]

    @property
    def nevra(self) -> str:
        return nevra_text(self.name, self.epoch, self.version, self.release, self.arch)

    @property
    def filename(self) -> str:
        return self.href.rsplit("/", 1)[-1]


def solv_cache_path(root: Path | None, repo: Repo) -> Path | None:
    """Where the parsed primary of ``repo`` is kept as a .solv file (libsolv reads one ~10x
    faster than the XML): named by the primary's digest from repomd.xml, so a changed
    primary is parsed afresh, and by the libsolv version that wrote it."""
    record = repo.records.get("primary")
    if root is None or record is None or not record.digest.strong:
        return None
    return root / f"{record.digest.algo}-{record.digest.value}-{_SOLV_VERSION}.solv"


def _load_solv(srepo: solv.Repo, path: Path) -> bool:
    """Load a kept .solv file; False (and the repo left empty) when absent or unreadable."""
    if not path.is_file():
        return False
    f = solv.xfopen(str(path))
    ok = bool(f) and srepo.add_solv(f, 0)
    if f:
        f.close()
    if not ok:
        srepo.empty()
        path.unlink(missing_ok=True)
    return bool(ok)


def _write_solv(srepo: solv.Repo, path: Path) -> None:
    """Keep the parsed repo (written beside, then renamed: a reader never sees half)."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}.{threading.get_ident()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        f = solv.xfopen(str(tmp), "w")
        if not f:
            return
        ok = srepo.write(f)
        f.close()
        if ok:
            os.replace(tmp, path)
    except OSError:
        pass  # not kept: parsed again next time
    finally:
        tmp.unlink(missing_ok=True)


def split_evr(evr: str) -> tuple[int, str, str]:
    epoch, _, rest = evr.rpartition(":")
    version, _, release = rest.rpartition("-")
    return int(epoch or 0), version, release


class Solver:
    """A libsolv pool over fetched repositories."""

    def __init__(self, arch: str, solv_cache: Path | None = None) -> None:
        self.pool = solv.Pool()
        self.pool.setarch(arch)
        self.arch = arch
        self.solv_cache = solv_cache
        self.repos: dict[str, Repo] = {}
        self._solv_repos: dict[str, solv.Repo] = {}
        self.installed: solv.Repo | None = None

    # -- loading ----------------------------------------------------------------
    def add_repo(self, repo: Repo) -> None:
        srepo = self.pool.add_repo(repo.id)
        srepo.appdata = repo
        cached = solv_cache_path(self.solv_cache, repo)
        if cached is None or not _load_solv(srepo, cached):
            self._load(srepo, repo.files["primary"], 0)
            if cached is not None:
                _write_solv(srepo, cached)
        self.repos[repo.id] = repo
        self._solv_repos[repo.id] = srepo

    def _load(self, srepo: solv.Repo, path: Path, flags: int) -> None:
        f = solv.xfopen(str(path))
        if not f or not srepo.add_rpmmd(f, None, flags):
            raise ResolveError(
                f"cannot read {path.name} of repository {srepo.name}: "
                f"{self.pool.errstr}; the mirror may be serving a broken file"
            )
        f.close()

    def digests(self, repo_id: str) -> dict[str, Digest]:
        """NEVRA -> digest of every package in a loaded repository (for drift checks)."""
        out = {}
        for s in self._solv_repos[repo_id].solvables_iter():
            chk = s.lookup_checksum(solv.SOLVABLE_CHECKSUM)
            if chk is not None:
                epoch, version, release = split_evr(s.evr)
                key = nevra_text(s.name, epoch, version, release, s.arch)
                out[key] = checked_digest(chk.typestr(), chk.hex(), f"{repo_id}: {s.name}")
        return out

    def unresolved_file_deps(self) -> set[str]:
        """File requirements (``/usr/sbin/groupadd``) that primary.xml alone cannot satisfy."""
        self._prepare()
        missing = set()
        for s in self.pool.solvables_iter():
            for dep in s.lookup_deparray(solv.SOLVABLE_REQUIRES, 0):
                text = str(dep)
                if text.startswith("/") and not self.pool.whatprovides(dep.id):
                    missing.add(text)
        return missing

    def extend_filelists(self, repo: Repo) -> None:
        self._load(
            self._solv_repos[repo.id], repo.files["filelists"], solv.Repo.REPO_EXTEND_SOLVABLES
        )

    def _prepare(self) -> None:
        self.pool.addfileprovides()
        self.pool.createwhatprovides()

    # -- queries ----------------------------------------------------------------
    def versions(self, name: str, repo_id: str | None = None) -> list[str]:
        """Distinct versions of ``name`` available, newest first (rpm ordering)."""
        self._prepare()
        best: dict[str, solv.XSolvable] = {}
        for s in self._available(name, repo_id):
            if s.arch not in (self.arch, "noarch"):
                continue
            key = split_evr(s.evr)[1]
            cur = best.get(key)
            if cur is None or s.evrcmp(cur) > 0:
                best[key] = s
        ordered = sorted(best.values(), key=_EvrKey, reverse=True)
        return [split_evr(s.evr)[1] for s in ordered]

    def _available(self, name: str, repo_id: str | None = None) -> Iterable[solv.XSolvable]:
        sel = self.pool.select(name, solv.Selection.SELECTION_NAME)
        for s in sel.solvables():
            if s.repo != self.installed and (repo_id is None or s.repo.name == repo_id):
                yield s

    # -- baseline -----------------------------------------------------------------
    def install_baseline(self, names: Sequence[str], repo_id: str) -> list[str]:
        """Make the packages a fresh install of ``names`` (from ``repo_id`` only) the system.

        Returns the baseline NEVRAs. The chosen solvables move into a shadow
        repo that becomes ``pool.installed``, exactly as if rpmdb held them.
        """
        self._prepare()
        os_repo = self._solv_repos[repo_id]
        self.pool.set_considered_list([s.id for s in os_repo.solvables_iter()])
        jobs = []
        for name in names:
            sel = self.pool.select(name, solv.Selection.SELECTION_NAME)
            if not sel.isempty():
                jobs += sel.jobs(solv.Job.SOLVER_INSTALL | solv.Job.SOLVER_WEAK)
        solver = self._solver()
        problems = solver.solve(jobs)
        if problems:
            raise ResolveError(
                "the baseline (@core of the os repo) does not resolve: "
                + _describe(problems)
                + "; the --os-mirror repo looks broken"
            )
        chosen = list(solver.transaction().newsolvables())
        self.pool.set_considered_list([s.id for s in self.pool.solvables_iter()])
        shadow = os_repo.createshadow("@System")
        shadow.moveshadow([s.id for s in chosen])
        self.pool.installed = shadow
        self.installed = shadow
        self._prepare()
        return sorted(s.str() for s in chosen)

    # -- the question -----------------------------------------------------------
    def solve(
        self, requested: Sequence[str], docker_version: str, docker_repo: str
    ) -> list[Package]:
        """Packages ``yum install requested`` adds, with the docker family pinned."""
        self._prepare()
        pinned_out = []
        for name in DOCKER_FAMILY:
            for s in self._available(name, docker_repo):
                if split_evr(s.evr)[1] != docker_version:
                    pinned_out.append(s.id)
        if pinned_out:
            keep = set(pinned_out)
            self.pool.set_considered_list(
                [s.id for s in self.pool.solvables_iter() if s.id not in keep]
            )
        jobs = []
        for name in requested:
            sel = self.pool.select(
                name, solv.Selection.SELECTION_NAME | solv.Selection.SELECTION_DOTARCH
            )
            if sel.isempty():
                raise ResolveError(_not_found(name, self.repos))
            if pinned_out:  # ask only for what the pin leaves, so problems name only that
                chosen = [s.id for s in sel.solvables() if s.id not in keep]
                if chosen and len(chosen) != len(sel.solvables()):
                    jobs.append(
                        self.pool.Job(
                            solv.Job.SOLVER_INSTALL | solv.Job.SOLVER_SOLVABLE_ONE_OF,
                            self.pool.towhatprovides(chosen),
                        )
                    )
                    continue
            jobs += sel.jobs(solv.Job.SOLVER_INSTALL)
        solver = self._solver()
        problems = solver.solve(jobs)
        if problems:
            raise ResolveError(
                "cannot install "
                + ", ".join(requested)
                + ": "
                + _describe(problems)
                + "; check that --os-mirror serves CentOS 7.9 os/extras/updates"
            )
        wanted = set(requested)
        return sorted(
            (self._package(s, s.name in wanted) for s in solver.transaction().newsolvables()),
            key=lambda p: (p.name, p.filename),
        )

    def _solver(self) -> solv.Solver:
        solver = self.pool.Solver()
        solver.set_flag(solv.Solver.SOLVER_FLAG_IGNORE_RECOMMENDED, 1)
        return solver

    def _package(self, s: solv.XSolvable, requested: bool) -> Package:
        repo: Repo = s.repo.appdata
        href, _ = s.lookup_location()
        chk = s.lookup_checksum(solv.SOLVABLE_CHECKSUM)
        if not href or chk is None:
            raise ResolveError(
                f"{s.str()} in {repo.id} has no location or checksum in "
                "primary.xml; the mirror's metadata is broken"
            )
        source = f"{repo.id} ({repo.baseurl})"
        check_href(href, source, rpm=True)
        epoch, version, release = split_evr(s.evr)
        check_nevra(s.name, version, release, s.arch, source)
        digest = checked_digest(chk.typestr(), chk.hex(), f"{source}: {s.name}")
        return Package(
            name=s.name,
            epoch=epoch,
            version=version,
            release=release,
            arch=s.arch,
            repo_id=repo.id,
            urls=repo.urls(href),
            href=href,
            digest=digest,
            size=s.lookup_num(solv.SOLVABLE_DOWNLOADSIZE),
            requested=requested,
        )


class _EvrKey:
    """Sort key comparing solvables by EVR the way rpm does."""

    def __init__(self, s: solv.XSolvable) -> None:
        self.s = s

    def __lt__(self, other: _EvrKey) -> bool:
        return bool(self.s.evrcmp(other.s) < 0)


def _describe(problems: Sequence[solv.Problem]) -> str:
    lines: list[str] = []
    for problem in problems:
        for rule in problem.findallproblemrules():
            for info in rule.allinfos():
                text = info.problemstr()
                if text not in lines and not text.endswith(" is disabled"):
                    lines.append(text)
    return "; ".join(lines[:4]) + (f" (and {len(lines) - 4} more)" if len(lines) > 4 else "")


def _not_found(name: str, repos: dict[str, Repo]) -> str:
    return (
        f"package {name!r} is not in any repository read "
        f"({', '.join(repos)}); check the name with `airdock versions` "
        "or drop it from --package"
    )


def nearest_versions(wanted: str, available: Sequence[str], count: int = 5) -> list[str]:
    """The available versions closest to ``wanted``: longest shared dotted prefix first."""

    def shared(v: str) -> int:
        n = 0
        for a, b in zip(wanted.split("."), v.split(".")):
            if a != b:
                break
            n += 1
        return n

    ranked = sorted(available, key=lambda v: -shared(v))  # stable: newest first within a rank
    return ranked[:count]


def check_version(wanted: str | None, available: Sequence[str]) -> str:
    if not available:
        raise ResolveError(
            "the docker-ce repository lists no docker-ce package; "
            "check --mirror, --arch and --channel"
        )
    if wanted is None:
        return available[0]
    if wanted not in available:
        raise UsageError(
            f"docker-ce {wanted} is not on this mirror; nearest available: "
            f"{', '.join(nearest_versions(wanted, available))} (see `airdock versions`)"
        )
    return wanted
