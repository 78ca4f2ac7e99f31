"""Make a repository's metadata lie: edit primary.xml and re-seal repomd.xml around it.

A hostile or broken mirror serves metadata that is internally consistent (repomd's checksums
match the primary it points at) but says something false about a package: another file's
checksum under this NEVRA, a location with a control character, a digest that is a path.
``edit_package`` rewrites one ``<package>`` element with a function of its XML text and
updates repomd.xml (checksum, open-checksum, size, open-size, location of ``primary``), so
only the lie is left for airdock to catch. The sqlite databases are dropped from repomd.xml:
they would still tell the truth.
"""

from __future__ import annotations

import gzip
import hashlib
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

_PACKAGE_RE = re.compile(rb'<package type="rpm">.*?</package>', re.S)


def hardlinked_copy(src: Path, dest: Path) -> Path:
    """``dest`` = ``src`` as hard links (cheap); the edits below replace files, never write
    into a linked one, so ``src`` is never changed."""
    subprocess.run(["cp", "-al", str(src), str(dest)], check=True)
    return dest


def replace_file(dest: Path, src: Path) -> None:
    """Put a copy of ``src`` at ``dest`` without writing through a hard link."""
    dest.unlink(missing_ok=True)
    shutil.copyfile(src, dest)


def package_block(repo_dir: Path, filename: str) -> bytes:
    """The ``<package>`` element whose location ends with ``filename``."""
    xml = gzip.decompress(_primary_path(repo_dir).read_bytes())
    return _find(xml, filename).group(0)


def edit_package(repo_dir: Path, filename: str, edit: Callable[[bytes], bytes]) -> None:
    """Replace the ``<package>`` of ``filename`` by ``edit(element)`` and re-seal repomd.xml."""
    primary = _primary_path(repo_dir)
    xml = gzip.decompress(primary.read_bytes())
    match = _find(xml, filename)
    xml = xml[: match.start()] + edit(match.group(0)) + xml[match.end() :]
    packed = gzip.compress(xml, mtime=0)
    new = primary.with_name(f"{hashlib.sha256(packed).hexdigest()}-primary.xml.gz")
    primary.unlink()
    new.write_bytes(packed)
    _reseal(repo_dir / "repodata" / "repomd.xml", new, packed, xml)


def set_checksum_and_size(block: bytes, sha256: str, size: int) -> bytes:
    """The element with another file's sha256 and size (what a substituted file needs)."""
    block = re.sub(rb'(<checksum type="sha256" pkgid="YES">)[0-9a-f]+(</checksum>)',
                   rb"\g<1>" + sha256.encode() + rb"\g<2>", block)  # fmt: skip
    return re.sub(rb'<size package="\d+"', b'<size package="%d"' % size, block)


def _find(xml: bytes, filename: str) -> re.Match[bytes]:
    for match in _PACKAGE_RE.finditer(xml):
        if re.search(rb'<location href="[^"]*' + re.escape(filename.encode()) + b'"', match[0]):
            return match
    raise KeyError(f"no package with location {filename}")


def _primary_path(repo_dir: Path) -> Path:
    return next((repo_dir / "repodata").glob("*primary.xml.gz"))


def _reseal(repomd: Path, primary: Path, packed: bytes, xml: bytes) -> None:
    text = repomd.read_text()
    text = re.sub(r'\s*<data type="(primary_db|filelists_db|other_db)">.*?</data>', "", text,
                  flags=re.S)  # fmt: skip

    def fix(data: re.Match[str]) -> str:
        block = data.group(0)
        block = re.sub(r"(<checksum type=\"sha256\">)[0-9a-f]+",
                       r"\g<1>" + hashlib.sha256(packed).hexdigest(), block)  # fmt: skip
        block = re.sub(r"(<open-checksum type=\"sha256\">)[0-9a-f]+",
                       r"\g<1>" + hashlib.sha256(xml).hexdigest(), block)  # fmt: skip
        block = re.sub(r'(<location href=")[^"]+', r"\g<1>repodata/" + primary.name, block)
        block = re.sub(r"(<size>)\d+", rf"\g<1>{len(packed)}", block)
        return re.sub(r"(<open-size>)\d+", rf"\g<1>{len(xml)}", block)

    text = re.sub(r'<data type="primary">.*?</data>', fix, text, flags=re.S)
    repomd.unlink()  # it may be a hard link into the original tree
    repomd.write_text(text)
