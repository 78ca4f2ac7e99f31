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

import base64
import binascii
import contextlib
import hashlib
import json
import os
import shutil
import socket
import stat
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urljoin, urlsplit

import requests
import requests.adapters
import urllib3
import urllib3.connection

from .digests import Digest, file_digest
from .errors import ChecksumError, MirrorError, NotFoundError
from .locks import FileLock
from .names import one_line

__all__ = [
    "Cache",
    "Digest",
    "Download",
    "Downloader",
    "Fetched",
    "NotModified",
    "file_digest",
    "parallel",
]

CHUNK = 1 << 16
RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}
_MAX_REDIRECTS = 5
# The slowest link a download may run at: every transfer must move this many bytes per
# ``timeout`` window, and every request must finish within timeout + its size at this rate.
MIN_RATE = 10 * 1024
DEFAULT_TIMEOUT = 60.0
# Caps for documents whose size no metadata states (a hostile server could send gigabytes).
DOCUMENT_LIMIT = 4 << 20  # repomd.xml, .repo files, registry manifests and indexes
SMALL_LIMIT = 1 << 20  # tokens, error bodies, tag lists
INDEX_SUFFIX = ".verified"  # beside a cache entry: what it hashed to, and when
VALIDATORS = ("etag", "last-modified")  # response headers a conditional request sends back

ProgressCallback = Callable[[int], None]
T = TypeVar("T")
A = TypeVar("A")


@dataclass(frozen=True)
class Download:
    """What to fetch: candidate URLs in fallback order, where to put it, what it must be."""

    urls: tuple[str, ...]
    dest: Path
    digest: Digest | None = None
    size: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    label: str = ""
    max_size: int | None = None  # a cap when ``size`` is unknown (documents)
    # per URL: If-None-Match/If-Modified-Since for the copy it served before (documents)
    conditional: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

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
    validators: Mapping[str, str] = field(default_factory=dict)  # the answer's ETag etc.


class TransientError(Exception):
    """A transient failure: worth another attempt (possibly resuming)."""


class NotModified(Exception):  # noqa: N818 - an answer, not an error
    """The server answered 304 to a conditional request: the copy it names is current."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.url = url


@dataclass(frozen=True)
class _Got:
    sha256: str
    size: int
    validators: dict[str, str]


class Cache:
    """Content-addressed store: ``<root>/<algo>/<hex[:2]>/<hex>``.

    Every entry is checked when used, so a damaged cache file is dropped and fetched again
    instead of poisoning a bundle. Checking does not mean hashing each time: beside each
    entry a small index (``<hex>.verified``: its sha256, size, mtime and inode when it was
    last hashed or stored) lets an unchanged entry be used without reading it; any change
    to the file (another size, mtime or inode) makes the next use hash it again, and
    ``verify=True`` (``--verify-cache``) hashes every entry used whatever its index says.
    An entry being downloaded is locked (``<hex>.lock`` beside it), so builds sharing a
    cache fetch each file once.
    """

    def __init__(self, root: Path, verify: bool = False) -> None:
        self.root = Path(root)
        self.verify = verify

    def path_for(self, digest: Digest) -> Path:
        """Where an entry lives: derived from a validated, strong digest only."""
        if not digest.strong:
            raise ValueError(f"{digest.algo} does not key the cache")
        return self.root / digest.algo / digest.value[:2] / digest.value

    def lookup(self, digest: Digest) -> tuple[Path, str] | None:
        """Return (path, sha256) of a verified entry, or None."""
        if not digest.strong:
            return None
        path = self.path_for(digest)
        try:
            before = path.stat()
        except OSError:
            return None
        if not stat.S_ISREG(before.st_mode):
            return None
        if not self.verify:
            known = self._indexed(path, digest, before)
            if known is not None:
                return path, known
        sums = file_digest(path, {digest.algo, "sha256"})
        if sums[digest.algo] != digest.value:
            path.unlink(missing_ok=True)
            _index_path(path).unlink(missing_ok=True)
            return None
        self._write_index(path, sums["sha256"], before)  # the state that was hashed
        return path, sums["sha256"]

    def documents(self) -> DocumentStore:
        """Where documents that change in place (repomd.xml) are kept with their validators."""
        return DocumentStore(self.root / "documents")

    def lock(self, digest: Digest) -> FileLock:
        """The lock a build holds while it downloads this entry (see :meth:`Downloader.fetch`)."""
        path = self.path_for(digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        return FileLock(
            path.with_name(path.name + ".lock"), holder=f"another airdock build fetching {digest}"
        )

    def store(self, tmp: Path, digest: Digest, sha256: str | None = None) -> Path:
        """Move a verified download into place (and index it under its ``sha256``)."""
        path = self.path_for(digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        before = tmp.stat()
        os.replace(tmp, path)
        if sha256 is not None:
            self._write_index(path, sha256, before)
        return path

    def touched(self, digest: Digest, sha256: str) -> None:
        """Re-index an entry whose times a build changed through a hard link (a bundle's
        RPMs are links to their entries and get the bundle's time) right after it read and
        verified the bytes: the next build then need not hash them again."""
        if not digest.strong:
            return
        path = self.path_for(digest)
        try:
            now = path.stat()
        except OSError:
            return
        found = _read_index(path)
        if found is not None and found[0] == sha256:
            self._write_index(path, sha256, now)

    def _indexed(self, path: Path, digest: Digest, now: os.stat_result) -> str | None:
        """The sha256 the index gives for the entry as it is now, or None (hash it)."""
        found = _read_index(path)
        if found is None or found[1] != _stamp(now):
            return None
        if digest.algo == "sha256" and found[0] != digest.value:
            return None
        return found[0]

    def _write_index(self, path: Path, sha256: str, st: os.stat_result) -> None:
        index = _index_path(path)
        tmp = index.with_name(f".{index.name}.tmp{os.getpid()}.{threading.get_ident()}")
        try:
            tmp.write_text(f"{sha256} {_stamp(st)}\n", encoding="ascii")
            os.replace(tmp, index)
        except OSError:
            tmp.unlink(missing_ok=True)  # no index: the entry is hashed next time


@dataclass(frozen=True)
class SavedDocument:
    body: bytes
    url: str  # the URL that served it: the only one asked conditionally for it
    validators: dict[str, str]

    def conditional(self) -> dict[str, str]:
        """The request headers that ask for this copy only if it changed."""
        found = {k.lower(): v for k, v in self.validators.items()}
        headers = {}
        if "etag" in found:
            headers["If-None-Match"] = found["etag"]
        if "last-modified" in found:
            headers["If-Modified-Since"] = found["last-modified"]
        return headers


class DocumentStore:
    """``<root>/<key>.json``: a document's body (base64), the URL that served it and its
    validators, keyed by the sha256 of its candidate URLs. One file, replaced atomically, so
    concurrent builds never mix one's body with another's validators; an unreadable or
    malformed entry is ignored (the document is fetched whole)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: Sequence[str]) -> Path:
        name = hashlib.sha256("\n".join(key).encode("utf-8")).hexdigest()
        return self.root / f"{name}.json"

    def load(self, key: Sequence[str]) -> SavedDocument | None:
        try:
            with open(self._path(key), "rb") as fh:
                raw = fh.read(DOCUMENT_LIMIT * 2)
            data = json.loads(raw)
            body = base64.b64decode(data["body"], validate=True)
            if hashlib.sha256(body).hexdigest() != data["sha256"]:
                return None
            validators = {str(k): str(v) for k, v in dict(data["validators"]).items()}
            return SavedDocument(body, str(data["url"]), validators)
        except (OSError, ValueError, KeyError, TypeError, binascii.Error):
            return None

    def save(self, key: Sequence[str], doc: SavedDocument) -> None:
        if not any(k.lower() in VALIDATORS for k in doc.validators):
            return  # nothing to revalidate it with
        path = self._path(key)
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}.{threading.get_ident()}")
        record = {
            "url": doc.url,
            "validators": doc.validators,
            "sha256": hashlib.sha256(doc.body).hexdigest(),
            "body": base64.b64encode(doc.body).decode("ascii"),
        }
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(record, sort_keys=True), encoding="utf-8")
            os.replace(tmp, path)
        except OSError:
            tmp.unlink(missing_ok=True)  # not kept: the next build fetches it whole


def _index_path(path: Path) -> Path:
    return path.with_name(path.name + INDEX_SUFFIX)


def _stamp(st: os.stat_result) -> str:
    """What changes when a file's bytes are rewritten or replaced: size, mtime, inode."""
    return f"{st.st_size} {st.st_mtime_ns} {st.st_ino}"


def _read_index(path: Path) -> tuple[str, str] | None:
    """(sha256, stamp) from an entry's index, or None when absent or malformed."""
    try:
        with open(_index_path(path), "rb") as fh:
            text = fh.read(256).decode("ascii")
    except (OSError, UnicodeDecodeError):
        return None
    sha256, _, stamp = text.strip().partition(" ")
    if len(sha256) != 64 or set(sha256) - set("0123456789abcdef") or len(stamp.split()) != 3:
        return None
    return sha256, stamp


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
    not_modified: int = 0  # conditional requests answered 304 (a cached copy reused)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **deltas: int) -> None:
        with self._lock:
            for key, delta in deltas.items():
                setattr(self, key, getattr(self, key) + delta)


class TooLargeError(MirrorError):
    """A server sent more than the metadata promised or a cap allows: not retried there."""


# -- deadlines: every request ends in time, however slowly a server answers ------------------
_sockets = threading.local()


def _thread_sockets() -> weakref.WeakSet[socket.socket]:
    found = getattr(_sockets, "set", None)
    if found is None:
        found = _sockets.set = weakref.WeakSet()
    return found


class _TrackedHTTPConnection(urllib3.connection.HTTPConnection):
    def connect(self) -> None:
        super().connect()
        _thread_sockets().add(self.sock)


class _TrackedHTTPSConnection(urllib3.connection.HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        _thread_sockets().add(self.sock)


class _TrackedHTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _TrackedHTTPConnection


class _TrackedHTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _TrackedHTTPSConnection


_TRACKED_POOLS = {"http": _TrackedHTTPPool, "https": _TrackedHTTPSPool}


class _TrackingAdapter(requests.adapters.HTTPAdapter):
    """An adapter whose connections register their sockets, so a deadline can cut them.

    requests has only per-read timeouts: a server that sends one byte a minute (in the
    headers or the body) would hold a build forever. The sockets a thread opened are
    shut down when its request's deadline passes; the blocked read then fails at once.
    """

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_TRACKED_POOLS)

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **kwargs)
        manager.pool_classes_by_scheme = dict(_TRACKED_POOLS)
        return manager


class Deadline:
    """``with Deadline(seconds, what):`` - past it, this thread's sockets are shut down and
    whatever the request raised becomes one TransientError saying so. Re-entrant: an inner
    deadline inside an active one is the outer one."""

    def __init__(self, seconds: float, what: str) -> None:
        self.seconds = seconds
        self.what = what
        self.expired = False
        self._timer: threading.Timer | None = None

    def _fire(self, sockets: list[weakref.ref[socket.socket]]) -> None:
        self.expired = True
        for ref in sockets:
            sock = ref()
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> Deadline:
        if getattr(_sockets, "deadline", None) is not None:
            return self  # nested: the outer deadline rules
        _sockets.deadline = self
        tracked = _thread_sockets()

        def fire() -> None:
            self._fire([weakref.ref(s) for s in list(tracked)])

        self._timer = threading.Timer(self.seconds, fire)
        self._timer.daemon = True
        self._timer.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        if self._timer is None:
            return
        self._timer.cancel()
        _sockets.deadline = None
        if self.expired and exc is not None and isinstance(exc, Exception):
            raise TransientError(
                f"{self.what}: no complete answer within {self.seconds:.0f} s (the link is "
                f"slower than {MIN_RATE // 1024} KiB/s or the server stalls; --timeout "
                "allows more)"
            ) from exc


def read_capped(resp: requests.Response, limit: int, what: str) -> bytes:
    """The body of ``resp`` (opened with stream=True), refusing more than ``limit`` bytes."""
    declared = resp.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        raise TooLargeError(
            f"{what} announces {int(declared)} bytes, more than the {limit} allowed; "
            "the server is broken or hostile — use another"
        )
    body = bytearray()
    try:
        for chunk in resp.raw.stream(CHUNK, decode_content=True):
            body += chunk
            if len(body) > limit:
                raise TooLargeError(
                    f"{what} is larger than the {limit} bytes allowed; "
                    "the server is broken or hostile — use another"
                )
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
        raise TransientError(f"{what} broke off after {len(body)} bytes: {_reason(exc)}") from exc
    return bytes(body)


class Downloader:
    """Fetches files with verification, retries, resume, fallback and a cache."""

    def __init__(
        self,
        cache: Cache | None = None,
        *,
        retries: int = 3,
        backoff: float = 0.5,
        timeout: float = DEFAULT_TIMEOUT,
        on_progress: ProgressCallback | None = None,
        on_retry: Callable[[str], None] | None = None,
        user_agent: str = "airdock",
    ) -> None:
        self.cache = cache
        self.retries = retries
        self.backoff = backoff
        self.timeout = timeout
        self.on_progress = on_progress
        self.on_retry = on_retry
        self.user_agent = user_agent
        self.stats = Stats()
        self._local = threading.local()

    def deadline(self, size: int, what: str) -> Deadline:
        """The whole request, ``size`` bytes at the slowest rate allowed plus one timeout."""
        return Deadline(self.timeout + size / MIN_RATE, what)

    # -- sessions -----------------------------------------------------------------
    def session(self) -> requests.Session:
        """One requests.Session per thread (Session is not documented thread-safe)."""
        sess = getattr(self._local, "session", None)
        if sess is None:
            sess = requests.Session()
            sess.headers["User-Agent"] = self.user_agent
            adapter = _TrackingAdapter()
            sess.mount("http://", adapter)
            sess.mount("https://", adapter)
            self._local.session = sess
        return sess

    def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None = None,
        *,
        stream: bool = False,
        limit: int = SMALL_LIMIT,
    ) -> requests.Response:
        """One HTTP request, following redirects by hand, within a deadline.

        ``Authorization`` is kept only while the scheme, host and port stay the
        same: a registry's token must never reach the storage host it redirects to.
        Without ``stream`` the body is read here, at most ``limit`` bytes (more is a
        TooLargeError), and is then ``resp.content``; with ``stream`` the caller reads it
        (inside its own deadline).
        """
        with self.deadline(limit, url):
            resp = self._follow(method, url, headers)
            if not stream:
                with resp:
                    body = read_capped(resp, limit, url)
                resp._content = body  # what requests itself stores for a non-streamed body
                resp._content_consumed = True  # type: ignore[attr-defined]
            return resp

    def _follow(
        self, method: str, url: str, headers: Mapping[str, str] | None
    ) -> requests.Response:
        hdrs = dict(headers or {})
        origin = urlsplit(url)[:2]
        for _ in range(_MAX_REDIRECTS + 1):
            try:
                resp = self.session().request(
                    method,
                    url,
                    headers=hdrs,
                    stream=True,
                    timeout=(min(10.0, self.timeout), self.timeout),
                    allow_redirects=False,
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                raise TransientError(f"cannot reach {url}: {_reason(exc)}") from exc
            except requests.RequestException as exc:
                raise MirrorError(f"cannot fetch {url}: {_reason(exc)}") from exc
            if resp.is_redirect and "location" in resp.headers:
                target = urljoin(url, resp.headers["location"])
                resp.close()
                if urlsplit(target).scheme not in ("http", "https"):
                    raise MirrorError(
                        f"{url} redirects to {one_line(target, 200)}, which is not an HTTP URL; "
                        "refusing it — use another mirror"
                    )
                url = target
                if urlsplit(url)[:2] != origin:
                    hdrs = {k: v for k, v in hdrs.items() if k.lower() != "authorization"}
                continue
            return resp
        raise MirrorError(f"too many redirects starting from {url}; use another mirror")

    # -- single file --------------------------------------------------------------
    def fetch(self, item: Download) -> Fetched:
        """Fetch one file into ``item.dest``; raise an AirdockError when it cannot.

        With a cache, the download is written inside the cache (beside its entry, so the
        entry appears by a rename on one filesystem) and then linked or copied to
        ``item.dest``, which may be on another filesystem (a USB stick). It happens under
        the cache entry's lock: a build that finds another downloading it waits, then takes
        it from the cache.
        """
        cached = item.digest if self.cache and item.digest and item.digest.strong else None
        if cached is None or self.cache is None:
            return self._download(item, item.dest.parent, None)
        hit = self._from_cache(item, self.cache, cached)
        if hit:
            return hit
        with self.cache.lock(cached):
            return self._from_cache(item, self.cache, cached) or self._download(
                item, self.cache.path_for(cached).parent, cached
            )

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

    def _download(self, item: Download, folder: Path, cached: Digest | None) -> Fetched:
        """Download into ``folder`` (the cache entry's, or the destination's), then place."""
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{item.dest.name}.part{os.getpid()}.{threading.get_ident()}"
        errors: list[str] = []
        not_found: list[str] = []
        mismatch: ChecksumError | None = None
        last: MirrorError | None = None
        try:
            for url in item.urls:
                try:
                    got = self._fetch_url_with_retries(url, item, tmp)
                except NotFoundError as exc:
                    not_found.append(url)
                    errors.append(str(exc))
                    continue
                except ChecksumError as exc:
                    mismatch = exc
                    continue
                except MirrorError as exc:
                    errors.append(str(exc))
                    last = exc
                    continue
                if cached is not None and self.cache is not None:
                    place(self.cache.store(tmp, cached, got.sha256), item.dest)
                else:
                    item.dest.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(tmp, item.dest)
                self.stats.add(fetched=1)
                return Fetched(item.dest, got.sha256, got.size, url, False, got.validators)
        finally:
            tmp.unlink(missing_ok=True)
        if mismatch is not None:
            raise mismatch
        if not_found and len(not_found) == len(item.urls):
            raise NotFoundError(errors[-1])
        if last is not None and str(last) == errors[-1]:
            raise last  # keeps its kind (TooLargeError is not "unreachable")
        raise MirrorError(errors[-1] if errors else f"no URL to fetch {item.name} from")

    def retrying(self, attempt: Callable[[], T], what: str = "") -> T:
        """Call ``attempt`` until it stops raising TransientError, backing off exponentially.

        Each retry is reported once (``on_retry``: which attempt and why); the final error
        names the last reason and the number of attempts.
        """
        last = ""
        attempts = self.retries + 1
        for n in range(attempts):
            if n:
                self.stats.add(retries=1)
                if self.on_retry:
                    of = f" of {what}" if what else ""
                    self.on_retry(f"retry {n}/{self.retries}{of}: {last}")
                time.sleep(self.backoff * (2 ** (n - 1)))
            try:
                return attempt()
            except TransientError as exc:
                last = str(exc)
        raise MirrorError(f"{last} (gave up after {attempts} attempts)")

    def _fetch_url_with_retries(self, url: str, item: Download, tmp: Path) -> _Got:
        """Fetch from one URL; a digest mismatch is retried from scratch, then reported."""
        tmp.unlink(missing_ok=True)
        mismatch: list[ChecksumError] = []

        def once() -> _Got:
            mismatch.clear()
            try:
                with self.deadline(item.size or item.max_size or DOCUMENT_LIMIT, url):
                    return self._fetch_once(url, item, tmp)
            except ChecksumError as exc:
                tmp.unlink(missing_ok=True)
                mismatch.append(exc)
                raise TransientError(str(exc)) from exc
            except TooLargeError:
                tmp.unlink(missing_ok=True)
                raise

        try:
            return self.retrying(once, item.name)
        except MirrorError:
            if mismatch:
                raise mismatch[0] from None
            raise

    def _fetch_once(self, url: str, item: Download, tmp: Path) -> _Got:
        have = tmp.stat().st_size if tmp.exists() else 0
        headers = dict(item.headers)
        if have:
            headers["Range"] = f"bytes={have}-"
        else:
            headers.update(item.conditional.get(url, {}))
        limit = item.size if item.size is not None else item.max_size
        resp = self.request("GET", url, headers, stream=True)
        with resp:
            if resp.status_code == 304 and not have and url in item.conditional:
                raise NotModified(url)
            if resp.status_code == 404 or resp.status_code == 410:
                raise NotFoundError(f"{url} not found (HTTP {resp.status_code})")
            if resp.status_code in RETRY_STATUS:
                raise TransientError(f"{url} answered HTTP {resp.status_code}")
            if resp.status_code == 416 and have:
                tmp.unlink(missing_ok=True)  # it cannot resume what it sent: start again
                raise TransientError(f"{url} cannot resume after {have} bytes (HTTP 416)")
            if resp.status_code == 206 and have:
                mode = "ab"
            elif resp.status_code == 200:
                mode, have = "wb", 0
            else:
                raise MirrorError(
                    f"{url} answered HTTP {resp.status_code} {one_line(resp.reason or '', 200)}"
                )
            declared = resp.headers.get("Content-Length", "")
            if limit is not None and declared.isdigit() and have + int(declared) > limit:
                raise TooLargeError(
                    f"{url} announces {have + int(declared)} bytes, "
                    f"{'the metadata says' if item.size is not None else 'the limit is'} "
                    f"{limit}; that mirror is broken or hostile — use another"
                )

            hashers = {"sha256": hashlib.sha256()}
            if item.digest and item.digest.algo != "sha256":
                hashers[item.digest.algo] = item.digest.hasher()
            if have:
                with open(tmp, "rb") as prev:
                    while chunk := prev.read(CHUNK * 16):
                        for h in hashers.values():
                            h.update(chunk)
            got = have
            window_start, window_bytes = time.monotonic(), 0
            try:
                with open(tmp, mode) as out:
                    for chunk in resp.raw.stream(CHUNK, decode_content=False):
                        if limit is not None and got + len(chunk) > limit:
                            raise TooLargeError(
                                f"{url} sent more than the {limit} bytes "
                                f"{'the metadata promises' if item.size is not None else 'allowed'}"
                                "; that mirror is broken or hostile — use another"
                            )
                        out.write(chunk)
                        for h in hashers.values():
                            h.update(chunk)
                        got += len(chunk)
                        window_bytes += len(chunk)
                        self.stats.add(network_bytes=len(chunk))
                        if self.on_progress:
                            self.on_progress(len(chunk))
                        now = time.monotonic()
                        if now - window_start >= self.timeout:
                            if window_bytes < MIN_RATE * self.timeout:
                                raise TransientError(
                                    f"{url} sent only {window_bytes} bytes in "
                                    f"{now - window_start:.0f} s (slower than "
                                    f"{MIN_RATE // 1024} KiB/s)"
                                )
                            window_start, window_bytes = now, 0
            except (
                requests.RequestException,
                urllib3.exceptions.HTTPError,
                ConnectionError,
                TimeoutError,
            ) as exc:
                raise TransientError(
                    f"download of {url} broke off after {got} bytes: {_reason(exc)}"
                ) from exc

        if item.size is not None and got < item.size:
            raise TransientError(f"{url} ended after {got} of {item.size} bytes")
        sha256 = hashers["sha256"].hexdigest()
        if item.digest:
            actual = hashers[item.digest.algo].hexdigest()
            if actual != item.digest.value:
                raise ChecksumError(
                    f"checksum mismatch for {item.name} from {url}: expected "
                    f"{item.digest.algo}:{item.digest.value}, got {item.digest.algo}:{actual}; "
                    "the mirror is stale or damaged — retry later or choose another mirror"
                )
        validators = {k: v for k, v in resp.headers.items() if k.lower() in VALIDATORS}
        return _Got(sha256, got, validators)

    # -- many files ---------------------------------------------------------------
    def fetch_all(self, items: Sequence[Download], jobs: int = 4) -> list[Fetched]:
        """Fetch in parallel; results keep the order of ``items``; the first error wins."""
        return parallel(self.fetch, items, jobs)

    def get_bytes(
        self,
        urls: Sequence[str],
        label: str,
        workdir: Path,
        digest: Digest | None = None,
        limit: int = DOCUMENT_LIMIT,
    ) -> tuple[bytes, str]:
        """Fetch a small document (repomd.xml, a .repo file), at most ``limit`` bytes."""
        dest = workdir / f".{label}.download"
        got = self.fetch(Download(tuple(urls), dest, digest, label=label, max_size=limit))
        try:
            return dest.read_bytes(), got.url or ""
        finally:
            dest.unlink(missing_ok=True)

    def get_current(
        self,
        urls: Sequence[str],
        label: str,
        workdir: Path,
        accept: Callable[[bytes, str], T],
        limit: int = DOCUMENT_LIMIT,
    ) -> T:
        """A small document that changes in place (repomd.xml), revalidated: the copy kept in
        the cache with its ``ETag``/``Last-Modified`` is asked for conditionally (of the URL
        that served it) and reused on ``304 Not Modified``. ``accept(body, url)`` checks and
        reads it; only a document it accepted is kept. Without a cache: :meth:`get_bytes`."""
        store = self.cache.documents() if self.cache is not None else None
        if store is None:
            return accept(*self.get_bytes(urls, label, workdir, limit=limit))
        key = tuple(urls)
        saved = store.load(key)
        conditional = {saved.url: saved.conditional()} if saved and saved.url in urls else {}
        dest = workdir / f".{label}.download"
        item = Download(key, dest, label=label, max_size=limit, conditional=conditional)
        try:
            got = self.fetch(item)
        except NotModified:
            if saved is None:  # (cannot be: only the URL that served it is asked conditionally)
                raise
            self.stats.add(not_modified=1)
            return accept(saved.body, saved.url)
        try:
            body = dest.read_bytes()
        finally:
            dest.unlink(missing_ok=True)
        url = got.url or urls[0]
        result = accept(body, url)
        store.save(key, SavedDocument(body, url, dict(got.validators)))
        return result


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
        return results([pool.submit(work, item) for item in items])


def results(futures: Sequence[Future[T]]) -> list[T]:
    """The futures' results in order; at the first error the ones not yet started are
    cancelled and the error is raised."""
    try:
        return [f.result() for f in futures]
    except BaseException:
        for f in futures:
            f.cancel()
        raise
