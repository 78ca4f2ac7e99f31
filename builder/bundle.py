"""Carrying out a plan: fetch, verify, write, publish.

Data flows one way: :mod:`builder.plan` decides what the bundle holds without
downloading any RPM; :func:`build` then downloads and verifies what the plan names, writes
the bundle into a temporary folder beside the output and renames it (and the
tarball) into place only when everything is complete and checksummed: an
interrupted or failed build never leaves anything under a final name.

Builds may run at once (:mod:`builder.locks`): a build holds a lock on its bundle name in
the output from planning until publishing, so two builds of one name take turns and the
folder, tarball and checksums published always come from one build; each work folder is
held by a lock beside it, so the folder of a build that was killed (even with SIGKILL) is
recognised and removed when the next build starts.

Every timestamp in the bundle is the bundle's ``created`` time: SOURCE_DATE_EPOCH
when set, else the newest metadata timestamp of the repositories read (the
mirror state the bundle reflects). Same mirror state in, same bytes out.
"""

from __future__ import annotations

import dataclasses
import functools
import glob
import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .download import Download, Downloader, file_digest, parallel, results
from .errors import AirdockError
from .locks import FileLock, Notify, remove_if_free
from .manifest import (
    BundleManifest,
    FileRef,
    ManifestImage,
    ManifestKey,
    ManifestPackage,
    Publisher,
)
from .mirrors import CENTOS_RELEASE, RELEASEVER
from .plan import BuildOptions, Plan, Reporter, make_plan, manifest_target, tree_size
from .repowriter import PackageXml, XmlStore, package_xml, write_repodata
from .resolve import Package
from .rpmverify import VENDOR_FINGERPRINTS, Keyring, verify_rpm
from .sbom import write_sbom
from .signing import Signer

if TYPE_CHECKING:
    from .images import ResolvedImage
from .split import PartWriter, finish_split
from .tarutil import TARBALL_SUFFIX, add_tree, open_tar, write_tar

SIGNATURE = "SHA256SUMS.asc"  # the publisher's detached signature over SHA256SUMS
PUBLISHER_KEY = "publisher.asc"  # in keys/: the publisher's public key
WORK_PREFIX = ".airdock-build-"
LOCK_SUFFIX = ".lock"
VERIFY_WORKERS = 2  # RPM checks at once: hashing is CPU-bound, downloads need little
INSTALLER_DIR = Path(__file__).resolve().parent / "installer"
INSTALLER_FILES = ("install.sh", "airdock_install.py", "README.txt")
# The fleet playbook (installer/ansible/ -> BUNDLE/ansible/): see its README.txt.
ANSIBLE_FILES = ("airdock.yml", "report.yml", "inventory.example.ini", "README.txt")
# Installed CentOS packages that must go in the same transaction (docs/el7-facts.md#old-packages).
OLD_DOCKER_PACKAGES = (
    "docker",
    "docker-client",
    "docker-client-latest",
    "docker-common",
    "docker-latest",
    "docker-latest-logrotate",
    "docker-logrotate",
    "docker-engine",
)


@dataclass
class BuildResult:
    folder: Path
    tarball: Path  # absent on disk when the tarball was split into parts
    tarball_sha256: str
    manifest: BundleManifest
    parts: list[Path] = field(default_factory=list)

    @property
    def sha256sums_sha256(self) -> str:
        """What an operator compares for an unsigned bundle (and what SHA256SUMS.asc signs)."""
        return file_digest(self.folder / "SHA256SUMS")["sha256"]


# -- the build ---------------------------------------------------------------------------
def build(
    opts: BuildOptions,
    downloader: Downloader,
    reporter: Reporter | None = None,
    plan: Plan | None = None,
) -> BuildResult:
    reporter = reporter or Reporter()
    keyring = Keyring.load(opts.gpg_keys)
    opts.output.mkdir(parents=True, exist_ok=True)
    stale = remove_stale_work(opts.output)
    if stale:
        reporter.step(
            f"removed {len(stale)} work folder(s) of interrupted builds: "
            + ", ".join(p.name for p in stale)
        )
    with ExitStack() as held:
        workdir = held.enter_context(work_folder(opts.output))
        plan = plan or make_plan(opts, downloader, workdir / "metadata", reporter)
        held.enter_context(holding_name(opts.output, plan.name, opts.wait, reporter.step))
        staging = workdir / plan.name
        add_pinned_keys(plan, keyring, workdir / "keys")
        rpms = fetch_rpms(plan, downloader, keyring, staging / "rpms", opts.jobs, reporter)
        reporter.step("writing repodata with createrepo_c")
        made = {r.fetched.package.filename: r.xml for r in rpms}
        write_repodata(staging / "rpms", [p.filename for p in plan.packages], plan.created, made)
        key_entries = copy_keys(keyring, {r.signer for r in rpms}, staging / "keys")
        images = pull_images(opts, plan.images, staging, workdir, reporter)
        installer = copy_installer(staging)
        manifest = make_manifest(opts, plan, rpms, key_entries, images, installer)
        if opts.signer is not None:
            manifest.publisher = write_publisher_key(opts.signer, staging / "keys")
        manifest.sbom = FileRef(**write_sbom(staging, manifest.to_dict()))  # SHA256SUMS covers it
        write_json(staging / "manifest.json", manifest.to_dict())
        write_sha256sums(staging, known_digests(rpms, images))
        if opts.signer is not None:
            reporter.step(f"signing SHA256SUMS with {opts.signer.fingerprint}")
            opts.signer.sign_file(staging / "SHA256SUMS")
        reporter.step("writing the reproducible tarball")
        reporter.bytes_started("tarball", tree_size(staging), watch=workdir)
        try:
            digest, artifacts, parts = write_tarball(staging, workdir, plan, opts.split_size)
        finally:
            reporter.bytes_finished()
        if opts.signer is not None:
            artifacts.append(opts.signer.sign_file(artifacts[-1]))  # the tarball's .sha256
        for path in staging.rglob("*"):
            os.utime(path, (plan.created, plan.created), follow_symlinks=False)
        if downloader.cache is not None:  # the RPMs are hard links to cache entries
            for rpm in rpms:
                downloader.cache.touched(rpm.fetched.package.digest, rpm.fetched.sha256)
        folder = publish(workdir, plan.name, opts.output, artifacts)
        tarball = opts.output / f"{plan.name}{TARBALL_SUFFIX}"
        return BuildResult(folder, tarball, digest, manifest, [opts.output / p.name for p in parts])


# -- concurrent and crashed builds ------------------------------------------------------------
def name_lock(output: Path, name: str) -> FileLock:
    """The lock a build holds on its bundle name in ``output`` until it has published."""
    return FileLock(
        output / f".{name}{LOCK_SUFFIX}",
        holder=f"another airdock build writing {name} in {output}",
        advice="let it finish, or leave out --no-wait to wait for it",
    )


@contextmanager
def holding_name(output: Path, name: str, wait: bool, on_wait: Notify) -> Iterator[None]:
    """Hold the name lock; wait for another build of ``name`` (saying so) or, without
    ``wait``, raise LockedError at once."""
    lock = name_lock(output, name)
    lock.acquire(wait, on_wait)
    try:
        yield
    finally:
        lock.release()


def _rmtree(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


def work_lock_path(folder: Path) -> Path:
    return folder.with_name(folder.name + LOCK_SUFFIX)


@contextmanager
def work_folder(output: Path) -> Iterator[Path]:
    """A new work folder in ``output``, held by a lock file beside it while the build runs.

    The lock is taken before the folder is made, so :func:`remove_stale_work` never sees a
    live build's folder unlocked; the folder goes when the build ends, however it ends, or
    (after SIGKILL) when the next build starts.
    """
    while True:
        fd, name = tempfile.mkstemp(prefix=WORK_PREFIX, suffix=LOCK_SUFFIX, dir=output)
        os.close(fd)
        lock = FileLock(Path(name))
        lock.acquire()  # a fresh name: at most a sweeping build holds it, for a moment
        folder = Path(name[: -len(LOCK_SUFFIX)])
        try:
            folder.mkdir()
            break
        except FileExistsError:  # an old folder without its lock file has this name
            lock.release()
    try:
        yield folder
    finally:
        try:
            shutil.rmtree(folder, ignore_errors=True)
        finally:
            lock.release()


def remove_stale_work(output: Path) -> list[Path]:
    """Remove what killed builds left in ``output``; return the work folders removed.

    A work folder whose lock can be taken belongs to a build that is gone (the kernel drops
    a dead process's locks); so does a name or work lock file nobody holds. Live builds
    hold theirs and are left alone.
    """
    removed = []
    for folder in sorted(output.glob(f"{glob.escape(WORK_PREFIX)}*")):
        if folder.name.endswith(LOCK_SUFFIX) or folder.is_symlink() or not folder.is_dir():
            continue
        gone = remove_if_free(work_lock_path(folder), functools.partial(_rmtree, folder))
        if gone and not folder.exists():
            removed.append(folder)
    for lock in output.glob(f".airdock-*{LOCK_SUFFIX}"):
        remove_if_free(lock)
    return removed


def add_pinned_keys(plan: Plan, keyring: Keyring, folder: Path) -> None:
    """The vendor keys the plan fetched and checked (CentOS 7 aarch64), into the keyring."""
    folder.mkdir(parents=True, exist_ok=True)
    for key in plan.pinned_keys:
        path = folder / f"{key.name}.asc"
        path.write_bytes(key.data)
        keyring.add_pinned(path, key.fingerprint)


@dataclass(frozen=True)
class FetchedRpm:
    """An RPM on disk whose bytes matched the metadata's digest and size."""

    package: Package
    path: Path
    sha256: str
    size: int
    url: str


@dataclass(frozen=True)
class VerifiedRpm:
    """A fetched RPM whose header identity and signatures checked out."""

    fetched: FetchedRpm
    signing_key: str | None  # 16 hex, as the signature packet names it
    signer: str  # fingerprint of the trusted certificate that verified it
    xml: PackageXml | None = None  # its repodata XML, made while the downloads go on


def fetch_rpms(
    plan: Plan,
    downloader: Downloader,
    keyring: Keyring,
    dest: Path,
    jobs: int,
    reporter: Reporter,
) -> list[VerifiedRpm]:
    """Download the plan's RPMs on ``jobs`` threads and verify each as soon as it lands, on
    a pool of its own (at most VERIFY_WORKERS at once): checking overlaps the downloads
    still running instead of waiting for the last one."""
    reporter.step(
        f"fetching {len(plan.packages)} RPMs ({plan.rpm_size / 1e6:.1f} MB), "
        "verifying each header and signature as it lands"
    )
    reporter.bytes_started("RPMs", plan.rpm_size)
    try:
        cache = downloader.cache
        verdicts, xml = None, None  # what earlier builds checked and made, unless --verify-cache
        if cache is not None and not cache.verify:
            verdicts = Verdicts(cache.root / "verdicts", keyring)
            xml = XmlStore(cache.root / "repodata-xml")
        with ThreadPoolExecutor(max_workers=VERIFY_WORKERS) as verifiers:

            def fetch(p: Package) -> Future[VerifiedRpm]:
                item = Download(p.urls, dest / p.filename, p.digest, p.size, label=p.filename)
                f = downloader.fetch(item)
                rpm = FetchedRpm(p, f.path, f.sha256, f.size, f.url or p.url)
                return verifiers.submit(
                    check_and_describe, rpm, keyring, plan.created, verdicts, xml
                )

            return results(parallel(fetch, plan.packages, jobs))
    finally:
        reporter.bytes_finished()


def check_and_describe(
    rpm: FetchedRpm,
    keyring: Keyring,
    created: int,
    verdicts: Verdicts | None = None,
    kept_xml: XmlStore | None = None,
) -> VerifiedRpm:
    """Verify the RPM, then make (or take from the cache) its repodata XML."""
    verified = verify_one(rpm, keyring, verdicts)
    name = rpm.package.filename
    if kept_xml is not None:
        xml = kept_xml.get(rpm.path, rpm.sha256, name, created)
    else:
        xml = package_xml(rpm.path, name, created)
    return dataclasses.replace(verified, xml=xml)


def verify_one(rpm: FetchedRpm, keyring: Keyring, verdicts: Verdicts | None = None) -> VerifiedRpm:
    """Check an RPM's header against its metadata and its signatures against the keyring
    (or take the verdict of an earlier build that checked these very bytes so)."""
    known = verdicts.get(rpm) if verdicts is not None else None
    if known is not None:
        return VerifiedRpm(rpm, *known)
    p = rpm.package
    ident = verify_rpm(rpm.path, (p.name, p.epoch, p.version, p.release, p.arch), keyring, p.url)
    verified = VerifiedRpm(rpm, ident.signing_key, ident.signer or "")
    if verdicts is not None:
        verdicts.put(rpm, verified)
    return verified


class Verdicts:
    """RPM checks that passed, kept in the cache: ``<root>/<key>.json`` with the signing key
    and signer, where the key is the sha256 of what decided the verdict (airdock's version,
    the file's sha256 and size, the NEVRA the metadata states, and every trusted key's
    fingerprint and bytes). A warm build takes an RPM's verdict instead of reading it again;
    another key set, another file or another airdock checks afresh, and so does
    ``--verify-cache``. The file's sha256 is the cache's (hashed or indexed)."""

    def __init__(self, root: Path, keyring: Keyring) -> None:
        self.root = root
        self.fingerprints = {k.fingerprint for k in keyring.keys}
        trust = hashlib.sha256()
        for key in sorted(keyring.keys, key=lambda k: k.fingerprint):
            trust.update(f"{key.fingerprint} {file_digest(key.path)['sha256']}\n".encode())
        self.trust = trust.hexdigest()

    def _path(self, rpm: FetchedRpm) -> Path:
        what = f"{__version__}\n{self.trust}\n{rpm.sha256} {rpm.size}\n{rpm.package.nevra}\n"
        return self.root / f"{hashlib.sha256(what.encode()).hexdigest()}.json"

    def get(self, rpm: FetchedRpm) -> tuple[str | None, str] | None:
        try:
            with open(self._path(rpm), "rb") as fh:
                data = json.loads(fh.read(4096))
            signing_key, signer = data["signing_key"], data["signer"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if signer not in self.fingerprints:
            return None
        if signing_key is not None and not re.fullmatch(r"[0-9a-f]{16}", str(signing_key)):
            return None
        return signing_key, signer

    def put(self, rpm: FetchedRpm, verified: VerifiedRpm) -> None:
        path = self._path(rpm)
        record = {"signing_key": verified.signing_key, "signer": verified.signer}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(path, json.dumps(record, sort_keys=True) + "\n")
        except OSError:
            pass  # not kept: checked again next time


def write_publisher_key(signer: Signer, keys: Path) -> Publisher:
    """The publisher's public key in the bundle, for `gpg --verify` beside a published copy;
    the installer trusts only its own trust root, never this file alone."""
    keys.mkdir(parents=True, exist_ok=True)
    (keys / PUBLISHER_KEY).write_bytes(signer.public_key)
    return Publisher(file=f"keys/{PUBLISHER_KEY}", fingerprint=signer.fingerprint)


def copy_keys(keyring: Keyring, fingerprints: set[str], dest: Path) -> list[ManifestKey]:
    dest.mkdir(parents=True, exist_ok=True)
    entries = []
    for key in keyring.keys:
        if key.fingerprint not in fingerprints:
            continue
        name = key_file_name(key.path)
        shutil.copyfile(key.path, dest / name)
        entries.append(
            ManifestKey(
                file=f"keys/{name}",
                fingerprint=key.fingerprint,
                key_ids=list(key.key_ids),
                vendor=key.fingerprint in VENDOR_FINGERPRINTS,
            )
        )
    return sorted(entries, key=lambda e: e.file)


def key_file_name(path: Path) -> str:
    """The name a key gets in ``keys/``: ``.asc``, and only the characters the installer
    accepts in a bundle's file names (letters, digits, ``._+~^-``), so that a ``--gpg-key``
    named ``my key (2).gpg`` becomes ``my_key__2_.gpg.asc``."""
    name = path.name if path.suffix == ".asc" else f"{path.name}.asc"
    name = re.sub(r"[^A-Za-z0-9._+~^-]", "_", name)
    return name if re.match(r"[A-Za-z0-9_+]", name) else f"key{name}"


def pull_images(
    opts: BuildOptions,
    resolved: list[ResolvedImage],
    staging: Path,
    workdir: Path,
    reporter: Reporter,
) -> list[ManifestImage]:
    if not resolved:
        return []
    from .images import fetch_images

    reporter.step(f"pulling {len(resolved)} image(s) for {opts.arch}")
    reporter.bytes_started("images", sum(i.size for i in resolved))
    try:
        return fetch_images(resolved, opts.arch, staging, workdir / "images", jobs=opts.jobs)
    finally:
        reporter.bytes_finished()


def stamp_version(installer: Path, version: str) -> None:
    """The builder's version (pyproject's, the one source) into the installer's VERSION."""
    text = installer.read_text(encoding="utf-8")
    stamped, count = re.subn(r'^VERSION = "[^"\n]*"', f'VERSION = "{version}"', text, count=1,
                             flags=re.M)  # fmt: skip
    if count != 1:
        raise AirdockError(f"{installer} has no VERSION line to stamp; reinstall airdock")
    installer.write_text(stamped, encoding="utf-8")


def copy_installer(staging: Path) -> FileRef:
    wanted = [*INSTALLER_FILES, *(f"ansible/{n}" for n in ANSIBLE_FILES)]
    missing = [n for n in wanted if not (INSTALLER_DIR / n).is_file()]
    if missing:
        raise AirdockError(
            f"the installer files {', '.join(missing)} are missing from "
            f"{INSTALLER_DIR}; reinstall airdock"
        )
    (staging / "ansible").mkdir(exist_ok=True)
    for name in wanted:
        shutil.copyfile(INSTALLER_DIR / name, staging / name)
    stamp_version(staging / "airdock_install.py", __version__)
    (staging / "install.sh").chmod(0o755)
    (staging / "airdock_install.py").chmod(0o755)
    return FileRef(
        file="airdock_install.py", sha256=file_digest(staging / "airdock_install.py")["sha256"]
    )


def make_manifest(
    opts: BuildOptions,
    plan: Plan,
    rpms: Sequence[VerifiedRpm],
    keys: list[ManifestKey],
    images: list[ManifestImage],
    installer: FileRef,
) -> BundleManifest:
    requested = set(opts.packages)
    return BundleManifest(
        name=plan.name,
        tool={"name": "airdock", "version": __version__},
        created=datetime.fromtimestamp(plan.created, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        docker_version=plan.docker_version,
        channel=opts.channel,
        target=manifest_target(opts, RELEASEVER, CENTOS_RELEASE),
        requested=list(opts.packages),
        mirror={
            "name": opts.mirror.name,
            "docker_ce": opts.mirror.first.docker_ce,
            "os": opts.mirror.first.os,
            "chain": opts.mirror.describe(),
        },
        repos=[
            {"id": r.id, "baseurl": r.baseurl, "metadata_checksum": f"sha256:{r.repomd_sha256}"}
            for r in plan.repos
        ],
        keys=keys,
        packages=[
            ManifestPackage(
                name=v.fetched.package.name,
                epoch=v.fetched.package.epoch,
                version=v.fetched.package.version,
                release=v.fetched.package.release,
                arch=v.fetched.package.arch,
                file=f"rpms/{v.fetched.package.filename}",
                size=v.fetched.size,
                sha256=v.fetched.sha256,
                url=v.fetched.url,
                repo=v.fetched.package.repo_id,
                signing_key=v.signing_key,
                requested=v.fetched.package.name in requested,
            )
            for v in rpms
        ],
        remove=list(OLD_DOCKER_PACKAGES),
        images=images,
        installer=installer,
    )


def write_json(path: Path, data: dict[str, Any]) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_text_atomic(path: Path, text: str) -> None:
    """Write beside ``path`` and rename: a reader sees the old file or the new, never half."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}.{threading.get_ident()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def known_digests(rpms: Sequence[VerifiedRpm], images: Sequence[ManifestImage]) -> dict[str, str]:
    """The sha256 of the bundle's large files, computed as they were downloaded or written
    (and what the manifest records): SHA256SUMS reuses them instead of reading the files
    once more."""
    known = {f"rpms/{r.fetched.package.filename}": r.fetched.sha256 for r in rpms}
    known.update({i.file: i.sha256 for i in images})
    return known


def write_sha256sums(root: Path, known: dict[str, str] | None = None) -> None:
    """``SHA256SUMS`` of every file below ``root``; ``known`` gives digests already computed
    (by path relative to ``root``), the rest are hashed here."""
    known = known or {}
    lines = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if rel not in ("SHA256SUMS", SIGNATURE):
            digest = known.get(rel) or file_digest(path)["sha256"]
            lines.append(f"{digest}  {rel}\n")
    (root / "SHA256SUMS").write_text("".join(sorted(lines, key=lambda s: s[66:])))


def write_tarball(
    staging: Path, workdir: Path, plan: Plan, split_size: int | None
) -> tuple[str, list[Path], list[Path]]:
    """The reproducible tarball (or its parts) and checksum files, in ``workdir``.

    Returns the tarball's sha256, every artifact to publish, and the parts (if split).
    """
    name = f"{plan.name}{TARBALL_SUFFIX}"
    if split_size is None:
        digest = write_tar(workdir / name, staging, plan.name, plan.created)
        artifacts, parts = [workdir / name], []
    else:
        with PartWriter(workdir / name, split_size) as writer, open_tar(writer) as tar:
            add_tree(tar, staging, plan.name, plan.created)
        digest = writer.total.hexdigest()
        parts = writer.parts
        part_sums, join = finish_split(name, parts, workdir)
        artifacts = [*parts, *part_sums, join]
    sums = workdir / f"{name}.sha256"
    sums.write_text(f"{digest}  {name}\n")
    return digest, [*artifacts, sums], parts


def publish(workdir: Path, name: str, output: Path, artifacts: Sequence[Path]) -> Path:
    """Move the finished folder and artifacts into place, replacing an older build's."""
    final = output / name
    old = [
        *output.glob(f"{glob.escape(name)}.tar.gz*"),  # an older airdock's gzipped tarball
        *output.glob(f"{glob.escape(name)}{TARBALL_SUFFIX}*"),
        output / f"{name}.JOIN.txt",
    ]
    if final.exists():
        os.replace(final, workdir / ".old-bundle")
    os.replace(workdir / name, final)
    for artifact in artifacts:
        os.replace(artifact, output / artifact.name)
    new = {a.name for a in artifacts}
    for path in old:
        if path.name not in new:  # e.g. a whole tarball beside a newer build's parts
            path.unlink(missing_ok=True)
    return final
