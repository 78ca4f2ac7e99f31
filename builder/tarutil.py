"""Reproducible tar archives: same files in, same bytes out.

Entries are sorted, owners are root with no names, modes are normalised and every
mtime is one fixed value; the gzip header carries mtime 0 and no file name.
Bundles and image archives both go through here, so "rebuild gives identical
bytes" is one property of one function.
"""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO


def _normalise(info: tarfile.TarInfo, mtime: int) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = mtime
    if info.isdir():
        info.mode = 0o755
    elif info.isfile():
        info.mode = 0o755 if info.mode & 0o111 else 0o644
    return info


def add_tree(tar: tarfile.TarFile, root: Path, arcroot: str, mtime: int) -> None:
    """Add ``root`` as ``arcroot`` with every entry below it, in sorted order."""
    entries = [root]
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        entries += [Path(dirpath) / d for d in dirnames]
        entries += [Path(dirpath) / f for f in sorted(filenames)]
    for path in sorted(entries, key=lambda p: p.relative_to(root).parts):
        rel = path.relative_to(root)
        arcname = arcroot if rel == Path(".") else f"{arcroot}/{rel.as_posix()}"
        info = _normalise(tar.gettarinfo(str(path), arcname), mtime)
        if info.isfile():
            with open(path, "rb") as fh:
                tar.addfile(info, fh)
        else:
            tar.addfile(info)


def add_bytes(tar: tarfile.TarFile, arcname: str, data: bytes, mtime: int) -> None:
    info = tarfile.TarInfo(arcname)
    info.size = len(data)
    tar.addfile(_normalise(info, mtime), io.BytesIO(data))


def add_dir(tar: tarfile.TarFile, arcname: str, mtime: int) -> None:
    info = tarfile.TarInfo(arcname)
    info.type = tarfile.DIRTYPE
    tar.addfile(_normalise(info, mtime))


def add_files(tar: tarfile.TarFile, files: Iterable[tuple[str, Path]], mtime: int) -> None:
    """Add regular files under the given archive names, in the order given."""
    for arcname, path in files:
        info = _normalise(tar.gettarinfo(str(path), arcname), mtime)
        with open(path, "rb") as fh:
            tar.addfile(info, fh)


def open_tar_gz(out: BinaryIO) -> tuple[gzip.GzipFile, tarfile.TarFile]:
    """A tar writer over a gzip stream whose header is fixed (mtime 0, no name)."""
    gz = gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=6)
    return gz, tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT)


def write_tar_gz(dest: Path, root: Path, arcroot: str, mtime: int) -> None:
    with open(dest, "wb") as out:
        gz, tar = open_tar_gz(out)
        with gz, tar:
            add_tree(tar, root, arcroot, mtime)
