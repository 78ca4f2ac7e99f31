"""Reading a yum repository's metadata: repomd.xml, primary, filelists and comps.

Fetching and parsing are kept apart: :func:`parse_repomd` and :func:`core_group`
take bytes/paths; :func:`fetch_repo` does the I/O through the one download
primitive, so metadata gets the same checksum verification, retries and cache
as RPMs. ``repomd.xml`` is read with libsolv (the same library then reads
primary and filelists) and comps with libcomps, the parsers the RPM world
maintains, instead of ad-hoc XML code.
"""

from __future__ import annotations

import bz2
import dataclasses
import gzip
import hashlib
import lzma
import tempfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import libcomps
import solv
from defusedxml import DefusedXmlException, ElementTree

from .download import Digest, Download, Downloader, TooLargeError, parallel
from .errors import MirrorError, NotFoundError
from .names import check_href, checked_digest

# Caps where repomd.xml states no size: compressed metadata, and what it may expand to.
METADATA_LIMIT = 256 << 20
METADATA_OPEN_LIMIT = 1 << 30
_DECOMPRESSORS: dict[bytes, Callable[..., Any]] = {b"\x1f\x8b": gzip.open, b"BZh": bz2.open}


@dataclass(frozen=True)
class Record:
    """One ``<data type=…>`` entry of repomd.xml."""

    type: str
    href: str
    digest: Digest
    size: int | None
    timestamp: int
    open_size: int | None = None  # uncompressed size: the bound for decompressing it


@dataclass
class Repo:
    """A repository whose metadata has been fetched and verified."""

    id: str
    baseurls: list[str]  # fallback order, the one that served repomd.xml first
    repomd_sha256: str
    records: dict[str, Record]
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def timestamp(self) -> int:
        """When the mirror generated this metadata: the newest record timestamp."""
        return max((r.timestamp for r in self.records.values()), default=0)

    @property
    def baseurl(self) -> str:
        return self.baseurls[0]

    def urls(self, href: str) -> tuple[str, ...]:
        return tuple(base + href.lstrip("/") for base in self.baseurls)


def parse_repomd(data: bytes, source: str) -> dict[str, Record]:
    """Records of a repomd.xml document, by type (parsed by libsolv)."""
    pool = solv.Pool()
    repo = pool.add_repo("repomd")
    with tempfile.NamedTemporaryFile(suffix="repomd.xml") as tmp:
        tmp.write(data)
        tmp.flush()
        f = solv.xfopen(tmp.name)
        ok = f is not None and repo.add_repomdxml(f, 0)
        if f is not None:
            f.close()
    if not ok:
        reason = pool.errstr.splitlines()[0] if pool.errstr else "unreadable"
        raise MirrorError(
            f"{source} is not valid repomd.xml ({reason}); "
            "check that the URL points at a yum repository"
        )
    records: dict[str, Record] = {}
    entries = repo.Dataiterator_meta(solv.REPOSITORY_REPOMD_TYPE, None, 0)
    entries.prepend_keyname(solv.REPOSITORY_REPOMD)
    for entry in entries:
        pos = entry.parentpos()
        kind = pos.lookup_str(solv.REPOSITORY_REPOMD_TYPE)
        href = pos.lookup_str(solv.REPOSITORY_REPOMD_LOCATION)
        chk = pos.lookup_checksum(solv.REPOSITORY_REPOMD_CHECKSUM)
        if not kind or not href or chk is None:
            continue
        digest = checked_digest(chk.typestr(), chk.hex(), source)
        check_href(href, source)
        size = pos.lookup_num(solv.REPOSITORY_REPOMD_SIZE) or None
        records[kind] = Record(
            kind, href, digest, size, pos.lookup_num(solv.REPOSITORY_REPOMD_TIMESTAMP)
        )
    if "primary" not in records:
        raise MirrorError(f"{source} names no primary metadata; is this a yum repository?")
    for kind, size in _open_sizes(data).items():
        if kind in records:
            records[kind] = dataclasses.replace(records[kind], open_size=size)
    return records


def _open_sizes(data: bytes) -> dict[str, int]:
    """``<open-size>`` per record type (libsolv does not expose it); {} when unreadable."""
    try:
        root = ElementTree.fromstring(data)
    except (ElementTree.ParseError, DefusedXmlException):  # entities refused, not expanded
        return {}
    sizes = {}
    for node in root.iter():
        if node.tag.rsplit("}", 1)[-1] != "data":
            continue
        for child in node:
            text = (child.text or "").strip()
            if child.tag.rsplit("}", 1)[-1] == "open-size" and text.isdigit():
                sizes[node.get("type", "")] = int(text)
    return sizes


def check_uncompressed_size(path: Path, record: Record, source: str) -> None:
    """Refuse a compressed file that expands beyond its ``open-size`` (a decompression bomb)
    before libsolv or libcomps expand it in memory."""
    limit = min(record.open_size or METADATA_OPEN_LIMIT, METADATA_OPEN_LIMIT)
    with open(path, "rb") as raw:
        magic = raw.read(6)
    opener = _DECOMPRESSORS.get(magic[:2]) or _DECOMPRESSORS.get(magic[:3])
    if magic[:6] == b"\xfd7zXZ\x00":
        opener = lzma.open
    if opener is None:
        return  # plain XML (its size was checked) or zstd, which libsolv reads itself
    total = 0
    try:
        with opener(path, "rb") as stream:
            while chunk := stream.read(1 << 20):
                total += len(chunk)
                if total > limit:
                    raise MirrorError(
                        f"{source}: {record.type} metadata expands beyond {limit} bytes "
                        "(repomd.xml's open-size); the mirror is broken or hostile — use another"
                    )
    except (OSError, EOFError, lzma.LZMAError, zlib.error) as exc:
        raise MirrorError(
            f"{source}: {record.type} metadata is not readable ({exc}); "
            "the mirror is broken — use another"
        ) from exc


def fetch_repo(
    downloader: Downloader,
    repo_id: str,
    baseurls: Sequence[str],
    workdir: Path,
    types: Sequence[str] = ("primary",),
) -> Repo:
    """Fetch repomd.xml (from the first mirror that has it) and the named metadata files."""
    repo = fetch_repomd(downloader, repo_id, baseurls, workdir)
    fetch_records(downloader, repo, workdir, types)
    return repo


def fetch_repos(
    downloader: Downloader,
    sources: Sequence[tuple[str, Sequence[str]]],
    workdir: Path,
    types: Callable[[Repo], Sequence[str]] = lambda _repo: ("primary",),
) -> list[Repo]:
    """Several repositories in two round trips instead of two each: every repomd.xml at
    once, then every metadata file they name that ``types`` asks for, at once. ``sources``
    are (repo id, baseurls); the repos come back in that order; the first error wins."""

    def repomd(source: tuple[str, Sequence[str]]) -> Repo:
        return fetch_repomd(downloader, source[0], source[1], workdir)

    repos = parallel(repomd, sources, len(sources))
    fetch_records_of(downloader, [(repo, types(repo)) for repo in repos], workdir)
    return repos


class _Unreadable(Exception):
    def __init__(self, error: MirrorError) -> None:
        super().__init__(str(error))
        self.error = error


def fetch_repomd(
    downloader: Downloader, repo_id: str, baseurls: Sequence[str], workdir: Path
) -> Repo:
    """A repository's repomd.xml, parsed: revalidated against the copy a previous build
    kept (``If-None-Match``/``If-Modified-Since``; a ``304`` reuses it)."""
    candidates = [base + "repodata/repomd.xml" for base in baseurls]

    def accept(data: bytes, used: str) -> Repo:
        try:
            records = parse_repomd(data, used)
        except MirrorError as exc:
            raise _Unreadable(exc) from exc  # said as it is, not as "unreachable"
        first = candidates.index(used) if used in candidates else 0
        ordered = [baseurls[first]] + [b for i, b in enumerate(baseurls) if i != first]
        return Repo(repo_id, ordered, hashlib.sha256(data).hexdigest(), records)

    try:
        return downloader.get_current(candidates, f"{repo_id}-repomd.xml", workdir, accept)
    except _Unreadable as exc:
        raise exc.error from None
    except NotFoundError as exc:
        raise NotFoundError(
            f"no yum repository at {' or '.join(baseurls)} ({candidates[-1]} not found); "
            "check the mirror prefix, --arch and --channel"
        ) from exc
    except TooLargeError:
        raise
    except MirrorError as exc:
        raise MirrorError(
            f"mirror unreachable: {exc}; check the network, DNS and proxy (HTTPS_PROXY is "
            "honoured) or choose another mirror (`airdock mirrors`, e.g. --mirror aliyun)"
        ) from exc


def fetch_records(downloader: Downloader, repo: Repo, workdir: Path, types: Sequence[str]) -> None:
    fetch_records_of(downloader, [(repo, types)], workdir)


def fetch_records_of(
    downloader: Downloader, wanted: Sequence[tuple[Repo, Sequence[str]]], workdir: Path
) -> None:
    """The named metadata files of several repositories, all at once (each checked against
    repomd.xml's digest and size, and against its open-size before anything expands it)."""
    records = [
        (repo, repo.records[t])
        for repo, types in wanted
        for t in dict.fromkeys(types)
        if t in repo.records and t not in repo.files
    ]
    items = [
        Download(
            repo.urls(r.href),
            workdir / repo.id / Path(r.href).name,
            r.digest,
            r.size,
            label=f"{repo.id} {r.type} metadata",
            max_size=METADATA_LIMIT,
        )
        for repo, r in records
    ]
    for (repo, rec), got in zip(records, downloader.fetch_all(items, jobs=len(items) or 1)):
        check_uncompressed_size(got.path, rec, f"{repo.id} ({got.url or repo.baseurl})")
        repo.files[rec.type] = got.path


def group_record(repo: Repo) -> str | None:
    """The comps record type a repo has (uncompressed preferred: libcomps reads it)."""
    for kind in ("group", "group_gz", "group_xz"):
        if kind in repo.records:
            return kind
    return None


def core_group(comps_path: Path, group_id: str = "core") -> list[str]:
    """Mandatory and default package names of a comps group (``@core``: the minimal install)."""
    raw = comps_path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    elif raw[:6] == b"\xfd7zXZ\x00":
        import lzma

        raw = lzma.decompress(raw)
    comps = libcomps.Comps()
    comps.fromxml_str(raw.decode("utf-8"))
    for group in comps.groups:
        if group.id == group_id:
            kinds = (libcomps.PACKAGE_TYPE_MANDATORY, libcomps.PACKAGE_TYPE_DEFAULT)
            return sorted({p.name for p in group.packages if p.type in kinds})
    raise MirrorError(
        f"the comps file {comps_path.name} has no @{group_id} group; "
        "is --os-mirror a CentOS 7 vault?"
    )
