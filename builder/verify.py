"""``airdock verify``: everything a target would check, offline, before anyone runs it.

A release engineer (or an auditor on the air-gapped side with a Python 3.9+ box) can take a
bundle folder, its tarball or its split parts and check it exactly as the installer would:
the parts and the tarball against their ``.sha256``, ``SHA256SUMS`` against every file (and
no file left out), ``SHA256SUMS.asc`` against the keys the user trusts (``--key``), every
RPM's header and signatures against manifest.json and the pinned vendor keys, and every image
archive against the digests the manifest records. Nothing is executed from the bundle.

Trust is explicit: without ``--key`` a signature is only checked against the bundle's own
``keys/publisher.asc`` and reported with its fingerprint for the user to compare; a key in
``keys/`` that is not a vendor key is accepted for RPMs only when the bundle's signature was
made by a key the user trusts.
"""

from __future__ import annotations

import glob
import hashlib
import json
import re
import shutil
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pysequoia

from .bundle import PUBLISHER_KEY, SIGNATURE
from .digests import file_digest
from .errors import AirdockError, UsageError
from .manifest import BundleManifest
from .rpmverify import VENDOR_FINGERPRINTS, Keyring, verify_rpm
from .signing import verify_detached
from .split import expected_sha256

_SUMS_LINE = re.compile(r"^([0-9a-f]{64})  (\S.*)$")


@dataclass
class Finding:
    name: str
    status: str  # pass | fail | warn
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "message": self.message}


@dataclass
class Report:
    bundle: str = ""
    trust: str = "unsigned"  # signed-by FPR (trusted) | signed-by FPR (untrusted) | unsigned
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(f.status != "fail" for f in self.findings)

    def add(self, name: str, status: str, message: str) -> None:
        self.findings.append(Finding(name, status, message))

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "bundle": self.bundle,
            "trust": self.trust,
            "checks": [f.as_dict() for f in self.findings],
        }


class Progress(Protocol):
    """Where the longest part of a verification (hashing every file) reports its bytes."""

    def start(self, label: str, total: int, watch: Path | None = None) -> None: ...
    def advance(self, count: int) -> None: ...
    def finish(self) -> None: ...


def verify_path(path: Path, keys: Sequence[Path], progress: Progress | None = None) -> Report:
    """Verify a bundle folder, a tarball, or split parts (a part or the JOIN.txt file)."""
    certs = [_cert(k) for k in keys]
    report = Report()
    with _bundle_folder(Path(path), certs, report, progress) as folder:
        if folder is not None:
            verify_folder(folder, certs, report, progress)
    return report


def verify_folder(
    folder: Path, certs: list[pysequoia.Cert], report: Report, progress: Progress | None = None
) -> None:
    report.bundle = folder.name
    sums = _check_sums(folder, report, progress)
    trusted = _check_signature(folder, certs, report)
    try:
        manifest = BundleManifest.load(folder)
    except AirdockError as exc:
        report.add("manifest", "fail", str(exc))
        return
    report.add("manifest", "pass", f"docker-ce {manifest.docker_version} for "
               f"{manifest.target.arch}")  # fmt: skip
    if sums is not None:
        _check_rpms(folder, manifest, trusted, report)
        _check_images(folder, manifest, report)


# -- where the bundle is -----------------------------------------------------------------------
@contextmanager
def _bundle_folder(
    path: Path, certs: list[pysequoia.Cert], report: Report, progress: Progress | None = None
) -> Iterator[Path | None]:
    if path.is_dir():
        yield path
        return
    if not path.exists():
        raise UsageError(f"{path}: no such bundle folder, tarball or part")
    with tempfile.TemporaryDirectory(prefix="airdock-verify-") as tmp:
        tarball = _whole_tarball(path, Path(tmp), certs, report, progress)
        if tarball is None:
            yield None
            return
        yield _extract(tarball, Path(tmp) / "x", report)


def _whole_tarball(
    path: Path,
    tmp: Path,
    certs: list[pysequoia.Cert],
    report: Report,
    progress: Progress | None = None,
) -> Path | None:
    """The tarball, re-joined from its parts when ``path`` is a part or a JOIN file."""
    name = path.name
    match = re.match(r"^(.*\.tar(?:\.gz)?)\.part-\d+$", name)
    stem = match.group(1) if match else None
    if name.endswith(".JOIN.txt"):  # X.tar's parts, or an older airdock's X.tar.gz's
        base = name[: -len(".JOIN.txt")]
        stem = next(
            (f"{base}{suffix}" for suffix in (".tar", ".tar.gz")
             if list(path.parent.glob(f"{glob.escape(base)}{suffix}.part-*"))),
            f"{base}.tar",
        )  # fmt: skip
    if stem is None:
        whole = path
    else:
        parts = sorted(
            (p for p in path.parent.glob(f"{stem}.part-*") if not p.name.endswith(".sha256")),
            key=lambda p: int(p.name.rsplit("-", 1)[1]),
        )
        whole = tmp / stem
        with open(whole, "wb") as out:
            for part in parts:
                if not _check_digest_file(part, report, f"part {part.name}", None, progress):
                    return None
                with open(part, "rb") as src:
                    shutil.copyfileobj(src, out, 1 << 20)
        report.add("parts", "pass", f"{len(parts)} part{'' if len(parts) == 1 else 's'} re-joined")
    sums = path.parent / f"{whole.name}.sha256"
    if sums.is_file():
        if not _check_digest_file(whole, report, "tarball", sums, progress):
            return None
        asc = sums.with_name(sums.name + ".asc")
        if asc.is_file() and certs:
            try:
                fpr = verify_detached(sums.read_bytes(), asc.read_bytes(), certs)
                report.add("tarball signature", "pass", f"{asc.name} signed by {fpr}")
            except ValueError as exc:
                report.add("tarball signature", "fail", f"{asc.name}: {exc}")
    else:
        report.add("tarball", "warn", f"no {sums.name} beside it: the tarball is not checked")
    return whole


def _sha256(path: Path, progress: Progress | None, label: str) -> str:
    """The file's sha256, read with a progress bar when there is one (large tarballs)."""
    if progress is None:
        return file_digest(path)["sha256"]
    digest = hashlib.sha256()
    progress.start(label, path.stat().st_size)
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
                progress.advance(len(chunk))
    finally:
        progress.finish()
    return digest.hexdigest()


def _check_digest_file(
    path: Path,
    report: Report,
    what: str,
    sums: Path | None = None,
    progress: Progress | None = None,
) -> bool:
    sums = sums or path.with_name(path.name + ".sha256")
    try:
        expected = expected_sha256(path, sums)
    except (OSError, AirdockError) as exc:
        report.add(what, "fail", str(exc))
        return False
    actual = _sha256(path, progress, what)
    if actual != expected:
        report.add(what, "fail", f"{path.name}: sha256 {actual}, {sums.name} says {expected}")
        return False
    report.add(what, "pass", f"{path.name} matches {sums.name}")
    return True


def _extract(tarball: Path, dest: Path, report: Report) -> Path | None:
    """Unpack regular files and folders only, each strictly below one top-level folder."""
    dest.mkdir()
    try:
        with tarfile.open(tarball) as tar:
            members = tar.getmembers()
            tops = {m.name.split("/", 1)[0] for m in members}
            for m in members:
                parts = m.name.split("/")
                if (not (m.isfile() or m.isdir()) or m.name.startswith("/") or ".." in parts
                        or len(tops) != 1):  # fmt: skip
                    report.add("tarball", "fail", f"unsafe or unexpected entry {m.name!r}")
                    return None
            tar.extractall(dest, members=members)  # noqa: S202 - every member checked above
    except (tarfile.TarError, OSError, EOFError) as exc:
        report.add("tarball", "fail", f"{tarball.name} cannot be unpacked ({exc})")
        return None
    return dest / tops.pop()


# -- the checks --------------------------------------------------------------------------------
def _check_sums(
    folder: Path, report: Report, progress: Progress | None = None
) -> dict[str, str] | None:
    try:
        lines = (folder / "SHA256SUMS").read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        report.add("SHA256SUMS", "fail", f"SHA256SUMS is unreadable ({exc})")
        return None
    listed: dict[str, str] = {}
    for number, line in enumerate(lines, 1):
        match = _SUMS_LINE.match(line)
        rel = match.group(2) if match else ""
        if not match or rel.startswith("/") or ".." in rel.split("/"):
            report.add("SHA256SUMS", "fail", f"SHA256SUMS line {number} is malformed")
            return None
        listed[rel] = match.group(1)
    present = {
        p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() or p.is_symlink()
    } - {"SHA256SUMS", SIGNATURE}
    problems = [f"{rel} is missing" for rel in sorted(set(listed) - present)]
    problems += [f"{rel} is not listed" for rel in sorted(present - set(listed))]
    checked = sorted(set(listed) & present)
    if progress is not None:
        progress.start("checksums", sum((folder / rel).stat().st_size for rel in checked))
    try:
        for rel in checked:
            if file_digest(folder / rel)["sha256"] != listed[rel]:
                problems.append(f"{rel} does not match its sha256")
            if progress is not None:
                progress.advance((folder / rel).stat().st_size)
    finally:
        if progress is not None:
            progress.finish()
    if problems:
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        report.add("SHA256SUMS", "fail", problems[0] + more)
        return None
    digest = hashlib.sha256((folder / "SHA256SUMS").read_bytes()).hexdigest()
    report.add("SHA256SUMS", "pass", f"{len(listed)} files verified (SHA256SUMS sha256 {digest})")
    return listed


def _check_signature(folder: Path, certs: list[pysequoia.Cert], report: Report) -> bool:
    """True when SHA256SUMS.asc was made by a key the user trusts (``--key``)."""
    asc = folder / SIGNATURE
    if not asc.is_file():
        status = "fail" if certs else "warn"
        report.add("signature", status, f"no {SIGNATURE}: the bundle is not signed")
        return False
    data, signature = (folder / "SHA256SUMS").read_bytes(), asc.read_bytes()
    if certs:
        try:
            fpr = verify_detached(data, signature, certs)
        except ValueError as exc:
            report.add("signature", "fail", f"{SIGNATURE} is not by a key you gave ({exc})")
            return False
        report.trust = f"signed-by {fpr}"
        report.add("signature", "pass", f"{SIGNATURE} signed by {fpr} (trusted: --key)")
        return True
    own = folder / "keys" / PUBLISHER_KEY
    try:
        fpr = verify_detached(data, signature, [_cert(own)])
    except (ValueError, UsageError) as exc:
        report.add("signature", "fail", f"{SIGNATURE} does not verify ({exc})")
        return False
    report.trust = f"signed-by {fpr} (untrusted)"
    report.add("signature", "warn", f"{SIGNATURE} signed by {fpr}, checked only against the "
               "bundle's own keys/publisher.asc: compare the fingerprint with the publisher's, "
               "or pass --key FILE")  # fmt: skip
    return False


def _check_rpms(folder: Path, manifest: BundleManifest, trusted: bool, report: Report) -> None:
    others = [k for k in manifest.keys if k.fingerprint not in VENDOR_FINGERPRINTS]
    if others and not trusted:
        report.add("keys", "fail", f"{others[0].file} ({others[0].fingerprint}) is not a vendor "
                   "key, and the bundle is not signed by a key you trust; pass --key with the "
                   "publisher's key")  # fmt: skip
        return
    try:
        keyring = Keyring.load([folder / k.file for k in others])
    except AirdockError as exc:
        report.add("keys", "fail", str(exc))
        return
    for p in manifest.packages:
        try:
            identity = (p.name, p.epoch, p.version, p.release, p.arch)
            verify_rpm(folder / p.file, identity, keyring, "the bundle")
        except AirdockError as exc:
            report.add("rpms", "fail", str(exc))
            return
    report.add("rpms", "pass", f"{len(manifest.packages)} RPMs: headers match the manifest, "
               "signatures verify")  # fmt: skip


def _check_images(folder: Path, manifest: BundleManifest, report: Report) -> None:
    for image in manifest.images:
        path = folder / image.file
        try:
            with tarfile.open(path) as tar:
                index = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
                config_name = index[0]["Config"]
                config = tar.extractfile(config_name).read()  # type: ignore[union-attr]
        except (OSError, tarfile.TarError, KeyError, ValueError, IndexError, AttributeError) as e:
            report.add("images", "fail", f"{path.name} is not a docker-load archive ({e})")
            return
        actual = "sha256:" + hashlib.sha256(config).hexdigest()
        if actual != image.config_digest:
            report.add("images", "fail", f"{path.name}: config {actual}, the manifest says "
                       f"{image.config_digest}")  # fmt: skip
            return
    if manifest.images:
        report.add("images", "pass", f"{len(manifest.images)} image(s): configs match their "
                   "digests")  # fmt: skip


def _cert(path: Path) -> pysequoia.Cert:
    try:
        return pysequoia.Cert.from_file(str(path))
    except Exception as exc:
        raise UsageError(f"{path} is not an OpenPGP public key ({exc})") from exc
