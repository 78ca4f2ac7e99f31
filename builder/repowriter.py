"""Writing ``repodata/`` for the bundle's RPM folder with createrepo_c's library.

The bundle's ``rpms/`` folder doubles as a yum repository (an operator can point
a ``.repo`` file at it). The metadata is written by createrepo_c, the tool that
wrote the mirrors' own metadata; we only pin every timestamp to the bundle's
creation time so that the same RPMs always give byte-identical repodata.

createrepo_c publishes wheels for CPython 3.11 and newer only; on 3.9 and 3.10
(RHEL 9's system Python) pip would have to compile it, so there the library is
not installed and the same tool's command (``createrepo_c``, packaged by every
RPM distribution and by Debian) writes the metadata instead, pinned the same way.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from .errors import AirdockError

try:
    import createrepo_c as cr
except ImportError:  # no wheel for this Python: use the command
    cr = None


def write_repodata(rpm_dir: Path, rpm_names: Sequence[str], timestamp: int) -> Path:
    """Write ``rpm_dir/repodata`` for the named RPMs (paths relative to ``rpm_dir``)."""
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
        pkg = cr.package_from_rpm(str(rpm_dir / name), cr.SHA256, name, None, 10)
        pkg.time_file = timestamp
        for f in files.values():
            f.add_pkg(pkg)
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
            [tool, "--quiet", "--no-database", "--changelog-limit", "10",
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
