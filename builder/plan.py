"""The plan of a build: which repositories, which baseline, which packages.

:func:`make_plan` reads the repositories' metadata and asks libsolv what a
CentOS 7 host needs; it downloads no RPM, so ``airdock build --dry-run`` can
print it and ``airdock release`` can compare the plans of several mirrors
before anything is fetched. :mod:`builder.bundle` then carries a plan out.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .consistency import chain_drift, raise_on_drift
from .defaults import DEFAULT_IMAGES, DEFAULT_PACKAGES
from .digests import STRONG
from .download import Downloader
from .errors import AirdockError, ResolveError, UsageError
from .mirrors import CENTOS_RELEASE, CENTOS_REPOS, MirrorChain
from .repodata import (
    Repo,
    core_group,
    fetch_records,
    fetch_records_of,
    fetch_repo,
    fetch_repos,
    group_record,
)
from .report import Reporter
from .resolve import DEFAULT_COST, Package, Solver, check_version

if TYPE_CHECKING:
    from .baseline import HostBaseline
    from .images import RegistryOptions, ResolvedImage
    from .manifest import Target
    from .signing import Signer

# yum.conf(5) cost of the docker-ce repository: above CentOS's default 1000 (repo_cost).
THIRD_PARTY_COST = 1100
CLOSURES = ("minimal", "full")


@dataclass
class BuildOptions:
    mirror: MirrorChain
    output: Path
    cache_dir: Path
    arch: str = "x86_64"
    channel: str = "stable"
    docker_version: str | None = None
    packages: Sequence[str] = DEFAULT_PACKAGES
    closure: str = "minimal"
    jobs: int = 4
    gpg_keys: Sequence[Path] = ()
    images: Sequence[str] = DEFAULT_IMAGES
    registry_options: RegistryOptions | None = None
    allow_mirror_drift: bool = False
    split_size: int | None = None
    wait: bool = True  # for another build of the same name; else fail at once (--no-wait)
    signer: Signer | None = None  # --sign-key: signs SHA256SUMS and the tarball's .sha256
    host: HostBaseline | None = None  # --baseline-from: the target's own package set

    @classmethod
    def from_cli(
        cls,
        *,
        mirror: MirrorChain,
        output: Path,
        cache_dir: Path | None,
        arch: str,
        channel: str,
        docker_version: str | None,
        packages: Sequence[str] | None,
        closure: str,
        jobs: int,
        gpg_keys: Sequence[str] | None,
        images: Sequence[str] | None,
        no_images: bool,
        registry_mirror: str | None,
        registry_user: str | None,
        allow_mirror_drift: bool,
        split_size: str | None,
        no_wait: bool,
        sign_key: str | None,
        warn: Callable[[str], None],
        baseline_from: Path | None = None,
    ) -> BuildOptions:
        """Checked options from the command line's values, each named (build and release
        share them); ``warn`` prints what is allowed but worth saying (FAT32 part sizes)."""
        from .mirrors import check_arch, check_channel
        from .signing import load_signer
        from .split import part_size

        if jobs < 1:
            raise UsageError(f"--jobs {jobs} must be at least 1")
        if closure not in CLOSURES:
            raise UsageError(f"--closure {closure!r} is not known; use minimal or full")
        host = None
        if baseline_from is not None:
            from .baseline import check_baseline_arch, load_baseline

            if closure == "full":
                raise UsageError(
                    "--closure full and --baseline-from answer different questions "
                    "(an empty host, a given host); give one of them"
                )
            host = load_baseline(baseline_from)
            check_baseline_arch(host, check_arch(arch))
        return cls(
            mirror=mirror,
            output=output,
            cache_dir=cache_dir or default_cache_dir(),
            arch=check_arch(arch),
            channel=check_channel(channel),
            docker_version=docker_version,
            packages=tuple(packages or DEFAULT_PACKAGES),
            closure=closure,
            jobs=jobs,
            gpg_keys=[existing_file(k, "--gpg-key") for k in gpg_keys or []],
            images=() if no_images else tuple(images or DEFAULT_IMAGES),
            registry_options=registry_options(registry_mirror, registry_user),
            allow_mirror_drift=allow_mirror_drift,
            split_size=part_size(split_size, "--split-size", warn) if split_size else None,
            wait=not no_wait,
            signer=load_signer(sign_key) if sign_key else None,
            host=host,
        )


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "airdock"


def existing_file(value: str, option: str) -> Path:
    path = Path(value)
    if not path.is_file():
        raise UsageError(f"{option} {value}: no such file; give the path of a public key file")
    return path


def registry_options(registry_mirror: str | None, user: str | None) -> RegistryOptions | None:
    """--registry-mirror and --registry-user (password from AIRDOCK_REGISTRY_PASSWORD)."""
    if registry_mirror is None and user is None:
        return None
    from .images import RegistryOptions

    password = os.environ.get("AIRDOCK_REGISTRY_PASSWORD")
    if user and not password:
        raise UsageError(
            "--registry-user needs the password in the environment variable "
            "AIRDOCK_REGISTRY_PASSWORD"
        )
    return RegistryOptions(registry_mirror=registry_mirror, username=user, password=password)


@dataclass
class Plan:
    name: str
    docker_version: str
    created: int
    repos: list[Repo]
    baseline: list[str]
    packages: list[Package]
    docker_repo: str
    images: list[ResolvedImage] = field(default_factory=list)
    pinned_keys: list[PinnedKey] = field(default_factory=list)
    filelists: list[str] = field(default_factory=list)  # why filelists were read; [] = not read
    notes: list[str] = field(default_factory=list)  # yum's notes (obsoleted names, provides)

    @property
    def rpm_size(self) -> int:
        return sum(p.size for p in self.packages)

    @property
    def download_size(self) -> int:
        """Every payload byte the build will fetch: RPMs, image configs and layers."""
        return self.rpm_size + sum(i.size for i in self.images)


@dataclass(frozen=True)
class PinnedKey:
    """A vendor key airdock pins but does not ship, fetched and checked while planning."""

    name: str
    fingerprint: str
    data: bytes


def tree_size(root: Path) -> int:
    """Bytes of the regular files below ``root`` (a progress bar's total)."""
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def docker_repo_id(channel: str) -> str:
    return f"docker-ce-{channel}"


def bundle_name(version: str, arch: str, mirror: MirrorChain) -> str:
    return f"airdock-docker-ce-{version}-el7-{arch}-{mirror.name}"


def source_date_epoch(default: int) -> int:
    value = os.environ.get("SOURCE_DATE_EPOCH")
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise UsageError(
            f"SOURCE_DATE_EPOCH={value!r} is not a whole number of seconds; "
            "unset it or give a Unix timestamp"
        ) from None


# -- metadata ----------------------------------------------------------------------------
def fetch_docker_repo(opts: BuildOptions, downloader: Downloader, workdir: Path) -> Repo:
    repo_id = docker_repo_id(opts.channel)
    return fetch_repo(
        downloader, repo_id, opts.mirror.docker_repo_urls(opts.arch, opts.channel), workdir
    )


def metadata_types(
    opts: BuildOptions, repo: Repo, sources: Sequence[tuple[str, Sequence[str]]]
) -> tuple[str, ...]:
    """What a plan reads of ``repo`` in the first round: primary, and the os repo's comps
    when the @core baseline will be used (a minimal closure with no --baseline-from host),
    read then with the primaries instead of one round trip later."""
    kind = group_record(repo) if opts.closure == "minimal" and opts.host is None else None
    return ("primary", kind) if kind and repo.id == sources[1][0] else ("primary",)


def list_versions(opts: BuildOptions, downloader: Downloader, workdir: Path) -> list[str]:
    """docker-ce versions the mirror really has, newest first."""
    repo = fetch_docker_repo(opts, downloader, workdir)
    solver = Solver(opts.arch)
    solver.add_repo(repo)
    return solver.versions("docker-ce", repo.id)


def make_plan(
    opts: BuildOptions, downloader: Downloader, workdir: Path, reporter: Reporter | None = None
) -> Plan:
    reporter = reporter or Reporter()
    if opts.closure not in CLOSURES:
        raise UsageError(f"--closure {opts.closure!r} is not known; use minimal or full")
    first = opts.mirror.first
    reporter.step(f"reading metadata from {first.docker_ce} and {first.os}")
    sources = [
        (docker_repo_id(opts.channel), opts.mirror.docker_repo_urls(opts.arch, opts.channel))
    ]
    sources += [(f"centos-{n}", opts.mirror.centos_repo_urls(n, opts.arch)) for n in CENTOS_REPOS]
    repos = fetch_repos(downloader, sources, workdir, lambda r: metadata_types(opts, r, sources))

    version, baseline, packages, solver, filelists = resolve_plan(
        opts, repos, downloader, workdir, reporter
    )
    for note in solver.notes:
        reporter.step(note)
    for repo in repos:
        stated = {p.digest.algo for p in packages if p.repo_id == repo.id}
        stated |= {r.digest.algo for r in repo.records.values()}
        weak = sorted(stated - set(STRONG))
        if weak:
            reporter.step(
                f"warning: {repo.id} ({repo.baseurl}) states only {'/'.join(weak)} checksums: "
                "downloads are checked with them but not cached; prefer a mirror with sha256"
            )
    if any(len(r.baseurls) > 1 for r in repos):
        reporter.step("checking that the mirrors of the chain agree on every package")
        drift = chain_drift(repos, packages, downloader, workdir / "chain", opts.arch)
        raise_on_drift(drift, opts.allow_mirror_drift, reporter.step)
    created = source_date_epoch(max(r.timestamp for r in repos))
    pinned = plan_pinned_keys(opts, downloader, workdir / "keys", reporter)
    return Plan(
        bundle_name(version, opts.arch, opts.mirror),
        version,
        created,
        repos,
        baseline,
        packages,
        repos[0].id,
        images=plan_images(opts, downloader, reporter),
        pinned_keys=pinned,
        filelists=filelists,
        notes=list(solver.notes),
    )


def repo_cost(repo_id: str) -> int:
    """yum's ``cost`` airdock gives a repository: CentOS's own repositories are cheaper
    than the docker-ce one, so a NEVRA both list (a docker repo made with
    ``yumdownloader --resolve`` carries CentOS packages) is CentOS's, as yum reports
    it when the third-party repository is the costlier one (docs/el7-facts.md#how-yum-answers)."""
    return DEFAULT_COST if repo_id.startswith("centos-") else THIRD_PARTY_COST


def resolve_plan(
    opts: BuildOptions,
    repos: Sequence[Repo],
    downloader: Downloader,
    workdir: Path,
    reporter: Reporter,
) -> tuple[str, list[str], list[Package], Solver, list[str]]:
    """Version, baseline and packages, solved from primary.xml alone, and solved again with
    the repositories' filelists only when the answer depends on them (:func:`need_filelists`).
    The last item says why filelists were read (empty: they were not)."""
    solver, answer = _attempt(opts, repos, downloader, workdir, reporter)
    reasons = need_filelists(solver, repos)
    if reasons:
        more = f" (and {len(reasons) - 1} more)" if len(reasons) > 1 else ""
        reporter.step(f"reading filelists: {reasons[0]}{more}")
        fetch_records_of(downloader, [(repo, ("filelists",)) for repo in repos], workdir)
        solver, answer = _attempt(opts, repos, downloader, workdir, reporter, filelists=True)
    if isinstance(answer, ResolveError):
        raise answer
    version, baseline, packages = answer
    return version, baseline, packages, solver, reasons


def _attempt(
    opts: BuildOptions,
    repos: Sequence[Repo],
    downloader: Downloader,
    workdir: Path,
    reporter: Reporter,
    filelists: bool = False,
) -> tuple[Solver, tuple[str, list[str], list[Package]] | ResolveError]:
    """One solve over a fresh pool (with the fetched filelists when asked): the solver,
    for the filelists decision, and its answer or why there is none."""
    # parsed primaries are kept beside the downloads, unless --verify-cache trusts nothing kept
    cache = downloader.cache
    solver = Solver(opts.arch, cache.root / "solv" if cache and not cache.verify else None)
    for repo in repos:
        solver.add_repo(repo, cost=repo_cost(repo.id))
        if filelists and "filelists" in repo.files:
            solver.extend_filelists(repo)
    try:
        return solver, _solve(opts, solver, repos, downloader, workdir, reporter)
    except ResolveError as exc:
        return solver, exc


def need_filelists(solver: Solver, repos: Sequence[Repo]) -> list[str]:
    """Why the repositories' filelists must be read for this answer (empty: they need not).

    The decision: a file dependency that primary.xml does not carry touches the last
    solve (a candidate, a provider of a chosen package's requirement, or a package in
    its problems), and some repository offers filelists to carry it."""
    if not any("filelists" in repo.records for repo in repos):
        return []
    return solver.filelists_needed()


def _solve(
    opts: BuildOptions,
    solver: Solver,
    repos: Sequence[Repo],
    downloader: Downloader,
    workdir: Path,
    reporter: Reporter,
) -> tuple[str, list[str], list[Package]]:
    docker_repo, os_repo = repos[0].id, repos[1]
    version = check_version(opts.docker_version, solver.versions("docker-ce", docker_repo))
    baseline: list[str] = []
    if opts.host is not None:
        baseline = solver.install_host(opts.host.packages)
        described = opts.host.describe()
    elif opts.closure == "minimal":
        kind = group_record(os_repo)
        if kind is None:
            raise AirdockError(
                f"the os repository {os_repo.baseurl} has no comps group file, "
                "so the @core baseline is unknown; use --closure full"
            )
        fetch_records(downloader, os_repo, workdir, (kind,))
        baseline = solver.install_baseline(core_group(os_repo.files[kind]), os_repo.id)
        described = f"CentOS {CENTOS_RELEASE} @core"
    else:
        described = "empty system"
    reporter.step(f"resolving {', '.join(opts.packages)} for docker-ce {version} ({described})")
    return version, baseline, solver.solve(opts.packages, version, docker_repo)


def plan_images(
    opts: BuildOptions, downloader: Downloader, reporter: Reporter
) -> list[ResolvedImage]:
    """Every image resolved to its platform manifest (the registry reached, each reference
    checked) while planning: a typo or an unreachable registry fails before any download."""
    if not opts.images:
        return []
    from .images import RegistryOptions, resolve_images

    reporter.step(f"resolving {len(opts.images)} image(s) for {opts.arch}")
    options = opts.registry_options or RegistryOptions()
    return resolve_images(list(opts.images), opts.arch, downloader, options)


def plan_pinned_keys(
    opts: BuildOptions, downloader: Downloader, workdir: Path, reporter: Reporter
) -> list[PinnedKey]:
    """Vendor keys pinned by fingerprint but not shipped (CentOS 7 aarch64), from the vault,
    checked now; none when the user already gave the key with --gpg-key."""
    from .rpmverify import FETCHED_KEYS, Keyring

    if opts.arch not in FETCHED_KEYS:
        return []
    name, fingerprint = FETCHED_KEYS[opts.arch]
    if any(k.fingerprint == fingerprint for k in Keyring.load(opts.gpg_keys).keys):
        return []
    urls = [
        url
        for m in opts.mirror.mirrors
        for url in (
            m.centos_repo_url("os", opts.arch) + name,
            f"{m.os}/altarch/{name}",
            f"{m.os}/{name}",
        )
    ]
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        data, url = downloader.get_bytes(urls, name, workdir)
    except AirdockError:
        reporter.step(f"warning: {name} not found on the mirror; pass it with --gpg-key")
        return []
    path = workdir / f"{name}.asc"
    path.write_bytes(data)
    if Keyring([]).add_pinned(path, fingerprint) is None:
        reporter.step(f"warning: {url} is not the CentOS key {fingerprint}; ignored")
        return []
    return [PinnedKey(name, fingerprint, data)]


def manifest_target(opts: BuildOptions, releasever: str, centos_release: str) -> Target:
    """manifest.json's ``target``: the host the bundle answers for (@core, empty, or a real
    host's inventory, recorded by its sha256 and host name)."""
    from .manifest import HostInventory, Target

    if opts.host is not None:
        return Target(
            os="centos",
            releasever=releasever,
            arch=opts.arch,
            baseline=opts.host.describe(),
            closure="host",
            inventory=HostInventory(
                sha256=opts.host.sha256,
                hostname=opts.host.hostname,
                packages=len(opts.host.packages),
            ),
        )
    return Target(
        os="centos",
        releasever=releasever,
        arch=opts.arch,
        baseline=f"centos-{centos_release} @core" if opts.closure == "minimal" else "none",
        closure=opts.closure,
    )
