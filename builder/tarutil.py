"""Reproducible tar archives: same files in, same bytes out.

Entries are sorted, owners are root with no names, modes are normalised and every
mtime is one fixed value. Bundles and image archives both go through here, so
"rebuild gives identical bytes" is one property of one function.

The format is GNU tar (``././@LongLink`` for long names, never pax headers), which
CentOS 7's tar 1.26 reads; the bundle tarball is not compressed: what it carries is
compressed already (xz/gzip RPM payloads, gzip image layers), so gzip saved ~0.15 %
for seconds of single-threaded zlib, and its bytes depended on the machine's zlib
build. An uncompressed tar's bytes depend on nothing but the files.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO, Protocol


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


TARBALL_SUFFIX = ".tar"
COPY_BUFFER = 1 << 20


class HashingWriter:
    """A write-only file that hashes what passes through it: the tarball's sha256 comes
    from the one pass that writes it, not from reading it back."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.total = hashlib.sha256()
        self.written = 0

    def write(self, data: bytes) -> int:
        self.total.update(data)
        self.written += len(data)
        return self.out.write(data)

    def tell(self) -> int:
        return self.written


class WriteOnly(Protocol):
    def write(self, data: bytes, /) -> int: ...

    def tell(self) -> int: ...


def open_tar(out: WriteOnly) -> tarfile.TarFile:
    """A GNU-format tar writer (tar 1.26 reads it) over a write-only stream, copying files
    in 1 MiB pieces (tarfile's default is 16 KiB)."""
    return tarfile.TarFile(
        fileobj=out,  # type: ignore[arg-type]  # tarfile only writes and tells
        mode="w",
        format=tarfile.GNU_FORMAT,
        copybufsize=COPY_BUFFER,
    )


def write_tar(dest: Path, root: Path, arcroot: str, mtime: int) -> str:
    """Write ``root`` as a reproducible tar at ``dest``; return its sha256."""
    with open(dest, "wb") as out:
        writer = HashingWriter(out)
        with open_tar(writer) as tar:
            add_tree(tar, root, arcroot, mtime)
    return writer.total.hexdigest()
