"""Real registries for the tests: Debian's ``docker-registry`` plus small helpers.

* :class:`TokenServer` — the token endpoint of the distribution "token"
  auth scheme, in a thread: RS256 JWTs (pyjwt) whose header carries the
  signing certificate (``x5c``), which the registry checks against its
  ``rootcertbundle``. Anonymous users get ``pull`` except on repositories under
  ``private/``; a user with the right password gets ``pull,push``.
* :func:`start_registry` — ``docker-registry serve CONFIG`` on 127.0.0.1 with a
  free port and storage in a temporary folder, with or without token auth.
* :class:`FrontProxy` — a proxy in front of a registry that answers blob GETs
  with ``307`` to a second host (127.0.0.2, like a registry's CDN) which refuses
  and records any request carrying ``Authorization``; it can also corrupt a blob
  or a manifest on the way.

Every process is stopped by its PID; threads are shut down.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import http.server
import json
import re
import secrets
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import jwt
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from .tools import need, stop_process

SERVICE = "airdock-test-registry"
ISSUER = "airdock-test-token-server"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


def _serve(handler: type, host: str = "127.0.0.1") -> tuple[_Server, threading.Thread]:
    server = _Server((host, 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    return server, thread


class _Quiet(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def reply(
        self, status: int, body: bytes = b"", headers: dict | None = None, cut: bool = False
    ) -> None:
        """Answer with ``body``; ``cut``: announce its full length, send half, hang up."""
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        if cut:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body[: len(body) // 2] if cut else body)


# -- token server ---------------------------------------------------------------------------


@dataclass
class TokenRequest:
    user: str | None  # None: anonymous
    scopes: list[str]
    granted: list[dict]
    refused: bool = False


class TokenServer:
    """Issues registry tokens; ``requests`` records every token request."""

    def __init__(self, workdir: Path, users: dict[str, str] | None = None) -> None:
        self.users = users if users is not None else {"pusher": "s3cret-pw"}
        self.requests: list[TokenRequest] = []
        self.cert_path = workdir / "token-cert.pem"
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ISSUER)])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        workdir.mkdir(parents=True, exist_ok=True)
        self.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self._x5c = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
        self._pem = self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        self._server, self._thread = _serve(self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.realm = f"{self.url}/token"

    def _handler(self) -> type:
        owner = self

        class Handler(_Quiet):
            def do_GET(self) -> None:  # noqa: N802
                query = parse_qs(urlsplit(self.path).query)
                user = owner._check(self.headers.get("Authorization"))
                scopes = [s for v in query.get("scope", []) for s in v.split(" ")]
                if user is False:
                    owner.requests.append(TokenRequest("?", scopes, [], refused=True))
                    body = json.dumps({"errors": [{"code": "UNAUTHORIZED"}]}).encode()
                    self.reply(401, body, {"Content-Type": "application/json"})
                    return
                access = owner._grant(user, scopes)
                owner.requests.append(TokenRequest(user, scopes, access))
                token = owner.issue(user or "", access, query.get("service", [SERVICE])[0])
                body = json.dumps({"token": token, "access_token": token, "expires_in": 300})
                self.reply(200, body.encode(), {"Content-Type": "application/json"})

        return Handler

    def _check(self, header: str | None) -> str | None | bool:
        """The user name, None for anonymous, False for wrong credentials."""
        if not header:
            return None
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        if user in self.users and secrets.compare_digest(self.users[user], password):
            return user
        return False

    def _grant(self, user: str | None, scopes: list[str]) -> list[dict]:
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            if kind != "repository" or not name:
                continue
            wanted = [a for a in actions.split(",") if a]
            if user:
                allowed = wanted
            elif name.startswith("private/"):
                allowed = []
            else:
                allowed = [a for a in wanted if a == "pull"]
            access.append({"type": "repository", "name": name, "actions": allowed})
        return access

    def issue(self, subject: str, access: list[dict], service: str = SERVICE) -> str:
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "sub": subject,
            "aud": service,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        return jwt.encode(claims, self._pem, algorithm="RS256", headers={"x5c": [self._x5c]})

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


# -- docker-registry ------------------------------------------------------------------------


@dataclass
class Registry:
    """A running ``docker-registry``; ``host`` is ``127.0.0.1:PORT``."""

    host: str
    root: Path
    process: subprocess.Popen
    log: Path
    token_server: TokenServer | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def blob_path(self, digest: str) -> Path:
        algo, value = digest.split(":", 1)
        return self.root / "docker/registry/v2/blobs" / algo / value[:2] / value / "data"

    def stop(self) -> None:
        stop_process(self.process)


def start_registry(workdir: Path, token_server: TokenServer | None = None) -> Registry:
    """``docker-registry serve`` on a free loopback port; token auth when a server is given."""
    binary = need("docker-registry")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config: dict = {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {
            "filesystem": {"rootdirectory": str(workdir / "storage")},
            "delete": {"enabled": True},
        },
        "http": {"addr": f"127.0.0.1:{port}", "secret": secrets.token_hex(16)},
    }
    if token_server:
        config["auth"] = {
            "token": {
                "realm": token_server.realm,
                "service": SERVICE,
                "issuer": ISSUER,
                "rootcertbundle": str(token_server.cert_path),
            }
        }
    config_path = workdir / "config.yml"
    config_path.write_text(json.dumps(config, indent=2))  # JSON is YAML
    log = workdir / "registry.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [binary, "serve", str(config_path)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    registry = Registry(f"127.0.0.1:{port}", workdir / "storage", proc, log, token_server)
    try:
        _wait_until_up(registry)
    except BaseException:
        registry.stop()
        raise
    return registry


def _wait_until_up(registry: Registry) -> None:
    for _ in range(400):
        if registry.process.poll() is not None:
            raise RuntimeError(f"docker-registry exited:\n{registry.log.read_text()}")
        try:
            status = requests.get(f"{registry.url}/v2/", timeout=2).status_code
        except requests.ConnectionError:
            status = 0
        if status in (200, 401):
            return
        time.sleep(0.05)
    raise RuntimeError(f"docker-registry did not answer:\n{registry.log.read_text()}")


# -- the redirecting front proxy and its storage host ---------------------------------------

_BLOB_RE = re.compile(r"^/v2/(?P<name>.+)/blobs/(?P<digest>[a-z0-9]+:[a-f0-9]+)$")
_MANIFEST_RE = re.compile(r"^/v2/(?P<name>.+)/manifests/(?P<ref>[^/]+)$")
_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding"}


@dataclass
class StorageHit:
    path: str
    authorization: str | None


@dataclass
class FrontProxy:
    """``url`` fronts ``registry``; blobs are redirected to ``storage_url`` on 127.0.0.2.

    ``storage_hits`` records every request the storage host saw, ``leaks`` those
    that carried Authorization (answered 403). ``corrupt_blobs`` are served with
    one byte flipped (same length, same digest claimed); ``truncate_blobs`` announce their
    full length and break off half way; ``tamper_manifests`` changes manifest bodies but not
    their Docker-Content-Digest header.
    """

    registry: Registry
    redirect_blobs: bool = True
    corrupt_blobs: set[str] = field(default_factory=set)
    truncate_blobs: set[str] = field(default_factory=set)
    tamper_manifests: bool = False
    storage_hits: list[StorageHit] = field(default_factory=list)
    blob_requests: int = 0

    def __post_init__(self) -> None:
        self._front, self._front_thread = _serve(self._front_handler())
        self._storage, self._storage_thread = _serve(self._storage_handler(), "127.0.0.2")
        self.url = f"http://127.0.0.1:{self._front.server_address[1]}"
        self.host = f"127.0.0.1:{self._front.server_address[1]}"
        self.storage_url = f"http://127.0.0.2:{self._storage.server_address[1]}"

    @property
    def leaks(self) -> list[StorageHit]:
        return [h for h in self.storage_hits if h.authorization]

    def _body(self, digest: str) -> bytes:
        data = self.registry.blob_path(digest).read_bytes()
        if digest in self.corrupt_blobs:
            data = data[:-1] + bytes([data[-1] ^ 0xFF])
        return data

    def _front_handler(self) -> type:
        owner = self

        class Handler(_Quiet):
            def do_GET(self) -> None:  # noqa: N802
                self.forward()

            def do_HEAD(self) -> None:  # noqa: N802
                self.forward()

            def forward(self) -> None:
                path = urlsplit(self.path).path
                blob = _BLOB_RE.match(path)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                url = owner.registry.url + self.path
                if blob and self.command == "GET":
                    owner.blob_requests += 1
                if blob and owner.redirect_blobs and self.command == "GET":
                    # the registry checks the token, then sends the client to storage
                    check = requests.head(url, headers=headers, allow_redirects=False, timeout=30)
                    if check.status_code == 200:
                        digest = blob.group("digest")
                        sig = secrets.token_hex(4)
                        location = f"{owner.storage_url}/storage/{digest}?sig={sig}"
                        self.reply(307, b"", {"Location": location})
                        return
                resp = requests.request(
                    self.command, url, headers=headers, allow_redirects=False, timeout=30
                )
                body = resp.content
                if blob and self.command == "GET" and resp.status_code == 200:
                    body = owner._body(blob.group("digest"))
                if owner.tamper_manifests and _MANIFEST_RE.match(path) and body:
                    body = body.replace(b'"schemaVersion":2', b'"schemaVersion": 2', 1)
                out = {k: v for k, v in resp.headers.items() if k.lower() not in _HOP}
                cut = bool(blob) and blob.group("digest") in owner.truncate_blobs
                self.reply(resp.status_code, body if self.command == "GET" else b"", out, cut)

        return Handler

    def _storage_handler(self) -> type:
        owner = self

        class Handler(_Quiet):
            def do_GET(self) -> None:  # noqa: N802
                auth = self.headers.get("Authorization")
                owner.storage_hits.append(StorageHit(self.path, auth))
                if auth:
                    self.reply(403, b"storage hosts never get the registry's token\n")
                    return
                digest = urlsplit(self.path).path.rsplit("/", 1)[-1]
                try:
                    body = owner._body(digest)
                except FileNotFoundError:
                    self.reply(404)
                    return
                self.reply(200, body, {"Content-Type": "application/octet-stream"},
                           cut=digest in owner.truncate_blobs)  # fmt: skip

        return Handler

    def stop(self) -> None:
        for server, thread in (
            (self._front, self._front_thread),
            (self._storage, self._storage_thread),
        ):
            server.shutdown()
            server.server_close()
            thread.join()


def sha256_file(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
