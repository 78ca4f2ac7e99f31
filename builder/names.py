"""Names a mirror sends, checked before anything uses them.

Locations from primary.xml and repomd.xml become URLs, file names in the bundle,
lines of SHA256SUMS and entries of manifest.json; package names and versions end
up in error lines and in the installer's yum transaction. A mirror is untrusted,
so each is held to the shape real repositories use (RPM file names and NEVRA
fields are ASCII letters, digits and ``._+~^-``): ``../../etc/x``, an absolute path,
a URL, a newline (``&#10;`` in the XML) or a space is refused with one line naming
the mirror, before any byte is downloaded.
"""

from __future__ import annotations

import re

from .digests import Digest
from .errors import MirrorError

_SEGMENT_RE = re.compile(r"^[A-Za-z0-9_+~^][A-Za-z0-9._+~^-]*$")
_RPM_FILE_RE = re.compile(r"^[A-Za-z0-9_+][A-Za-z0-9._+~^-]*\.rpm$")
_NAME_RE = re.compile(r"^[A-Za-z0-9_+][A-Za-z0-9._+-]*$")
_VERSION_RE = re.compile(r"^[A-Za-z0-9._+~^]+$")
_ARCH_RE = re.compile(r"^[A-Za-z0-9_]+$")


def one_line(text: str, limit: int = 2000) -> str:
    """Text that may hold a remote's words as one line: control characters become spaces
    (a newline in a package name or a libsolv problem must not forge a second line)."""
    flat = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return flat[:limit] + ("…" if len(flat) > limit else "")


def shown(text: str, limit: int = 80) -> str:
    """A remote's text, quoted on one line and cut short, for an error message."""
    return repr(text[:limit] + ("…" if len(text) > limit else ""))


def check_href(href: str, source: str, *, rpm: bool = False) -> str:
    """A relative location of plain path segments (an ``.rpm`` file name when ``rpm``)."""
    segments = href.split("/")
    ok = (
        0 < len(href) <= 1024
        and all(_SEGMENT_RE.match(part) for part in segments)
        and (not rpm or bool(_RPM_FILE_RE.match(segments[-1])))
    )
    if not ok:
        raise MirrorError(
            f"{source} names a file {shown(href)}, which is not a plain relative "
            f"{'RPM ' if rpm else ''}path; the mirror's metadata is broken or hostile — "
            "use another mirror"
        )
    return href


def check_nevra(name: str, version: str, release: str, arch: str, source: str) -> None:
    """Package name, version, release and arch as rpm itself would write them."""
    fields = ((name, _NAME_RE), (version, _VERSION_RE), (release, _VERSION_RE), (arch, _ARCH_RE))
    for value, pattern in fields:
        if not (0 < len(value) <= 256 and pattern.match(value)):
            raise MirrorError(
                f"{source} lists a package with the malformed name or version {shown(value)}; "
                "the mirror's metadata is broken or hostile — use another mirror"
            )


def checked_digest(algo: str, value: str, source: str) -> Digest:
    """A checksum from repository metadata as a Digest, or one line naming the mirror."""
    try:
        return Digest.of(algo, value)
    except ValueError as exc:
        raise MirrorError(
            f"{source}: {exc}; the repository metadata is broken or hostile — use another mirror"
        ) from exc


def nevra_text(name: str, epoch: int, version: str, release: str, arch: str) -> str:
    """``name-epoch:version-release.arch``, the one spelling airdock writes (epoch always)."""
    return f"{name}-{epoch}:{version}-{release}.{arch}"
