"""The one download primitive used for repodata, RPMs and image blobs.

Everything airdock fetches goes through :meth:`Downloader.fetch`, so every file
gets the same guarantees (after pip's ``network/download.py``):

* the response body is read raw (``decode_content=False``) and streamed into a
  temporary file while the digest is computed, so a ``Content-Encoding`` header
  can never change the bytes we hash;
* the file is renamed to its final name only after its size and digest verify;
  a partial file never sits under a final name;
* timeouts, connection resets, 5xx/429 answers and truncated bodies are retried
  with exponential backoff, resuming with ``Range`` when the server allows it;
  a digest mismatch is retried from scratch and then reported with the file,
  the expected and the actual digest;
* a list of URLs is tried in order (mirror fallback): a 404 moves on at once;
* redirects are followed by hand, dropping ``Authorization`` whenever the host
  changes (registries redirect blob downloads to storage hosts);
* a content-addressed cache keyed by digest makes a rebuild fetch nothing twice.

Progress is reported through a callback with byte counts; the CLI owns the bar.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import urljoin, urlsplit

import requests
import urllib3

from .errors import ChecksumError, MirrorError, NotFoundError
from .locks import FileLock

CHUNK = 1 << 16
# repomd.xml may say "sha" for sha1 (createrepo < 0.9); everything else is a hashlib name.
_ALGO_ALIASES = {"sha": "sha1"}
_RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}
_MAX_REDIRECTS = 5

ProgressCallback = Callable[[int], None]
T = TypeVar("T")
A = TypeVar("A")


@dataclass(frozen=True)
class Digest:
    """A checksum as metadata states it: algorithm name and lowercase hex value."""

    algo: str
    value: str

    @classmethod
    def of(cls, algo: str, value: str) -> Digest:
        algo = _ALGO_ALIASES.get(algo.lower(), algo.lower())
        if algo not in hashlib.algorithms_available:
            raise ValueError(f"unsupported checksum type {algo!r}")
        return cls(algo, value.lower())

    @classmethod
    def parse(cls, text: str) -> Digest:
        """Parse ``algo:hex`` as used by registries (``sha256:…``)."""
        algo, sep, value = text.partition(":")
        if not sep or not value:
            raise ValueError(f"not a digest: {text!r}")
        return cls.of(algo, value)

    def hasher(self) -> hashlib._Hash:
        return hashlib.new(self.algo)

    def __str__(self) -> str:
        return f"{self.algo}:{self.value}"


@dataclass(frozen=True)
class Download:
    """What to fetch: candidate URLs in fallback order, where to put it, what it must be."""

    urls: tuple[str, ...]
    dest: Path
    digest: Digest | None = None
    size: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    label: str = ""

    @property
    def name(self) -> str:
        return self.label or self.dest.name


@dataclass(frozen=True)
class Fetched:
    """A verified file on disk, with its sha256 (always) and where it came from."""

    path: Path
    sha256: str
    size: int
    url: str | None
    from_cache: bool


class TransientError(Exception):
    """A transient failure: worth another attempt (possibly resuming)."""


def file_digest(path: Path, algos: Iterable[str] = ("sha256",)) -> dict[str, str]:
    """Hash a file once with several algorithms."""
    hashers = {a: hashlib.new(a) for a in algos}
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK * 16):
            for h in hashers.values():
                h.update(chunk)
    return {a: h.hexdigest() for a, h in hashers.items()}


class Cache:
    """Content-addressed store: ``<root>/<algo>/<hex[:2]>/<hex>``.

    Entries are re-verified when used, so a damaged cache file is dropped and
    fetched again instead of poisoning a bundle. An entry being downloaded is locked
    (``<hex>.lock`` beside it), so builds sharing a cache fetch each file once.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path_for(self, digest: Digest) -> Path:
        return self.root / digest.algo / digest.value[:2] / digest.value

    def lookup(self, digest: Digest) -> tuple[Path, str] | None:
        """Return (path, sha256) of a verified entry, or None."""
        path = self.path_for(digest)
        if not path.is_file():
            return None
        sums = file_digest(path, {digest.algo, "sha256"})
        if sums[digest.algo] != digest.value:
            path.unlink(missing_ok=True)
            return None
        return path, sums["sha256"]

    def lock(self, digest: Digest) -> FileLock:
        """The lock a build holds while it downloads this entry (see :meth:`Downloader.fetch`)."""
        path = self.path_for(digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        return FileLock(
            path.with_name(path.name + ".lock"), holder=f"another airdock build fetching {digest}"
        )

    def store(self, tmp: Path, digest: Digest) -> Path:
        path = self.path_for(digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, path)
        return path


def place(src: Path, dest: Path) -> None:
    """Put a copy of ``src`` at ``dest`` (hard link when possible), atomically."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp{os.getpid()}.{threading.get_ident()}")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dest)


@dataclass
class Stats:
    """Counters a caller (or a test) can read after a build."""

    fetched: int = 0
    from_cache: int = 0
    network_bytes: int = 0
    retries: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **deltas: int) -> None:
        with self._lock:
            for key, delta in deltas.items():
                setattr(self, key, getattr(self, key) + delta)


class Downloader:
    """Fetches files with verification, retries, resume, fallback and a cache."""

    def __init__(
        self,
        cache: Cache | None = None,
        *,
        retries: int = 3,
        backoff: float = 0.5,
        timeout: tuple[float, float] = (10.0, 60.0),
        on_progress: ProgressCallback | None = None,
        user_agent: str = "airdock",
    ) -> None:
        self.cache = cache
        self.retries = retries
        self.backoff = backoff
        self.timeout = timeout
        self.on_progress = on_progress
        self.user_agent = user_agent
        self.stats = Stats()
        self._local = threading.local()

    # -- sessions -----------------------------------------------------------------
    def session(self) -> requests.Session:
        """One requests.Session per thread (Session is not documented thread-safe)."""
        sess = getattr(self._local, "session", None)
        if sess is None:
            sess = requests.Session()
            sess.headers["User-Agent"] = self.user_agent
            self._local.session = sess
        return sess

    def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None = None,
        *,
        stream: bool = False,
    ) -> requests.Response:
        """One HTTP request, following redirects by hand.

        ``Authorization`` is kept only while the scheme, host and port stay the
        same: a registry's token must never reach the storage host it redirects to.
        """
        hdrs = dict(headers or {})
        origin = urlsplit(url)[:2]
        for _ in range(_MAX_REDIRECTS + 1):
            try:
                resp = self.session().request(
                    method,
                    url,
                    headers=hdrs,
                    stream=stream,
                    timeout=self.timeout,
                    allow_redirects=False,
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                raise TransientError(f"cannot reach {url}: {_reason(exc)}") from exc
            if resp.is_redirect and "location" in resp.headers:
                url = urljoin(url, resp.headers["location"])
                resp.close()
                if urlsplit(url)[:2] != origin:
                    hdrs = {k: v for k, v in hdrs.items() if k.lower() != "authorization"}
                continue
            return resp
        raise MirrorError(f"too many redirects starting from {url}")

    # -- single file --------------------------------------------------------------
    def fetch(self, item: Download) -> Fetched:
        """Fetch one file into ``item.dest``; raise an AirdockError when it cannot.

        A file for the cache is downloaded under the cache entry's lock: a build that finds
        another downloading it waits, then takes it from the cache.
        """
        if item.digest and self.cache:
            hit = self._from_cache(item, self.cache, item.digest)
            if hit:
                return hit
            with self.cache.lock(item.digest):
                return self._from_cache(item, self.cache, item.digest) or self._download(item)
        return self._download(item)

    def _from_cache(self, item: Download, cache: Cache, digest: Digest) -> Fetched | None:
        hit = cache.lookup(digest)
        if not hit:
            return None
        path, sha256 = hit
        place(path, item.dest)
        size = item.dest.stat().st_size
        self.stats.add(from_cache=1)
        if self.on_progress:
            self.on_progress(size)
        return Fetched(item.dest, sha256, size, None, True)

    def _download(self, item: Download) -> Fetched:
        item.dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = item.dest.with_name(f".{item.dest.name}.part{os.getpid()}.{threading.get_ident()}")
        errors: list[str] = []
        not_found: list[str] = []
        mismatch: ChecksumError | None = None
        try:
            for url in item.urls:
                try:
                    sha256, size = self._fetch_url_with_retries(url, item, tmp)
                except NotFoundError as exc:
                    not_found.append(url)
                    errors.append(str(exc))
                    continue
                except ChecksumError as exc:
                    mismatch = exc
                    continue
                except MirrorError as exc:
                    errors.append(str(exc))
                    continue
                if item.digest and self.cache:
                    stored = self.cache.store(tmp, item.digest)
                    place(stored, item.dest)
                else:
                    os.replace(tmp, item.dest)
                self.stats.add(fetched=1)
                return Fetched(item.dest, sha256, size, url, False)
        finally:
            tmp.unlink(missing_ok=True)
        if mismatch is not None:
            raise mismatch
        if not_found and len(not_found) == len(item.urls):
            raise NotFoundError(errors[-1])
        raise MirrorError(errors[-1] if errors else f"no URL to fetch {item.name} from")

    def retrying(self, attempt: Callable[[], T]) -> T:
        """Call ``attempt`` until it stops raising TransientError, backing off exponentially."""
        last = ""
        for n in range(self.retries + 1):
            if n:
                self.stats.add(retries=1)
                time.sleep(self.backoff * (2 ** (n - 1)))
            try:
                return attempt()
            except TransientError as exc:
                last = str(exc)
        raise MirrorError(f"{last} (gave up after {self.retries + 1} attempts)")

    def _fetch_url_with_retries(self, url: str, item: Download, tmp: Path) -> tuple[str, int]:
        """Fetch from one URL; a digest mismatch is retried from scratch, then reported."""
        tmp.unlink(missing_ok=True)
        mismatch: list[ChecksumError] = []

        def once() -> tuple[str, int]:
            mismatch.clear()
            try:
                return self._fetch_once(url, item, tmp)
            except ChecksumError as exc:
                tmp.unlink(missing_ok=True)
                mismatch.append(exc)
                raise TransientError(str(exc)) from exc

        try:
            return self.retrying(once)
        except MirrorError:
            if mismatch:
                raise mismatch[0] from None
            raise

    def _fetch_once(self, url: str, item: Download, tmp: Path) -> tuple[str, int]:
        have = tmp.stat().st_size if tmp.exists() else 0
        headers = dict(item.headers)
        if have:
            headers["Range"] = f"bytes={have}-"
        resp = self.request("GET", url, headers, stream=True)
        with resp:
            if resp.status_code == 404 or resp.status_code == 410:
                raise NotFoundError(f"{url} not found (HTTP {resp.status_code})")
            if resp.status_code in _RETRY_STATUS:
                raise TransientError(f"{url} answered HTTP {resp.status_code}")
            if resp.status_code == 206 and have:
                mode = "ab"
            elif resp.status_code == 200:
                mode, have = "wb", 0
            else:
                raise MirrorError(f"{url} answered HTTP {resp.status_code} {resp.reason}")

            hashers = {"sha256": hashlib.sha256()}
            if item.digest and item.digest.algo != "sha256":
                hashers[item.digest.algo] = item.digest.hasher()
            if have:
                with open(tmp, "rb") as prev:
                    while chunk := prev.read(CHUNK * 16):
                        for h in hashers.values():
                            h.update(chunk)
            got = have
            try:
                with open(tmp, mode) as out:
                    for chunk in resp.raw.stream(CHUNK, decode_content=False):
                        out.write(chunk)
                        for h in hashers.values():
                            h.update(chunk)
                        got += len(chunk)
                        self.stats.add(network_bytes=len(chunk))
                        if self.on_progress:
                            self.on_progress(len(chunk))
            except (
                requests.RequestException,
                urllib3.exceptions.HTTPError,
                ConnectionError,
                TimeoutError,
            ) as exc:
                raise TransientError(
                    f"download of {url} broke off after {got} bytes: {_reason(exc)}"
                ) from exc

        if item.size is not None and got != item.size:
            if got < item.size:
                raise TransientError(f"{url} ended after {got} of {item.size} bytes")
            tmp.unlink(missing_ok=True)
            raise TransientError(f"{url} sent {got} bytes, the metadata says {item.size}")
        sha256 = hashers["sha256"].hexdigest()
        if item.digest:
            actual = hashers[item.digest.algo].hexdigest()
            if actual != item.digest.value:
                raise ChecksumError(
                    f"checksum mismatch for {item.name} from {url}: expected "
                    f"{item.digest.algo}:{item.digest.value}, got {item.digest.algo}:{actual}; "
                    "the mirror is stale or damaged — retry later or choose another mirror"
                )
        return sha256, got

    # -- many files ---------------------------------------------------------------
    def fetch_all(self, items: Sequence[Download], jobs: int = 4) -> list[Fetched]:
        """Fetch in parallel; results keep the order of ``items``; the first error wins."""
        return parallel(self.fetch, items, jobs)

    def get_bytes(
        self, urls: Sequence[str], label: str, workdir: Path, digest: Digest | None = None
    ) -> tuple[bytes, str]:
        """Fetch a small document (repomd.xml, a .repo file) and return (bytes, url)."""
        dest = workdir / f".{label}.download"
        got = self.fetch(Download(tuple(urls), dest, digest, label=label))
        try:
            return dest.read_bytes(), got.url or ""
        finally:
            dest.unlink(missing_ok=True)


def _reason(exc: BaseException) -> str:
    """The innermost, shortest description of a requests/urllib3 failure."""
    while exc.__context__ is not None and not str(exc):
        exc = exc.__context__
    text = str(exc) or type(exc).__name__
    for marker in ("Failed to establish a new connection: ", "Caused by "):
        if marker in text:
            text = text.split(marker, 1)[1]
    return text.strip(" ()'\"").split("'))")[0][:200]


def parallel(work: Callable[[A], T], items: Sequence[A], jobs: int) -> list[T]:
    """``work`` over ``items`` on up to ``jobs`` threads, results in order.

    The first error is raised and the work not yet started is cancelled.
    """
    if jobs <= 1 or len(items) <= 1:
        return [work(item) for item in items]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(work, item) for item in items]
        try:
            return [f.result() for f in futures]
        except BaseException:
            for f in futures:
                f.cancel()
            raise
