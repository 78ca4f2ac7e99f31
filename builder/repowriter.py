"""Writing ``repodata/`` for the bundle's RPM folder with createrepo_c's library.

The bundle's ``rpms/`` folder doubles as a yum repository (an operator can point
a ``.repo`` file at it). The metadata is written by createrepo_c, the tool that
wrote the mirrors' own metadata; we only pin every timestamp to the bundle's
creation time so that the same RPMs always give byte-identical repodata.

createrepo_c publishes wheels for CPython 3.11 and newer only; on 3.9 and 3.10
(RHEL 9's system Python) pip would have to compile it, so there the library is
not installed and the same tool's command (``createrepo_c``, packaged by every
RPM distribution and by Debian) writes the metadata instead, pinned the same way.

With the library, each package's XML (primary, filelists, other) is made by
:func:`package_xml` as soon as the RPM is verified, overlapping the downloads, and
kept in the cache by the file's sha256 (:class:`XmlStore`): a rebuild writes the
repodata from those pieces without reading the RPMs. ``add_chunk`` of
``xml_dump(pkg)`` writes the very bytes ``add_pkg(pkg)`` writes. createrepo_c cannot
be handed a checksum it should trust (``package_from_rpm`` always hashes the file), so
its own sha256 pass remains on a cold build: ~0.25 s per 200 MB here.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from .errors import AirdockError

try:
    import createrepo_c as cr
except ImportError:  # no wheel for this Python: use the command
    cr = None


CHANGELOG_LIMIT = 10
PackageXml = tuple[str, str, str]  # primary, filelists, other


def package_xml(path: Path, name: str, timestamp: int) -> PackageXml | None:
    """One package's XML as createrepo_c writes it into the bundle's repodata (``name``
    its location, ``timestamp`` its file time); None without the library."""
    if cr is None:
        return None
    pkg = cr.package_from_rpm(str(path), cr.SHA256, name, None, CHANGELOG_LIMIT)
    pkg.time_file = timestamp
    primary, filelists, other = cr.xml_dump(pkg)
    return primary, filelists, other


class XmlStore:
    """Packages' XML kept in the cache: ``<root>/<key>.json``, the key the sha256 of
    createrepo_c's version, the RPM's sha256, its name and the timestamp."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, sha256: str, name: str, timestamp: int) -> Path:
        version = getattr(cr, "VERSION", "") if cr is not None else ""
        what = f"{version}\n{CHANGELOG_LIMIT}\n{sha256}\n{name}\n{timestamp}\n"
        return self.root / f"{hashlib.sha256(what.encode()).hexdigest()}.json"

    def get(self, path: Path, sha256: str, name: str, timestamp: int) -> PackageXml | None:
        """The kept XML, or made now (and kept) from the file whose sha256 is given."""
        if cr is None:
            return None
        kept = self._path(sha256, name, timestamp)
        try:
            with open(kept, "rb") as fh:
                data = json.loads(fh.read(256 << 20))
            if isinstance(data, list) and len(data) == 3 and all(isinstance(x, str) for x in data):
                return data[0], data[1], data[2]
        except (OSError, ValueError):
            pass
        xml = package_xml(path, name, timestamp)
        tmp = kept.with_name(f".{kept.name}.tmp{os.getpid()}.{threading.get_ident()}")
        try:
            kept.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(xml), encoding="utf-8")
            os.replace(tmp, kept)
        except OSError:
            pass  # not kept: made again next time
        finally:
            tmp.unlink(missing_ok=True)
        return xml


def write_repodata(
    rpm_dir: Path,
    rpm_names: Sequence[str],
    timestamp: int,
    made: Mapping[str, PackageXml | None] | None = None,
) -> Path:
    """Write ``rpm_dir/repodata`` for the named RPMs (paths relative to ``rpm_dir``);
    ``made`` holds packages' XML already made by :func:`package_xml` for this timestamp."""
    repodata = rpm_dir / "repodata"
    if repodata.exists():
        shutil.rmtree(repodata)
    if cr is None:
        return _write_with_command(rpm_dir, rpm_names, timestamp)
    repodata.mkdir()
    files = {
        "primary": cr.PrimaryXmlFile(str(repodata / "primary.xml.gz")),
        "filelists": cr.FilelistsXmlFile(str(repodata / "filelists.xml.gz")),
        "other": cr.OtherXmlFile(str(repodata / "other.xml.gz")),
    }
    for f in files.values():
        f.set_num_of_pkgs(len(rpm_names))
    for name in sorted(rpm_names):
        xml = (made or {}).get(name) or package_xml(rpm_dir / name, name, timestamp)
        if xml is None:  # (cannot be: the library is there)
            raise AirdockError("createrepo_c's library vanished while it was in use")
        for f, chunk in zip(files.values(), xml):
            f.add_chunk(chunk)
    for f in files.values():
        f.close()

    repomd = cr.Repomd()
    repomd.set_revision(str(timestamp))
    for kind in ("primary", "filelists", "other"):
        path = repodata / f"{kind}.xml.gz"
        os.utime(path, (timestamp, timestamp))
        record = cr.RepomdRecord(kind, str(path))
        record.fill(cr.SHA256)
        record.timestamp = timestamp
        record.rename_file()
        repomd.set_record(record)
    repomd.sort_records()
    (repodata / "repomd.xml").write_text(repomd.xml_dump(), encoding="utf-8")
    return repodata


def _write_with_command(rpm_dir: Path, rpm_names: Sequence[str], timestamp: int) -> Path:
    tool = shutil.which("createrepo_c")
    if tool is None:
        raise AirdockError(
            "writing the bundle's repodata needs createrepo_c: on Python 3.9/3.10 install the "
            "createrepo_c package of your distribution (dnf/apt install createrepo_c / "
            "createrepo-c), or run airdock on Python 3.11+"
        )
    for name in rpm_names:  # createrepo_c records each file's mtime
        os.utime(rpm_dir / name, (timestamp, timestamp))
    listing = rpm_dir.parent / ".pkglist"
    listing.write_text("".join(f"{name}\n" for name in sorted(rpm_names)))
    try:
        proc = subprocess.run(
            [tool, "--quiet", "--no-database", "--changelog-limit", str(CHANGELOG_LIMIT),
             "--revision", str(timestamp), "--set-timestamp-to-revision",
             "--pkglist", str(listing), "--workers", "1", str(rpm_dir)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
    finally:
        listing.unlink(missing_ok=True)
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise AirdockError(f"createrepo_c failed: {detail[-1] if detail else proc.returncode}")
    return rpm_dir / "repodata"
