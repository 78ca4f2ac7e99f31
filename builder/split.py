"""Writing a tarball as parts that fit removable media.

FAT32 refuses files of 4 GiB or more, and many sites cap artifact sizes, so
``--split-size`` streams the tarball straight into ``NAME.part-000``, ``-001``…
without ever writing the whole file: nothing over the limit touches the disk.
Each part gets its own ``.sha256`` (a lost or damaged chunk is named, not
guessed), and ``JOIN.txt`` holds the one-line command that re-joins them; the
whole tarball's ``.sha256`` then checks the result.

Every part of one split has the same number of digits (at least three, more when
there are over 1000 parts): shells sort glob matches as text, so ``part-1000``
would otherwise land between ``part-100`` and ``part-101``. ``airdock split``
re-splits an existing, checksummed tarball with the same helpers a build uses.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .download import CHUNK, file_digest
from .errors import AirdockError, ChecksumError, UsageError

FAT32_LIMIT = 4 * 1024**3 - 1
MIN_PART_SIZE = 64 * 1024
MIN_WIDTH = 3
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}
_TARBALL_SUFFIXES = (".tar.gz", ".tgz", ".tar")


def parse_size(text: str, option: str = "--split-size") -> int:
    """``3900M``, ``2G``, ``650M`` (binary units), or a plain byte count.

    Sizes of 4 GiB or more are allowed (exFAT and NTFS media hold them); callers
    warn with :func:`fat32_warning`.
    """
    match = re.fullmatch(r"\s*(\d+)\s*([KMG]?)(?:i?B)?\s*", text, re.IGNORECASE)
    if not match:
        raise UsageError(f"{option} {text!r} is not a size; write e.g. 3900M or 2G")
    size = int(match.group(1)) * _UNITS[match.group(2).upper()]
    if size < MIN_PART_SIZE:
        raise UsageError(f"{option} {text} is below 64K; choose a larger part size")
    return size


def fat32_warning(size: int, option: str, text: str) -> str | None:
    """The one-line warning for parts FAT32 cannot hold, or None when they fit."""
    if size <= FAT32_LIMIT:
        return None
    return (
        f"Warning: {option} {text} makes parts of 4 GiB or more, which FAT32 cannot hold; "
        "copy them to exFAT or NTFS media (or use at most 4095M)"
    )


def part_size(text: str, option: str, warn: Callable[[str], None]) -> int:
    """The part size in bytes; sizes FAT32 cannot hold are allowed, said through ``warn``."""
    size = parse_size(text, option)
    warning = fat32_warning(size, option, text)
    if warning:
        warn(warning)
    return size


def part_width(count: int) -> int:
    """Digits in every part number: at least three, enough for the last index."""
    return max(MIN_WIDTH, len(str(max(count - 1, 0))))


def part_name(tarball_name: str, index: int, width: int) -> str:
    return f"{tarball_name}.part-{index:0{width}d}"


def part_glob(tarball_name: str, width: int) -> str:
    """A shell glob matching exactly the parts of this width (the name quoted for sh)."""
    return f"{shlex.quote(tarball_name)}.part-{'[0-9]' * width}"


class PartWriter:
    """A binary file-like object that spreads what is written over numbered parts.

    The number of parts, hence the width of their numbers, is known only at the
    end, so parts are written under hidden temporary names beside ``base`` and
    renamed at :meth:`close`; ``parts`` holds the final paths from then on.
    """

    def __init__(self, base: Path, part_size: int) -> None:
        self.base = base
        self.part_size = part_size
        self.parts: list[Path] = []
        self.total = hashlib.sha256()
        self.written = 0
        self._fh: BinaryIO | None = None
        self._left = 0
        self._closed = False

    def _next(self) -> None:
        self._close_part()
        path = self.base.with_name(f".{self.base.name}.partial-{len(self.parts)}")
        self.parts.append(path)
        self._fh = open(path, "wb")  # noqa: SIM115 - closed in _close_part
        self._left = self.part_size

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        self.total.update(view)
        self.written += len(view)
        while view:
            if self._fh is None or self._left == 0:
                self._next()
            assert self._fh is not None
            chunk = view[: self._left]
            self._fh.write(chunk)
            self._left -= len(chunk)
            view = view[len(chunk) :]
        return len(data)

    def tell(self) -> int:
        return self.written

    def flush(self) -> None:
        if self._fh is not None:
            self._fh.flush()

    def _close_part(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> PartWriter:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.close()
            return
        self._close_part()  # a failed write leaves no part behind, not even a temporary one
        for path in self.parts:
            path.unlink(missing_ok=True)

    def close(self) -> None:
        """Finish the last part and give every part its final, equal-width name."""
        if self._closed:
            return
        self._close_part()
        if not self.parts:
            self._next()
            self._close_part()
        width = part_width(len(self.parts))
        final = [
            self.base.with_name(part_name(self.base.name, i, width)) for i in range(len(self.parts))
        ]
        for temp, path in zip(self.parts, final):
            os.replace(temp, path)
        self.parts = final
        self._closed = True


def write_part_sums(parts: list[Path]) -> list[Path]:
    """One ``<part>.sha256`` per part, in ``sha256sum -c`` format."""
    sums = []
    for part in parts:
        out = part.with_name(part.name + ".sha256")
        out.write_text(f"{file_digest(part)['sha256']}  {part.name}\n")
        sums.append(out)
    return sums


def join_file_name(tarball_name: str) -> str:
    """``X.tar`` (or an older ``X.tar.gz``) → ``X.JOIN.txt``, the name a build gives it
    beside the bundle folder."""
    for suffix in _TARBALL_SUFFIXES:
        if tarball_name.endswith(suffix) and len(tarball_name) > len(suffix):
            return f"{tarball_name[: -len(suffix)]}.JOIN.txt"
    return f"{tarball_name}.JOIN.txt"


def join_instructions(tarball_name: str, parts: list[Path]) -> str:
    """The command that checks the parts, re-joins them and checks the whole tarball.

    The glob names exactly this split's width, so it neither misses ``part-1000`` nor
    picks up parts of another width, and equal widths make the shell's sort numeric.
    """
    parts_glob = part_glob(tarball_name, part_width(len(parts)))
    name = shlex.quote(tarball_name)
    return (
        f"# {tarball_name} was split into {len(parts)} part{'' if len(parts) == 1 else 's'}. "
        "On the target:\n"
        f"sha256sum -c {parts_glob}.sha256 && "
        f"cat {parts_glob} > {name} && "
        f"sha256sum -c {name}.sha256\n"
    )


def finish_split(tarball_name: str, parts: list[Path], folder: Path) -> tuple[list[Path], Path]:
    """Write each part's ``.sha256`` and the JOIN file into ``folder``; return them.

    A build and ``airdock split`` both call this, so their artifacts cannot drift apart.
    """
    join = folder / join_file_name(tarball_name)
    join.write_text(join_instructions(tarball_name, parts))
    return write_part_sums(parts), join


# -- re-splitting an existing tarball -----------------------------------------------------------
@dataclass
class SplitResult:
    tarball: Path
    tarball_sha256: str
    parts: list[Path]
    join: Path
    sha256_file: Path


_SUM_LINE = re.compile(r"([0-9a-fA-F]{64}) [ *](.+)")


def expected_sha256(tarball: Path, sums: Path | None = None) -> str:
    """The digest ``TARBALL.sha256`` (``sha256sum`` format; or ``sums``) gives for the file."""
    sums = sums or tarball.with_name(tarball.name + ".sha256")
    if not sums.is_file():
        raise AirdockError(
            f"{sums} is missing; put the checksum file that came with {tarball.name} beside it"
        )
    for line in sums.read_text(encoding="utf-8", errors="replace").splitlines():
        match = _SUM_LINE.fullmatch(line.strip())
        if match and Path(match.group(2)).name == tarball.name:
            return match.group(1).lower()
    raise AirdockError(
        f"{sums} has no sha256 line for {tarball.name}; write it with "
        f"`sha256sum {tarball.name} > {sums.name}` from a trusted copy"
    )


def check_tarball(tarball: Path) -> str:
    """Refuse a missing or damaged tarball before anything is written; return its digest."""
    if not tarball.exists() or tarball.is_dir():
        raise UsageError(f"{tarball}: no such file; give the path of a bundle tarball")
    expected = expected_sha256(tarball)
    actual = file_digest(tarball)["sha256"]
    if actual != expected:
        raise ChecksumError(
            f"{tarball} does not match {tarball.name}.sha256 (sha256 {actual}, expected "
            f"{expected}); copy the tarball again before splitting it"
        )
    return expected


def resplit(tarball: Path, part_size: int, output: Path | None = None) -> SplitResult:
    """Split a checksummed tarball into parts in ``output`` (default: its folder).

    Everything is written into a temporary folder beside the destination and renamed
    into place at the end, so a failure or interrupt leaves no new file under a final
    name; the parts of an earlier split of the same tarball are replaced, never mixed.
    """
    digest = check_tarball(tarball)
    output = output if output is not None else tarball.parent
    output.mkdir(parents=True, exist_ok=True)
    name = tarball.name
    workdir = Path(tempfile.mkdtemp(prefix=".airdock-split-", dir=output))
    try:
        with open(tarball, "rb") as src, PartWriter(workdir / name, part_size) as writer:
            shutil.copyfileobj(src, writer, CHUNK * 16)
        if writer.total.hexdigest() != digest:
            raise ChecksumError(
                f"{tarball} changed while it was being split; split it again once nothing "
                "writes to it"
            )
        sums = workdir / f"{name}.sha256"
        sums.write_text(f"{digest}  {name}\n")
        part_sums, join = finish_split(name, writer.parts, workdir)
        publish_split(name, output, writer.parts, [*part_sums, sums], join)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return SplitResult(
        tarball=tarball,
        tarball_sha256=digest,
        parts=[output / p.name for p in writer.parts],
        join=output / join_file_name(name),
        sha256_file=output / f"{name}.sha256",
    )


def stale_parts(folder: Path, tarball_name: str, keep: set[str]) -> list[Path]:
    """Parts (and their ``.sha256``) of an earlier split of this tarball, not in ``keep``."""
    pattern = re.compile(rf"{re.escape(tarball_name)}\.part-\d+(?:\.sha256)?")
    return sorted(
        p
        for p in folder.iterdir()
        if pattern.fullmatch(p.name) and p.name not in keep and not p.is_dir()
    )


def publish_split(
    tarball_name: str, output: Path, parts: list[Path], others: list[Path], join: Path
) -> None:
    """Rename a finished split into ``output``; the JOIN file goes first out and last in.

    Until the new JOIN file appears the set is visibly incomplete; stale parts of an
    earlier split are removed so that no glob can mix two splits.
    """
    (output / join.name).unlink(missing_ok=True)
    for path in [*parts, *others]:
        os.replace(path, output / path.name)
    keep = {p.name for p in [*parts, *others]}
    for path in stale_parts(output, tarball_name, keep):
        path.unlink(missing_ok=True)
    os.replace(join, output / join.name)
