"""A counting, fault-injecting HTTP/1.1 file server on 127.0.0.1 (background thread).

    with MirrorServer(root) as server:          # or server = MirrorServer(root).start()
        server.url                              # "http://127.0.0.1:PORT"
        server.fail("/repomd.xml", status=503, times=2)
        ...
        server.count("repomd.xml")              # requests whose path equals / ends with it

Serving: GET and HEAD of files below ``root`` (``Content-Length`` always set,
``Accept-Ranges: bytes``, ``Last-Modified``, and for files on disk an ``ETag`` made of
size and mtime in nanoseconds, as nginx's); a request without ``Range`` whose
``If-None-Match`` names the current ETag (or, without ``If-None-Match``, whose
``If-Modified-Since`` is not older than the file) gets ``304 Not Modified``;
``Range: bytes=N-`` / ``bytes=N-M`` / ``bytes=-N`` give 206 with ``Content-Range``
(416 when unsatisfiable); a directory answers with an autoindex page (301 to the
slash form first, like nginx); anything else is 404.

Recording: ``server.requests`` is a list of ``Request(method, path, headers)``
(path without the query string, headers as a plain dict); ``server.log`` has a
dict per request with the status and body bytes actually sent;
``server.count(path_or_suffix, method=None)``; ``server.reset()`` clears the
records AND every rule, delay and rate.

Faults (``path`` matches a request path exactly or as a suffix, like ``count``;
``times=None`` means every time, otherwise the rule fires that many times and
then the path is served normally again):

``fail(path, status=503, times=1)``     answer ``status`` with a short body
``corrupt(path, times=None)``           same length, one byte flipped (the middle byte)
``truncate(path, times=1)``             full Content-Length, connection closed after half
``override(path, body, times=None)``    serve ``body`` (bytes) instead of the file
``redirect(path_prefix, to_base, status=307, times=None)``  Location = to_base + rest
``slow(path, seconds, times=None)``     sleep before answering that path
``reset(path, times=None)``             read the request, then close with a TCP reset
``lie_length(path, length, times=None)``  announce ``length`` bytes, send the file, hang up
``endless(path, times=None)``           200 with no Content-Length, zeros until the client
                                        hangs up (a response of unbounded size)
``trickle(path, rate, times=None)``     headers and body at ``rate`` bytes/second
``server.delay``                        seconds to sleep before every response
``server.rate``                         bytes/second cap per response (None = unlimited)

Rules fire in the order they were added; the first matching rule with
remaining ``times`` is consumed.  ``server.stop()`` (or leaving the ``with``)
shuts the server down and joins its thread.
"""

from __future__ import annotations

import contextlib
import email.utils
import html
import os
import socket
import struct
import threading
import time
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import NamedTuple


class Request(NamedTuple):
    method: str
    path: str
    headers: dict


@dataclass
class _Rule:
    kind: str  # fail | corrupt | truncate | override | redirect | slow | reset | ...
    path: str
    times: int | None
    status: int = 503
    body: bytes = b""
    to_base: str = ""
    seconds: float = 0.0
    length: int = 0

    def matches(self, path: str) -> bool:
        if self.kind == "redirect":
            return path.startswith(self.path)
        return _path_matches(path, self.path)


def _path_matches(path: str, pattern: str) -> bool:
    return path == pattern or path.endswith(pattern)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    owner: MirrorServer

    def handle_error(self, request, client_address) -> None:
        """A client that hangs up (a closed keep-alive connection) is normal, not an error."""
        import sys

        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "airdock-rig/1"
    server: _Server

    def log_message(self, format, *args):  # noqa: A002 - silence the default stderr log
        pass

    def do_GET(self):  # noqa: N802
        self.server.owner._handle(self, head=False)

    def do_HEAD(self):  # noqa: N802
        self.server.owner._handle(self, head=True)


class MirrorServer:
    def __init__(self, root: Path, host: str = "127.0.0.1", port: int = 0):
        self.root = Path(root).resolve()
        self.host = host
        self._requested_port = port
        self._lock = threading.Lock()
        self._rules: list[_Rule] = []
        self.requests: list[Request] = []
        self.log: list[dict] = []
        self.delay: float = 0.0
        self.rate: float | None = None
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> MirrorServer:
        httpd = _Server((self.host, self._requested_port), _Handler)
        httpd.owner = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True,
            name=f"rig-http-{httpd.server_address[1]}",
        )  # fmt: skip
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> MirrorServer:
        return self.start() if self._httpd is None else self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("server not started")
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # ------------------------------------------------------------------ records

    def count(self, path_or_suffix: str, method: str | None = None) -> int:
        with self._lock:
            return sum(
                1
                for r in self.requests
                if _path_matches(r.path, path_or_suffix) and method in (None, r.method)
            )

    def paths(self, method: str | None = None) -> list[str]:
        with self._lock:
            return [r.path for r in self.requests if method in (None, r.method)]

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.log.clear()
            self._rules.clear()
            self.delay = 0.0
            self.rate = None

    # ------------------------------------------------------------------ faults

    def _add(self, rule: _Rule) -> None:
        if rule.times is not None and rule.times < 1:
            raise ValueError("times must be >= 1 or None")
        with self._lock:
            self._rules.append(rule)

    def fail(self, path: str, status: int = 503, times: int | None = 1) -> None:
        self._add(_Rule("fail", path, times, status=status))

    def corrupt(self, path: str, times: int | None = None) -> None:
        self._add(_Rule("corrupt", path, times))

    def truncate(self, path: str, times: int | None = 1) -> None:
        self._add(_Rule("truncate", path, times))

    def override(self, path: str, body: bytes, times: int | None = None) -> None:
        self._add(_Rule("override", path, times, body=bytes(body)))

    def redirect(
        self, path_prefix: str, to_base: str, status: int = 307, times: int | None = None
    ) -> None:
        self._add(_Rule("redirect", path_prefix, times, status=status, to_base=to_base))

    def slow(self, path: str, seconds: float, times: int | None = None) -> None:
        self._add(_Rule("slow", path, times, seconds=seconds))

    def reset_connection(self, path: str, times: int | None = None) -> None:
        self._add(_Rule("reset", path, times))

    def lie_length(self, path: str, length: int, times: int | None = None) -> None:
        self._add(_Rule("lie_length", path, times, length=length))

    def endless(self, path: str, times: int | None = None) -> None:
        self._add(_Rule("endless", path, times))

    def trickle(self, path: str, rate: float, times: int | None = None) -> None:
        self._add(_Rule("trickle", path, times, seconds=rate))

    def pending(self) -> int:
        """Number of rules that can still fire (``times=None`` rules always count)."""
        with self._lock:
            return len(self._rules)

    def _take_rules(self, path: str) -> list[_Rule]:
        """Consume the rules for this request: every matching 'slow' plus the first other."""
        taken: list[_Rule] = []
        with self._lock:
            primary_taken = False
            for rule in list(self._rules):
                if not rule.matches(path):
                    continue
                if rule.kind != "slow":
                    if primary_taken:
                        continue
                    primary_taken = True
                taken.append(rule)
                if rule.times is not None:
                    rule.times -= 1
                    if rule.times == 0:
                        self._rules.remove(rule)
        return taken

    # ------------------------------------------------------------------ serving

    def _record(self, handler: _Handler, path: str, query: str) -> dict:
        entry = {"method": handler.command, "path": path, "query": query, "status": None,
                 "sent": 0, "time": time.time()}  # fmt: skip
        with self._lock:
            self.requests.append(Request(handler.command, path, dict(handler.headers.items())))
            self.log.append(entry)
        return entry

    def _handle(self, h: _Handler, head: bool) -> None:
        parsed = urllib.parse.urlsplit(h.path)
        path = urllib.parse.unquote(parsed.path)
        entry = self._record(h, path, parsed.query)
        rules = self._take_rules(path)
        for rule in rules:
            if rule.kind == "slow":
                time.sleep(rule.seconds)
        if self.delay:
            time.sleep(self.delay)
        primary = next((r for r in rules if r.kind != "slow"), None)
        try:
            self._respond(h, head, path, parsed, primary, entry)
        except (BrokenPipeError, ConnectionResetError):
            h.close_connection = True

    def _simple(self, h, entry, status, body: bytes, head, headers=None, ctype="text/plain"):
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        entry["status"] = status  # before the client can see the answer (no body may follow)
        h.end_headers()
        if not head:
            entry["sent"] = len(body)
            h.wfile.write(body)

    def _hostile(self, h, path, rule, entry) -> bool:
        """The faults that break HTTP itself; True when the request was answered here."""
        if rule.kind == "reset":
            h.close_connection = True
            h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                    struct.pack("ii", 1, 0))  # fmt: skip
            entry["status"] = "reset"
            return True
        if rule.kind == "endless":
            h.close_connection = True
            h.send_response(200)
            h.send_header("Content-Type", _content_type(path))
            h.send_header("Connection", "close")
            h.end_headers()
            entry["status"] = 200
            zeros = b"\0" * 65536
            with contextlib.suppress(OSError):
                for _ in range(1 << 15):  # 2 GiB at most, stops when the client hangs up
                    h.wfile.write(zeros)
                    entry["sent"] += len(zeros)
            return True
        target = self._resolve(path)
        data = target.read_bytes() if target is not None and target.is_file() else b""
        if rule.kind == "lie_length":
            h.close_connection = True
            h.send_response(200)
            h.send_header("Content-Type", _content_type(path))
            h.send_header("Content-Length", str(rule.length))
            h.end_headers()
            entry["status"] = 200
            with contextlib.suppress(OSError):
                self._write(h, data, entry)
                h.wfile.flush()
                h.connection.shutdown(socket.SHUT_RDWR)
            return True
        if rule.kind == "trickle":
            h.close_connection = True
            head = (
                f"HTTP/1.1 200 OK\r\nContent-Type: {_content_type(path)}\r\n"
                f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
            ).encode()
            entry["status"] = 200
            with contextlib.suppress(OSError):
                for i in range(len(head + data)):
                    h.wfile.write((head + data)[i : i + 1])
                    h.wfile.flush()
                    entry["sent"] += 1
                    time.sleep(1 / rule.seconds)
            return True
        return False

    def _respond(self, h, head, path, parsed, rule, entry) -> None:
        if rule is not None and rule.kind in ("reset", "endless", "lie_length", "trickle"):
            self._hostile(h, path, rule, entry)
            return
        if rule is not None and rule.kind == "fail":
            self._simple(h, entry, rule.status, f"injected {rule.status}\n".encode(), head)
            return
        if rule is not None and rule.kind == "redirect":
            rest = path[len(rule.path) :]
            location = rule.to_base.rstrip("/") + "/" + rest.lstrip("/")
            if parsed.query:
                location += "?" + parsed.query
            self._simple(h, entry, rule.status, b"", head, {"Location": location})
            return

        etag = None
        if rule is not None and rule.kind == "override":
            data, mtime = rule.body, time.time()
        else:
            target = self._resolve(path)
            if target is None or not (target.is_file() or target.is_dir()):
                self._simple(h, entry, 404, b"404 not found\n", head)
                return
            if target.is_dir():
                if not path.endswith("/"):
                    location = urllib.parse.quote(path + "/")
                    self._simple(h, entry, 301, b"", head, {"Location": location})
                    return
                body = self._index(target, path)
                self._simple(h, entry, 200, body, head, ctype="text/html; charset=utf-8")
                return
            data = target.read_bytes()
            st = target.stat()
            mtime, etag = st.st_mtime, f'"{st.st_size:x}-{st.st_mtime_ns:x}"'
        if rule is not None and rule.kind == "corrupt" and data:
            mid = len(data) // 2
            data = data[:mid] + bytes([data[mid] ^ 0xFF]) + data[mid + 1 :]
            etag = None
        validators = {"Last-Modified": email.utils.formatdate(mtime, usegmt=True)}
        if etag is not None:
            validators["ETag"] = etag
            if not h.headers.get("Range") and _not_modified(h.headers, etag, mtime):
                self._simple(h, entry, 304, b"", True, validators)
                return

        size = len(data)
        start, end, status = 0, size - 1, 200
        range_header = h.headers.get("Range")
        if range_header:
            parsed_range = _parse_range(range_header, size)
            if parsed_range is None:
                self._simple(h, entry, 416, b"", head, {"Content-Range": f"bytes */{size}"})
                return
            (start, end), status = parsed_range, 206
        body = data[start : end + 1] if size else b""
        h.send_response(status)
        h.send_header("Content-Type", _content_type(path))
        h.send_header("Content-Length", str(len(body)))
        h.send_header("Accept-Ranges", "bytes")
        for name, value in validators.items():
            h.send_header(name, value)
        if status == 206:
            h.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        truncating = rule is not None and rule.kind == "truncate" and not head
        if truncating:
            h.send_header("Connection", "close")
        h.end_headers()
        entry["status"] = status
        if head:
            return
        if truncating:
            h.close_connection = True
            half = body[: len(body) // 2]
            self._write(h, half, entry)
            h.wfile.flush()
            with contextlib.suppress(OSError):
                h.connection.shutdown(socket.SHUT_RDWR)
            return
        self._write(h, body, entry)

    def _write(self, h, data: bytes, entry) -> None:
        rate = self.rate
        if not rate:
            entry["sent"] += len(data)
            h.wfile.write(data)
            return
        chunk = max(1, int(rate / 20))
        for i in range(0, len(data), chunk):
            piece = data[i : i + chunk]
            entry["sent"] += len(piece)
            h.wfile.write(piece)
            h.wfile.flush()
            time.sleep(len(piece) / rate)

    def _resolve(self, path: str) -> Path | None:
        parts = [p for p in path.split("/") if p not in ("", ".")]
        if ".." in parts:
            return None
        target = self.root.joinpath(*parts) if parts else self.root
        try:
            target.resolve().relative_to(self.root)
        except ValueError:
            return None
        return target

    @staticmethod
    def _index(directory: Path, path: str) -> bytes:
        rows = []
        for entry in sorted(directory.iterdir(), key=lambda p: p.name):
            name = entry.name + ("/" if entry.is_dir() else "")
            href = urllib.parse.quote(name)
            rows.append(f'<a href="{href}">{html.escape(name)}</a>')
        title = html.escape(f"Index of {path}")
        return (
            f"<html><head><title>{title}</title></head><body><h1>{title}</h1><hr><pre>\n"
            '<a href="../">../</a>\n' + "\n".join(rows) + "\n</pre><hr></body></html>\n"
        ).encode()


def _not_modified(headers, etag: str, mtime: float) -> bool:
    """RFC 9110 13.1: If-None-Match decides when present; else If-Modified-Since."""
    match = headers.get("If-None-Match")
    if match is not None:
        return match.strip() == "*" or etag in [t.strip() for t in match.split(",")]
    since = headers.get("If-Modified-Since")
    if since is None:
        return False
    try:
        when = email.utils.parsedate_to_datetime(since).timestamp()
    except (TypeError, ValueError):
        return False
    return int(mtime) <= when


def _parse_range(value: str, size: int) -> tuple[int, int] | None:
    """One ``bytes=`` range -> (start, end) inclusive, or None when unsatisfiable."""
    value = value.strip()
    if not value.startswith("bytes=") or "," in value:
        return None
    spec = value[len("bytes=") :].strip()
    first, _, last = spec.partition("-")
    try:
        if first == "":
            n = int(last)
            if n <= 0 or size == 0:
                return None
            return max(0, size - n), size - 1
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return None
    if start >= size or end < start:
        return None
    return start, min(end, size - 1)


_TYPES = {
    ".rpm": "application/x-rpm",
    ".xml": "text/xml",
    ".gz": "application/x-gzip",
    ".bz2": "application/x-bzip2",
    ".repo": "text/plain",
    ".asc": "text/plain",
}


def _content_type(path: str) -> str:
    return _TYPES.get(os.path.splitext(path)[1], "application/octet-stream")


def serve(root: Path) -> MirrorServer:
    """Start a server for ``root``; the caller stops it (``stop()``)."""
    return MirrorServer(root).start()
