"""Writing ``repodata/`` for the bundle's RPM folder with createrepo_c's library.

The bundle's ``rpms/`` folder doubles as a yum repository (an operator can point
a ``.repo`` file at it). The metadata is written by createrepo_c, the tool that
wrote the mirrors' own metadata; we only pin every timestamp to the bundle's
creation time so that the same RPMs always give byte-identical repodata.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import createrepo_c as cr


def write_repodata(rpm_dir: Path, rpm_names: Sequence[str], timestamp: int) -> Path:
    """Write ``rpm_dir/repodata`` for the named RPMs (paths relative to ``rpm_dir``)."""
    repodata = rpm_dir / "repodata"
    if repodata.exists():
        shutil.rmtree(repodata)
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
