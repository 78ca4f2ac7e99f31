"""Writing a tarball as parts that fit removable media.

FAT32 refuses files of 4 GiB or more, and many sites cap artifact sizes, so
``--split-size`` streams the tarball straight into ``NAME.part-000``, ``-001``…
without ever writing the whole file: nothing over the limit touches the disk.
Each part gets its own ``.sha256`` (a lost or damaged chunk is named, not
guessed), and ``JOIN.txt`` holds the one-line command that re-joins them; the
whole tarball's ``.sha256`` then checks the result.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from .download import file_digest
from .errors import UsageError

FAT32_LIMIT = 4 * 1024**3 - 1
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}


def parse_size(text: str) -> int:
    """``3900M``, ``2G``, ``650M`` (binary units), or a plain byte count."""
    match = re.fullmatch(r"\s*(\d+)\s*([KMG]?)(?:i?B)?\s*", text, re.IGNORECASE)
    if not match:
        raise UsageError(f"--split-size {text!r} is not a size; write e.g. 3900M or 2G")
    size = int(match.group(1)) * _UNITS[match.group(2).upper()]
    if size < 64 * 1024:
        raise UsageError(f"--split-size {text} is below 64K; choose a larger part size")
    if size > FAT32_LIMIT:
        raise UsageError(
            f"--split-size {text} is 4 GiB or more, which FAT32 cannot hold; use at most 4095M"
        )
    return size


class PartWriter:
    """A binary file-like object that spreads what is written over numbered parts."""

    def __init__(self, base: Path, part_size: int) -> None:
        self.base = base
        self.part_size = part_size
        self.parts: list[Path] = []
        self.total = hashlib.sha256()
        self._fh = None
        self._left = 0

    def _next(self) -> None:
        self._close_part()
        path = self.base.with_name(f"{self.base.name}.part-{len(self.parts):03d}")
        self.parts.append(path)
        self._fh = open(path, "wb")  # noqa: SIM115 - closed in _close_part
        self._left = self.part_size

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        self.total.update(view)
        while view:
            if self._fh is None or self._left == 0:
                self._next()
            chunk = view[: self._left]
            self._fh.write(chunk)
            self._left -= len(chunk)
            view = view[len(chunk) :]
        return len(data)

    def flush(self) -> None:
        if self._fh is not None:
            self._fh.flush()

    def _close_part(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> PartWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._close_part()
        if not self.parts:
            self._next()
            self._close_part()


def write_part_sums(parts: list[Path]) -> list[Path]:
    """One ``<part>.sha256`` per part, in ``sha256sum -c`` format."""
    sums = []
    for part in parts:
        out = part.with_name(part.name + ".sha256")
        out.write_text(f"{file_digest(part)['sha256']}  {part.name}\n")
        sums.append(out)
    return sums


def join_instructions(tarball_name: str, parts: list[Path]) -> str:
    return (
        f"# {tarball_name} was split into {len(parts)} parts. On the target:\n"
        f"sha256sum -c {tarball_name}.part-*.sha256 && "
        f"cat {tarball_name}.part-[0-9][0-9][0-9] > {tarball_name} && "
        f"sha256sum -c {tarball_name}.sha256\n"
    )
