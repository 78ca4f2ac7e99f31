"""A far mirror on 127.0.0.1: one shared link (token bucket), added latency, counted requests.

``LinkServer(link, root=DIR)`` serves files like nginx would (``ETag``, ``Last-Modified``,
``304`` on ``If-None-Match``/``If-Modified-Since``, single ``Range``), and
``LinkServer(link, upstream="http://127.0.0.1:PORT")`` is a reverse proxy (the rig's
docker-registry). Either way every response waits ``link.latency`` seconds first (the round
trip of a far mirror) and every body byte goes through ``link``'s token bucket, which ALL
connections share: parallel downloads split the link, they do not multiply it (a cap per
connection would flatter ``--jobs 8``).

Each request is recorded (method, path, kind, status, bytes sent, whether it was
conditional) so the bench can say what a build fetched: ``repomd`` (repomd.xml),
``metadata`` (anything else under repodata/), ``rpm``, ``registry`` (``/v2/``), ``other``.
"""

from __future__ import annotations

import contextlib
import email.utils
import http.client
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

CHUNK = 64 * 1024
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
    "host",
    "content-length",
}


@dataclass
class Hit:
    method: str
    path: str
    kind: str
    status: int
    sent: int
    conditional: bool
    arrived: float = 0.0  # time.monotonic() when the request arrived
    done: float = 0.0  # ... and when its last byte was written


@dataclass
class Link:
    """``rate`` bytes/second shared by every connection (None: unlimited), ``latency`` s."""

    rate: float | None
    latency: float
    hits: list[Hit] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _free_at: float = 0.0

    def pace(self, nbytes: int) -> None:
        """Wait for the link to be free, then book ``nbytes`` on it (FIFO, one link)."""
        if not self.rate:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._free_at)
            self._free_at = start + nbytes / self.rate
        if start > now:
            time.sleep(start - now)

    def record(self, hit: Hit) -> None:
        with self._lock:
            self.hits.append(hit)

    def reset(self) -> list[Hit]:
        with self._lock:
            hits, self.hits = self.hits, []
            return hits


def kind_of(path: str) -> str:
    if path.startswith("/v2/"):
        return "registry"
    if path.endswith("/repomd.xml"):
        return "repomd"
    if "/repodata/" in path:
        return "metadata"
    if path.endswith(".rpm"):
        return "rpm"
    return "other"


def summarize(hits: list[Hit]) -> dict[str, dict[str, int]]:
    """kind -> {requests, bytes, not_modified, conditional} (plus "all")."""
    out: dict[str, Counter[str]] = {}
    for hit in hits:
        for key in (hit.kind, "all"):
            c = out.setdefault(key, Counter())
            c["requests"] += 1
            c["bytes"] += hit.sent
            c["not_modified"] += hit.status == 304
            c["conditional"] += hit.conditional
    return {k: dict(v) for k, v in sorted(out.items())}


def timeline(hits: list[Hit], start: float) -> dict[str, float | None]:
    """When (seconds after ``start``, the process's launch) the build reached the link:
    first request (CLI start-up before it), first RPM request (metadata and solving before
    it), last RPM byte; what follows the last byte is verification and writing."""

    def first(times: list[float]) -> float | None:
        return round(min(times) - start, 3) if times else None

    rpms = [h for h in hits if h.kind == "rpm"]
    return {
        "first_request": first([h.arrived for h in hits]),
        "first_rpm_request": first([h.arrived for h in rpms]),
        "last_rpm_byte": round(max(h.done for h in rpms) - start, 3) if rpms else None,
        "last_byte": round(max(h.done for h in hits) - start, 3) if hits else None,
    }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client hanging up mid-body is normal (timeouts, cancelled retries)


class LinkServer:
    def __init__(self, link: Link, *, root: Path | None = None, upstream: str | None = None):
        if (root is None) == (upstream is None):
            raise ValueError("give root or upstream")
        self.link = link
        self.root = root.resolve() if root else None
        self.upstream = urllib.parse.urlsplit(upstream) if upstream else None
        self._httpd = _Server(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LinkServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 30

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

            def do_GET(self) -> None:  # noqa: N802
                server._handle(self, head=False)

            def do_HEAD(self) -> None:  # noqa: N802
                server._handle(self, head=True)

        return Handler

    # ------------------------------------------------------------------ serving

    def _handle(self, h: BaseHTTPRequestHandler, head: bool) -> None:
        path = urllib.parse.unquote(urllib.parse.urlsplit(h.path).path)
        conditional = bool(h.headers.get("If-None-Match") or h.headers.get("If-Modified-Since"))
        arrived = time.monotonic()
        time.sleep(self.link.latency)
        try:
            if self.root is not None:
                status, sent = self._file(h, path, head)
            else:
                status, sent = self._proxy(h, head)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            h.close_connection = True
            status, sent = 499, 0
        self.link.record(
            Hit(
                h.command, path, kind_of(path), status, sent, conditional, arrived, time.monotonic()
            )
        )

    def _body(self, h: BaseHTTPRequestHandler, chunks: Iterable[bytes]) -> int:
        sent = 0
        for chunk in chunks:
            self.link.pace(len(chunk))
            h.wfile.write(chunk)
            sent += len(chunk)
        return sent

    def _simple(self, h: BaseHTTPRequestHandler, status: int, head: bool) -> tuple[int, int]:
        body = f"{status}\n".encode()
        h.send_response(status)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if not head:
            h.wfile.write(body)
        return status, 0 if head else len(body)

    def _file(self, h: BaseHTTPRequestHandler, path: str, head: bool) -> tuple[int, int]:
        assert self.root is not None
        target = (self.root / path.lstrip("/")).resolve()
        if not target.is_relative_to(self.root) or not target.is_file():
            return self._simple(h, 404, head)
        st = target.stat()
        etag = f'"{int(st.st_mtime):x}-{st.st_size:x}"'
        last_modified = email.utils.formatdate(int(st.st_mtime), usegmt=True)
        inm, ims = h.headers.get("If-None-Match"), h.headers.get("If-Modified-Since")
        fresh = False
        if inm:
            fresh = etag in [t.strip() for t in inm.split(",")] or inm.strip() == "*"
        elif ims:
            with contextlib.suppress(TypeError, ValueError):
                fresh = email.utils.parsedate_to_datetime(ims).timestamp() >= int(st.st_mtime)
        if fresh:
            h.send_response(304)
            h.send_header("ETag", etag)
            h.send_header("Last-Modified", last_modified)
            h.end_headers()
            return 304, 0
        start, end, status = 0, st.st_size - 1, 200
        rng = h.headers.get("Range", "")
        if rng.startswith("bytes=") and "," not in rng:
            first, _, last = rng[6:].partition("-")
            try:
                if first:
                    start, end = int(first), min(int(last) if last else end, end)
                else:
                    start = max(0, st.st_size - int(last))
            except ValueError:
                return self._simple(h, 416, head)
            if start > end:
                return self._simple(h, 416, head)
            status = 206
        h.send_response(status)
        h.send_header("Content-Length", str(end - start + 1))
        h.send_header("Accept-Ranges", "bytes")
        h.send_header("ETag", etag)
        h.send_header("Last-Modified", last_modified)
        if status == 206:
            h.send_header("Content-Range", f"bytes {start}-{end}/{st.st_size}")
        h.end_headers()
        if head:
            return status, 0
        with open(target, "rb") as f:
            f.seek(start)
            left = end - start + 1

            def chunks() -> Iterator[bytes]:
                nonlocal left
                while left > 0:
                    data = f.read(min(CHUNK, left))
                    if not data:
                        return
                    left -= len(data)
                    yield data

            return status, self._body(h, chunks())

    def _proxy(self, h: BaseHTTPRequestHandler, head: bool) -> tuple[int, int]:
        assert self.upstream is not None
        conn = http.client.HTTPConnection(
            self.upstream.hostname or "127.0.0.1", self.upstream.port, timeout=60
        )
        try:
            # putheader, not a dict: clients repeat headers (skopeo sends several Accept)
            conn.putrequest(h.command, h.path, skip_host=True, skip_accept_encoding=True)
            conn.putheader("Host", self.upstream.netloc)
            for k, v in h.headers.items():
                if k.lower() not in HOP_BY_HOP:
                    conn.putheader(k, v)
            conn.endheaders()
            resp = conn.getresponse()
            length = resp.getheader("Content-Length")
            h.send_response(resp.status, resp.reason)
            for k, v in resp.getheaders():
                if k.lower() not in HOP_BY_HOP:
                    h.send_header(k, v)
            if head or resp.status in (204, 304):
                if length is not None:
                    h.send_header("Content-Length", length)
                h.end_headers()
                return resp.status, 0
            if length is None:
                data = resp.read()
                h.send_header("Content-Length", str(len(data)))
                h.end_headers()
                return resp.status, self._body(
                    h, [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]
                )
            h.send_header("Content-Length", length)
            h.end_headers()
            return resp.status, self._body(h, iter(lambda: resp.read(CHUNK), b""))
        finally:
            conn.close()
