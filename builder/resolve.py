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

The pool and solver are set up as libdnf sets them up (dnf is the oracle the
tests compare with), and each requested name is turned into the job yum/dnf
make of it: an obsoleted name installs its obsoleter, ``name.arch`` installs that
architecture beside the other (multilib), a name no package carries installs the
best provider of it, and a NEVRA found in two repositories comes from the cheaper
one. docs/el7-facts.md#how-yum-answers gives each rule with its source.
"""

from __future__ import annotations

import importlib.metadata
import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import solv

from .baseline import HostPackage
from .download import Digest
from .errors import ResolveError, UsageError
from .names import check_href, check_nevra, checked_digest, nevra_text
from .repodata import Repo

try:
    _SOLV_VERSION = importlib.metadata.version("solv")
except importlib.metadata.PackageNotFoundError:  # a distribution's python3-solv
    _SOLV_VERSION = "system"


DOCKER_FAMILY = ("docker-ce", "docker-ce-cli", "docker-ce-rootless-extras")
# yum.conf(5) ``cost``: the default of every repository. A NEVRA in two repositories
# comes from the one with the lower cost (libdnf: subpriority = -cost).
DEFAULT_COST = 1000


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
        # As libdnf's pool: a package of another arch (glibc.i686 beside glibc.x86_64) is
        # not implicitly obsoleted by its same-name twin, and excluded packages still show
        # in whatprovides (so they are named, not silently skipped).
        self.pool.set_flag(solv.Pool.POOL_FLAG_IMPLICITOBSOLETEUSESCOLORS, 1)
        self.pool.set_flag(solv.Pool.POOL_FLAG_WHATPROVIDESWITHDISABLED, 1)
        self.arch = arch
        self.solv_cache = solv_cache
        self.repos: dict[str, Repo] = {}
        self._solv_repos: dict[str, solv.Repo] = {}
        self.installed: solv.Repo | None = None
        self.notes: list[str] = []  # what yum would print about the last solve
        self._touched: set[int] = set()  # solvables the last solve decided or considered
        self._blocked: dict[int, str] | None = None
        self._obsoletes_index: dict[str, list[tuple[int, solv.Dep]]] | None = None
        self._baseline_touched: set[int] = set()
        self._unlisted_paths: list[str] = []  # requested paths primary.xml does not list

    # -- loading ----------------------------------------------------------------
    def add_repo(self, repo: Repo, cost: int = DEFAULT_COST) -> None:
        srepo = self.pool.add_repo(repo.id)
        srepo.appdata = repo
        srepo.subpriority = -cost  # as libdnf: equal NEVRAs come from the cheaper repo
        cached = solv_cache_path(self.solv_cache, repo)
        if cached is None or not _load_solv(srepo, cached):
            self._load(srepo, repo.files["primary"], 0)
            if cached is not None:
                _write_solv(srepo, cached)
        self.repos[repo.id] = repo
        self._solv_repos[repo.id] = srepo
        self._blocked = None
        self._obsoletes_index = None

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
        self._blocked = None

    # -- do we need filelists? ------------------------------------------------------
    def file_blocked(self) -> dict[int, str]:
        """Packages that primary.xml alone makes uninstallable, with why: each requires a
        file no package's primary lists (createrepo puts only /etc, */bin/* and
        /usr/lib/sendmail there), or requires something only such packages provide.
        Filelists could make them installable; nothing else changes between the two."""
        if self._blocked is not None:
            return self._blocked
        self._prepare()
        blocked: dict[int, str] = {}
        for s in self.pool.solvables_iter():
            for dep in s.lookup_deparray(solv.SOLVABLE_REQUIRES, 0):
                text = str(dep)
                if text.startswith("/") and not self.pool.whatprovides(dep.id):
                    blocked[s.id] = text
                    break
        frontier = list(blocked)
        while frontier:  # what requires a blocked package's provides, with no other provider
            after: list[int] = []
            for sid in frontier:
                s = self.pool.id2solvable(sid)
                for provide in s.lookup_deparray(solv.SOLVABLE_PROVIDES, 0):
                    for user in self.pool.whatmatchesdep(solv.SOLVABLE_REQUIRES, provide):
                        if user.id in blocked:
                            continue
                        for dep in user.lookup_deparray(solv.SOLVABLE_REQUIRES, 0):
                            providers = self.pool.whatprovides(dep.id)
                            if providers and all(p.id in blocked for p in providers):
                                blocked[user.id] = blocked[providers[0].id]
                                after.append(user.id)
                                break
            frontier = after
        self._blocked = blocked
        return blocked

    def filelists_needed(self) -> list[str]:
        """Why the last solve's answer could change with filelists loaded (empty: it cannot).

        With filelists a package that primary leaves uninstallable becomes a candidate; it
        changes the answer only if it is one: a candidate of a requested name, a provider
        of a requirement of a package the solve chose (or the baseline), or a package in
        the solve's problems. dnf always reads filelists; yum reads them when a file
        dependency is not in primary (docs/el7-facts.md#how-yum-answers)."""
        reasons = [f"{path} is not in primary.xml's file lists" for path in self._unlisted_paths]
        blocked = self.file_blocked()
        if not blocked:
            return reasons
        for sid in sorted(self._touched):
            s = self.pool.id2solvable(sid)
            if sid in blocked:
                reasons.append(f"{s.str()} requires {blocked[sid]}")
                continue
            for dep in s.lookup_deparray(solv.SOLVABLE_REQUIRES, 0):
                for p in self.pool.whatprovides(dep.id):
                    if p.id in blocked and p.repo != self.installed:
                        reasons.append(
                            f"{p.str()} (a provider of {dep} for {s.str()}) requires "
                            f"{blocked[p.id]}"
                        )
        return sorted(set(reasons))

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
        Each name is asked for as ``dnf group install`` asks for a group's
        packages: the name or what obsoletes it, optional (a default package that
        cannot be installed is left out).
        """
        self._prepare()
        os_repo = self._solv_repos[repo_id]
        considered = {s.id for s in os_repo.solvables_iter()}
        self.pool.set_considered_list(sorted(considered))
        jobs = []
        touched: set[int] = set()
        for name in names:
            sel = self.pool.select(name, solv.Selection.SELECTION_NAME)
            if sel.isempty():
                continue
            ids = [s.id for s in sel.solvables()]
            ids += [o for o in self._obsoleters(ids) if o in considered and o not in ids]
            touched.update(ids)
            jobs.append(self._one_of(ids, solv.Job.SOLVER_WEAK))
        solver = self._solver()
        problems = solver.solve(jobs)
        if problems:
            self._touched = touched | _problem_solvables(problems)
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
        self._baseline_touched = touched | {s.id for s in chosen}
        self._prepare()
        return sorted(s.str() for s in chosen)

    def install_host(self, host: Sequence[HostPackage]) -> list[str]:
        """Make a real host's package list (``--baseline-from``) the system; returns its NEVRAs.

        A listed package found in a repository (same name, version, release, arch; epoch too
        when known) is copied with its dependencies. One the repositories no longer carry (an
        older build on a 7.4 host) borrows the dependencies of the nearest package of that name
        and arch, with every relation naming the donor's own EVR rewritten to the host's: the
        subpackages of one source RPM pin each other that way (``libselinux-utils`` requires
        ``libselinux = V-R``), so upgrades they force are seen as yum would see them.
        """
        self._prepare()
        known: dict[tuple[str, str], list[solv.XSolvable]] = {}
        for s in self.pool.solvables_iter():
            if s.repo != self.installed:
                known.setdefault((s.name, s.arch), []).append(s)
        system = self.pool.add_repo("@System")
        added = []
        for p in host:
            same = known.get((p.name, p.arch), [])
            exact = [
                s
                for s in same
                if split_evr(s.evr)[1:] == (p.version, p.release)
                and (p.epoch is None or split_evr(s.evr)[0] == p.epoch)
            ]
            donor = exact[0] if exact else max(same, key=_EvrKey, default=None)
            # rpm -qa prints no epoch: the same build's, else its name's (epochs outlive
            # builds: tar is 2: in every el7 build), else 0
            epoch = p.epoch if p.epoch is not None else split_evr(donor.evr)[0] if donor else 0
            evr = f"{epoch}:{p.version}-{p.release}" if epoch else f"{p.version}-{p.release}"
            s = system.add_solvable()
            s.name, s.evr, s.arch = p.name, evr, p.arch
            s.add_deparray(
                solv.SOLVABLE_PROVIDES, self.pool.Dep(p.name).Rel(solv.REL_EQ, self.pool.Dep(evr))
            )
            if donor is not None:
                for key in (
                    solv.SOLVABLE_PROVIDES,
                    solv.SOLVABLE_REQUIRES,
                    solv.SOLVABLE_CONFLICTS,
                    solv.SOLVABLE_OBSOLETES,
                ):
                    for dep in donor.lookup_deparray(key, 0):  # 0: past pre/file markers too
                        if dep.id not in _MARKERS:
                            s.add_deparray(key, self._rebased(dep, donor.evr, evr))
            added.append(s)
        system.internalize()
        self.pool.installed = system
        self.installed = system
        self._prepare()
        return sorted(s.str() for s in added)

    def _rebased(self, dep: solv.Dep, donor_evr: str, evr: str) -> solv.Dep:
        """``dep`` with the donor's own EVR (with or without its epoch) replaced by ``evr``."""
        parts = str(dep).split(" ")
        if donor_evr == evr or len(parts) != 3 or parts[1] not in _RELATIONS:
            return dep
        bare = donor_evr.split(":", 1)[-1]
        if parts[2] == donor_evr:
            target = evr
        elif parts[2] == bare:
            target = evr.split(":", 1)[-1]
        else:
            return dep
        return self.pool.Dep(parts[0]).Rel(_RELATIONS[parts[1]], self.pool.Dep(target))

    # -- the question -----------------------------------------------------------
    def solve(
        self, requested: Sequence[str], docker_version: str | None, docker_repo: str
    ) -> list[Package]:
        """Packages ``yum install requested`` adds, with the docker family pinned
        (``docker_version`` None: no pin). :attr:`notes` then holds what yum would say
        about the request (an obsoleted name replaced, a name found only as a provide)."""
        self._prepare()
        keep: set[int] = set()
        if docker_version is not None:
            for name in DOCKER_FAMILY:
                for s in self._available(name, docker_repo):
                    if split_evr(s.evr)[1] != docker_version:
                        keep.add(s.id)
        self.pool.set_considered_list(
            [s.id for s in self.pool.solvables_iter() if s.id not in keep]
        )
        self.notes = []
        self._touched = set(self._baseline_touched)
        self._unlisted_paths = []
        jobs = []
        asked: list[tuple[str, list[int], bool]] = []
        for spec in requested:
            ids, by_name = self._candidates(spec)
            # ask only for what the pin leaves, so problems name only that
            ids = [i for i in ids if i not in keep] or ids
            self._touched.update(ids)
            asked.append((spec, ids, by_name))
            jobs.append(self._one_of(ids))
        solver = self._solver()
        problems = solver.solve(jobs)
        if problems:
            self._touched |= _problem_solvables(problems)
            raise ResolveError(
                "cannot install "
                + ", ".join(requested)
                + ": "
                + _describe(problems)
                + "; check that --os-mirror serves CentOS 7.9 os/extras/updates"
            )
        new = list(solver.transaction().newsolvables())
        self._touched.update(s.id for s in new)
        chosen_ids = {s.id for s in new} | (
            {s.id for s in self.installed.solvables_iter()} if self.installed else set()
        )
        requested_ids: set[int] = set()
        for spec, ids, by_name in asked:
            picked = [i for i in ids if i in chosen_ids]
            requested_ids.update(picked)
            self.notes += self._note(spec, picked, by_name)
        return sorted(
            (self._package(s, s.id in requested_ids) for s in new),
            key=lambda p: (p.name, p.filename),
        )

    def _candidates(self, spec: str) -> tuple[list[int], bool]:
        """Solvables ``yum install spec`` chooses among, and whether spec named them.

        As dnf's ``Base.install`` (multilib_policy=best, obsoletes=True): a name, or
        ``name.arch``, plus every package that obsoletes one of them; failing that the
        packages that provide ``spec``. Installed packages count (nothing to do)."""
        for flags in (
            solv.Selection.SELECTION_NAME,
            solv.Selection.SELECTION_NAME | solv.Selection.SELECTION_DOTARCH,
        ):
            sel = self.pool.select(spec, flags)
            if not sel.isempty():
                ids = [s.id for s in sel.solvables()]
                return ids + [o for o in self._obsoleters(ids) if o not in ids], True
        sel = self.pool.select(spec, solv.Selection.SELECTION_PROVIDES)
        if spec.startswith("/"):
            sel.add(self.pool.select(spec, solv.Selection.SELECTION_FILELIST))
        if sel.isempty():
            if spec.startswith("/"):
                self._unlisted_paths.append(spec)
            raise ResolveError(_not_found(spec, self.repos))
        return [s.id for s in sel.solvables()], False

    def _obsoleters(self, ids: Iterable[int]) -> list[int]:
        """Packages whose Obsoletes match one of ``ids`` by name and version (not by
        provides: libdnf's ``filter(obsoletes=...)`` and yum's obsoletes=1)."""
        if self._obsoletes_index is None:
            index: dict[str, list[tuple[int, solv.Dep]]] = {}
            for s in self.pool.solvables_iter():
                if s.repo != self.installed:
                    for dep in s.lookup_deparray(solv.SOLVABLE_OBSOLETES, 0):
                        index.setdefault(str(dep).split(" ", 1)[0], []).append((s.id, dep))
            self._obsoletes_index = index
        found: list[int] = []
        for sid in ids:
            target = self.pool.id2solvable(sid)
            for obsoleter, dep in self._obsoletes_index.get(target.name, ()):
                if obsoleter not in found and target.matchesdep(solv.SOLVABLE_NAME, dep):
                    found.append(obsoleter)
        return found

    def _one_of(self, ids: Sequence[int], extra: int = 0) -> solv.Job:
        """The job libdnf makes of a selector: install one of ``ids``; SETARCH and SETEVR
        (as libdnf's goal) keep libsolv from adding the best-arch twin of an i686 pick."""
        return self.pool.Job(
            solv.Job.SOLVER_INSTALL
            | solv.Job.SOLVER_SOLVABLE_ONE_OF
            | solv.Job.SOLVER_SETARCH
            | solv.Job.SOLVER_SETEVR
            | extra,
            self.pool.towhatprovides(list(ids)),
        )

    def _note(self, spec: str, picked: Sequence[int], by_name: bool) -> list[str]:
        """yum's own line when the package installed is not the one named."""
        notes = []
        for sid in picked:
            s = self.pool.id2solvable(sid)
            if s.repo == self.installed or s.name == spec.rsplit(".", 1)[0] or s.name == spec:
                continue
            if by_name:
                notes.append(
                    f"Package {spec} is obsoleted by {s.name}, trying to install {s.str()} instead"
                )
            else:
                notes.append(
                    f"{spec} is not a package name; installing {s.str()}, which provides it"
                )
        return notes

    def _solver(self) -> solv.Solver:
        """A solver flagged as libdnf flags its goal, plus no weak dependencies (el7)."""
        solver = self.pool.Solver()
        for flag in (
            solv.Solver.SOLVER_FLAG_ALLOW_VENDORCHANGE,
            solv.Solver.SOLVER_FLAG_KEEP_ORPHANS,
            solv.Solver.SOLVER_FLAG_BEST_OBEY_POLICY,
            solv.Solver.SOLVER_FLAG_YUM_OBSOLETES,
            solv.Solver.SOLVER_FLAG_IGNORE_RECOMMENDED,
        ):
            solver.set_flag(flag, 1)
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


_MARKERS = (solv.SOLVABLE_PREREQMARKER, solv.SOLVABLE_FILEMARKER)
_RELATIONS = {
    "=": solv.REL_EQ,
    ">=": solv.REL_GT | solv.REL_EQ,
    "<=": solv.REL_LT | solv.REL_EQ,
    ">": solv.REL_GT,
    "<": solv.REL_LT,
}


class _EvrKey:
    """Sort key comparing solvables by EVR the way rpm does."""

    def __init__(self, s: solv.XSolvable) -> None:
        self.s = s

    def __lt__(self, other: _EvrKey) -> bool:
        return bool(self.s.evrcmp(other.s) < 0)


def _problem_solvables(problems: Sequence[solv.Problem]) -> set[int]:
    """Ids of the packages a solve's problems name (for the filelists decision)."""
    ids = set()
    for problem in problems:
        for rule in problem.findallproblemrules():
            for info in rule.allinfos():
                for s in (info.solvable, info.othersolvable):
                    if s is not None:
                        ids.add(s.id)
    return ids


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
