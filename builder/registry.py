"""A small client for the Registry HTTP API v2 (the "distribution" protocol).

Why hand-written: the builder must run without a Docker daemon, skopeo or crane,
and no maintained pure-Python client does what we need together — bearer-token
auth, platform selection in OCI indexes / Docker manifest lists (skipping
attestation entries) and digest verification of every manifest and blob. The
subset used here is small and specified (distribution spec, OCI image spec):

* ``GET /v2/`` answers 200 (open) or 401 with a ``WWW-Authenticate`` challenge;
  ``Bearer`` means: get a token from the realm with ``service`` and
  ``scope=repository:<name>:pull`` (Basic credentials when we have some);
  ``Basic`` means: send the credentials with every request;
* ``GET /v2/<name>/manifests/<tag|digest>`` with an ``Accept`` for the two
  index types and the two image manifest types; the body is checked against
  the digest we asked for and against ``Docker-Content-Digest``;
* ``GET /v2/<name>/blobs/<digest>`` goes through :class:`Downloader.fetch`
  (retries, resume, cache keyed by digest, redirects that drop
  ``Authorization`` when they leave the registry's host).

All HTTP goes through :meth:`Downloader.request`, so redirects are handled in
one place for RPM mirrors and registries alike.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from .digests import is_registry_digest
from .download import (
    RETRY_STATUS,
    SMALL_LIMIT,
    Digest,
    Download,
    Downloader,
    Fetched,
    TransientError,
)
from .errors import ChecksumError, MirrorError, NotFoundError, UsageError

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
ACCEPT = ", ".join(INDEX_TYPES + MANIFEST_TYPES)
SCHEMA1_TYPES = (
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
)
CONFIG_TYPES = (
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
)
# Layer types `docker load` (20.10+) can read: plain tar or gzip.
LAYER_TYPES = (
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.diff.tar",
)

DOCKER_HUB = "docker.io"
DOCKER_HUB_URL = "https://registry-1.docker.io"
_HUB_ALIASES = {"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}
_MAX_MANIFEST = 4 << 20  # the distribution spec's limit for a manifest
_TOKEN_MARGIN = 30.0  # seconds: renew a token this long before it expires (at most half its life)

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_NAME_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_HOST_RE = re.compile(r"^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\])(?::[0-9]+)?$")


class AuthError(MirrorError):
    """The registry refused the credentials we had (or the lack of them)."""


class PlatformError(NotFoundError):
    """The image exists, but not for the requested platform."""


# -- references and platforms ---------------------------------------------------------------


@dataclass(frozen=True)
class Reference:
    """A parsed image reference, normalised the way the docker CLI does it.

    ``hello-world`` is ``docker.io/library/hello-world:latest``; the first path
    component is a registry host only when it contains ``.`` or ``:`` or is
    ``localhost``.
    """

    registry: str
    repository: str
    tag: str | None
    digest: str | None

    @classmethod
    def parse(cls, text: str) -> Reference:
        original = text
        text = text.strip()
        digest = None
        if "@" in text:
            text, digest = text.split("@", 1)
            algo, _, hexpart = digest.partition(":")
            digest = f"{algo}:{hexpart.lower()}"
            if not is_registry_digest(digest):
                raise UsageError(
                    f"invalid image reference {original!r}: bad digest {digest!r} "
                    "(write sha256:<64 hex> or sha512:<128 hex>)"
                )
        tag = None
        last = text.rsplit("/", 1)[-1]
        if ":" in last:
            text, tag = text.rsplit(":", 1)
            if not _TAG_RE.match(tag):
                raise UsageError(f"invalid image reference {original!r}: bad tag {tag!r}")
        registry, _, rest = text.partition("/")
        if rest and ("." in registry or ":" in registry or registry == "localhost"):
            if not _HOST_RE.match(registry):
                raise UsageError(f"invalid image reference {original!r}: bad registry host")
            name = rest
        else:
            registry, name = DOCKER_HUB, text
        if registry in _HUB_ALIASES:
            registry = DOCKER_HUB
            if "/" not in name:
                name = f"library/{name}"
        if not name or not _NAME_RE.match(name):
            raise UsageError(
                f"invalid image reference {original!r}: names are lowercase letters, digits "
                "and separators (. _ -), e.g. hello-world:latest or myorg/app@sha256:…"
            )
        if tag is None and digest is None:
            tag = "latest"
        return cls(registry, name, tag, digest)

    @property
    def familiar_name(self) -> str:
        """The name ``docker images`` shows: no ``docker.io/``, no ``library/``."""
        if self.registry == DOCKER_HUB:
            return self.repository.removeprefix("library/")
        return f"{self.registry}/{self.repository}"

    @property
    def tag_or_pseudo(self) -> str:
        """The tag, or for a digest-only reference ``sha256-<12 hex>``."""
        if self.tag:
            return self.tag
        assert self.digest is not None
        algo, value = self.digest.split(":", 1)
        return f"{algo}-{value[:12]}"

    @property
    def repo_tag(self) -> str:
        """The name:tag ``docker load`` gives the image (``hello-world:latest``)."""
        return f"{self.familiar_name}:{self.tag_or_pseudo}"

    @property
    def file_stem(self) -> str:
        """``hello-world_latest``, ``myorg_app_1.0``, ``hello-world_sha256-0123456789ab``."""
        name = self.familiar_name.replace("/", "_").replace(":", "-")
        return f"{name}_{self.tag_or_pseudo}"

    @property
    def manifest_ref(self) -> str:
        """What to ask the registry for: the digest when pinned, else the tag."""
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}"
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)

    @classmethod
    def of(cls, entry: Mapping[str, Any]) -> Platform:
        return cls(
            str(entry.get("os", "")),
            str(entry.get("architecture", "")),
            str(entry["variant"]) if entry.get("variant") else None,
        )

    def matches(self, other: Platform) -> bool:
        """Same os and architecture; arm64 without a variant counts as v8."""
        if (self.os, self.architecture) != (other.os, other.architecture):
            return False
        default = "v8" if self.architecture == "arm64" else None
        return (self.variant or default) == (other.variant or default)


# RPM architecture (the bundle's --arch) -> the image platform to select.
ARCH_PLATFORMS = {
    "x86_64": Platform("linux", "amd64"),
    "aarch64": Platform("linux", "arm64", "v8"),
    "ppc64le": Platform("linux", "ppc64le"),
    "s390x": Platform("linux", "s390x"),
}


def platform_for_arch(arch: str) -> Platform:
    try:
        return ARCH_PLATFORMS[arch]
    except KeyError:
        raise UsageError(
            f"no image platform for architecture {arch!r}; use one of {', '.join(ARCH_PLATFORMS)}"
        ) from None


def is_attestation(entry: Mapping[str, Any]) -> bool:
    """BuildKit's provenance/SBOM entries: ``unknown/unknown`` or annotated as such."""
    platform = entry.get("platform") or {}
    annotations = entry.get("annotations") or {}
    return (platform.get("os"), platform.get("architecture")) == ("unknown", "unknown") or (
        annotations.get("vnd.docker.reference.type") == "attestation-manifest"
    )


# -- credentials ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str
    source: str  # for messages: where they came from

    def basic(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")


def _auth_key_host(key: str) -> str:
    """``https://index.docker.io/v1/`` -> ``docker.io``; ``http://h:5000`` -> ``h:5000``."""
    host = urlsplit(key if "://" in key else f"//{key}").netloc.lower()
    return DOCKER_HUB if host in _HUB_ALIASES else host


def default_docker_config() -> Path:
    base = os.environ.get("DOCKER_CONFIG")
    return Path(base) / "config.json" if base else Path.home() / ".docker" / "config.json"


def docker_config_credentials(config: Path, host: str) -> Credentials | None:
    """Credentials for ``host`` from a docker ``config.json`` (its ``auths`` section).

    Credential helpers (``credsStore``/``credHelpers``) are not run: the builder
    must not depend on desktop keychains. Unreadable files count as absent.
    """
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    want = _auth_key_host(host)
    auths = data.get("auths") if isinstance(data, dict) else None
    for key, entry in (auths or {}).items():
        if _auth_key_host(key) != want or not isinstance(entry, dict):
            continue
        user, password = entry.get("username"), entry.get("password")
        if entry.get("auth"):
            try:
                user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                continue
        if user and password:
            return Credentials(user, password, f"{config} for {key}")
    return None


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="…",service="…"`` -> ("bearer", {"realm": …, "service": …})."""
    scheme, _, rest = header.strip().partition(" ")
    params = {
        m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
        for m in re.finditer(r'([A-Za-z_]+)\s*=\s*(?:"([^"]*)"|([^\s,]+))', rest)
    }
    return scheme.lower(), params


def is_loopback(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    name = name.strip("[]").lower()
    return name == "localhost" or name.startswith("127.") or name == "::1"


def registry_url(registry: str, mirror: str | None = None) -> str:
    """Base URL of the API for a registry host; a mirror applies to Docker Hub only."""
    if registry == DOCKER_HUB:
        return mirror.rstrip("/") if mirror else DOCKER_HUB_URL
    scheme = "http" if is_loopback(registry) else "https"
    return f"{scheme}://{registry}"


# -- manifests ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def of(cls, entry: Any, where: str) -> Descriptor:
        try:
            digest = str(entry["digest"])
            Digest.parse(digest)
            platform = Platform.of(entry["platform"]) if entry.get("platform") else None
            return cls(str(entry.get("mediaType", "")), digest, int(entry["size"]), platform, entry)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise MirrorError(f"{where}: malformed descriptor {entry!r:.120}") from exc


@dataclass(frozen=True)
class Manifest:
    """A manifest or index exactly as the registry sent it, verified against its digest."""

    media_type: str
    digest: str
    raw: bytes
    data: dict[str, Any]

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES

    def entries(self, where: str) -> list[Descriptor]:
        return [Descriptor.of(e, where) for e in self.data.get("manifests") or []]

    def config(self, where: str) -> Descriptor:
        return Descriptor.of(self.data.get("config"), where)

    def layers(self, where: str) -> list[Descriptor]:
        return [Descriptor.of(e, where) for e in self.data.get("layers") or []]


def _media_type(content_type: str, data: dict[str, Any]) -> str:
    declared = data.get("mediaType")
    if isinstance(declared, str) and declared:
        return declared
    content_type = content_type.split(";", 1)[0].strip()
    if content_type in INDEX_TYPES + MANIFEST_TYPES + SCHEMA1_TYPES:
        return content_type
    if data.get("schemaVersion") == 1:
        return SCHEMA1_TYPES[0]
    return OCI_INDEX if "manifests" in data else OCI_MANIFEST


def digest_of(data: bytes, algo: str = "sha256") -> str:
    return f"{algo}:{hashlib.new(algo, data).hexdigest()}"


def parse_manifest(raw: bytes, content_type: str, digest: str, where: str) -> Manifest:
    try:
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
    except ValueError as exc:
        raise MirrorError(f"{where}: the manifest is not valid JSON ({exc})") from exc
    media_type = _media_type(content_type, data)
    if media_type in SCHEMA1_TYPES:
        raise MirrorError(
            f"{where} is a Docker schema 1 manifest, which Docker no longer loads; "
            "push the image again with a current docker or buildx"
        )
    if media_type not in INDEX_TYPES + MANIFEST_TYPES:
        raise MirrorError(f"{where}: unsupported manifest type {media_type!r}")
    return Manifest(media_type, digest, raw, data)


def select_platform(index: Manifest, platform: Platform, where: str) -> Descriptor:
    """The index entry for ``platform``; attestation (``unknown/unknown``) entries never match."""
    candidates = [e for e in index.entries(where) if not is_attestation(e.raw)]
    matching = [e for e in candidates if e.platform and platform.matches(e.platform)]
    exact = [e for e in matching if e.platform and e.platform.variant == platform.variant]
    chosen = exact[0] if exact else matching[0] if matching else None
    if chosen is None:
        have = list(dict.fromkeys(str(e.platform) for e in candidates if e.platform))
        raise PlatformError(
            f"{where} has no {platform} image; the index has "
            f"{', '.join(have) if have else 'no platforms'} — choose another --arch or image"
        )
    if chosen.media_type and chosen.media_type not in MANIFEST_TYPES:
        raise MirrorError(f"{where}: the {platform} entry is a {chosen.media_type!r}, not an image")
    return chosen


# -- the client -----------------------------------------------------------------------------


@dataclass
class _Token:
    header: str | None  # the Authorization value, None when the registry is open
    renew_at: float  # time.monotonic() after which a new token is fetched


class RegistryClient:
    """One registry (or mirror) base URL: auth, manifests and blobs.

    ``credentials`` are used when the registry asks for them; without them
    pulls are anonymous. Tokens are kept per repository and renewed before
    they expire, so a long layer download never starts with a stale token.
    """

    def __init__(
        self,
        base_url: str,
        downloader: Downloader,
        credentials: Credentials | None = None,
        name: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.downloader = downloader
        self.credentials = credentials
        self.name = name or urlsplit(self.base_url).netloc
        self._challenge: tuple[str, dict[str, str]] | None = None
        self._tokens: dict[str, _Token] = {}
        self._lock = threading.Lock()

    # -- HTTP with retries ----------------------------------------------------------------
    def _request(
        self, url: str, headers: Mapping[str, str], limit: int = SMALL_LIMIT
    ) -> requests.Response:
        """GET with retries; the body (at most ``limit`` bytes) is read within a deadline."""

        def once() -> requests.Response:
            resp = self.downloader.request("GET", url, headers, limit=limit)
            if resp.status_code in RETRY_STATUS:
                resp.close()
                raise TransientError(f"{url} answered HTTP {resp.status_code}")
            return resp

        return self.downloader.retrying(once)

    # -- auth -----------------------------------------------------------------------------
    def _tried(self) -> str:
        if self.credentials:
            return f"user {self.credentials.username!r} from {self.credentials.source}"
        return "anonymous pull"

    def _how_to_auth(self) -> str:
        return (
            "give credentials with --registry-user USER and the environment variable "
            f"AIRDOCK_REGISTRY_PASSWORD, or `docker login {self.name}`"
        )

    def _auth_refused(self, repository: str, status: int) -> AuthError:
        if self.credentials:
            return AuthError(
                f"{self.name} refused access to {repository} (HTTP {status}, tried "
                f"{self._tried()}): the user cannot pull it or it does not exist"
            )
        return AuthError(
            f"{self.name} refused access to {repository} (HTTP {status}, tried anonymous pull): "
            f"it is private or does not exist; {self._how_to_auth()}"
        )

    def _ping(self) -> tuple[str, dict[str, str]]:
        if self._challenge is None:
            resp = self._request(f"{self.base_url}/v2/", {})
            with resp:
                if resp.status_code == 200:
                    self._challenge = ("none", {})
                elif resp.status_code == 401:
                    header = resp.headers.get("WWW-Authenticate", "")
                    self._challenge = parse_challenge(header) if header else ("basic", {})
                else:
                    raise MirrorError(
                        f"{self.base_url} does not look like a registry: GET /v2/ answered "
                        f"HTTP {resp.status_code}; check the registry or --registry-mirror URL"
                    )
        return self._challenge

    def auth_header(self, repository: str) -> dict[str, str]:
        """The Authorization header for pulling ``repository`` (empty when open)."""
        with self._lock:
            token = self._tokens.get(repository)
            if token is None or token.renew_at < time.monotonic():
                token = self._tokens[repository] = self._authenticate(repository)
        return {"Authorization": token.header} if token.header else {}

    def _authenticate(self, repository: str) -> _Token:
        scheme, params = self._ping()
        forever = float("inf")
        if scheme == "none":
            return _Token(None, forever)
        if scheme == "basic":
            if not self.credentials:
                raise AuthError(
                    f"{self.name} asks for a user name and password to pull {repository}; "
                    f"{self._how_to_auth()}"
                )
            return _Token(self.credentials.basic(), forever)
        if scheme != "bearer" or "realm" not in params:
            raise MirrorError(f"{self.name} asks for an unsupported authentication {scheme!r}")
        query = {"scope": f"repository:{repository}:pull"}
        if "service" in params:
            query["service"] = params["service"]
        headers = {"Authorization": self.credentials.basic()} if self.credentials else {}
        url = requests.Request("GET", params["realm"], params=query).prepare().url or ""
        resp = self._request(url, headers)
        with resp:
            if resp.status_code in (401, 403):
                if self.credentials:
                    raise AuthError(
                        f"{self.name} refused the credentials of {self._tried()} (token "
                        f"server answered HTTP {resp.status_code}); check the user and password"
                    )
                raise AuthError(
                    f"{self.name} gives no anonymous access to {repository}; {self._how_to_auth()}"
                )
            if resp.status_code != 200:
                raise MirrorError(
                    f"the token server {params['realm']} of {self.name} answered "
                    f"HTTP {resp.status_code}"
                )
            try:
                body = resp.json()
                token = body.get("token") or body.get("access_token")
                lifetime = float(body.get("expires_in") or 60)
            except (ValueError, AttributeError, TypeError):
                token, lifetime = None, 0.0
        if not token:
            raise MirrorError(f"the token server {params['realm']} of {self.name} sent no token")
        margin = min(_TOKEN_MARGIN, lifetime / 2)
        return _Token(f"Bearer {token}", time.monotonic() + lifetime - margin)

    # -- manifests ------------------------------------------------------------------------
    def manifest(self, repository: str, ref: str, where: str) -> Manifest:
        """GET a manifest by tag or digest and verify its bytes.

        The body must hash to the digest in ``ref`` (when it is one) and to the
        registry's ``Docker-Content-Digest`` (when sent).
        """
        url = f"{self.base_url}/v2/{repository}/manifests/{ref}"
        headers = {"Accept": ACCEPT, **self.auth_header(repository)}
        resp = self._request(url, headers, _MAX_MANIFEST)
        with resp:
            if resp.status_code in (401, 403):
                raise self._auth_refused(repository, resp.status_code)
            if resp.status_code == 404:
                raise NotFoundError(self._not_found(resp, repository, ref, where))
            if resp.status_code != 200:
                raise MirrorError(
                    f"{self.name} answered HTTP {resp.status_code} for the manifest of {where}"
                )
            raw = resp.content
            content_type = resp.headers.get("Content-Type", "")
            announced = resp.headers.get("Docker-Content-Digest")
        if announced is not None and not is_registry_digest(announced):
            raise MirrorError(
                f"{self.name} sent a malformed Docker-Content-Digest {announced[:80]!r} for "
                f"{where}; the registry is broken or hostile — use another"
            )
        expected = ref if is_registry_digest(ref) else announced
        algo = Digest.parse(expected).algo if expected else "sha256"
        actual = digest_of(raw, algo)
        for claimed, source in ((ref, "the reference"), (announced, "Docker-Content-Digest")):
            comparable = claimed and is_registry_digest(claimed) and claimed.startswith(algo + ":")
            if comparable and claimed != actual:
                raise ChecksumError(
                    f"digest mismatch for the manifest of {where} from {url}: expected "
                    f"{claimed} ({source}), got {actual}; the registry or mirror "
                    "is damaged or tampered with — retry later or use another registry"
                )
        return parse_manifest(raw, content_type, actual, where)

    def _not_found(self, resp: requests.Response, repository: str, ref: str, where: str) -> str:
        codes = _error_codes(resp)
        if "NAME_UNKNOWN" not in codes and not is_registry_digest(ref):
            # distribution answers MANIFEST_UNKNOWN for unknown repositories too: ask again
            url = f"{self.base_url}/v2/{repository}/tags/list?n=1"
            try:
                with self._request(url, self.auth_header(repository)) as tags:
                    if tags.status_code == 404:
                        codes |= _error_codes(tags)
            except MirrorError:
                pass
        if "NAME_UNKNOWN" in codes:
            return f"image {where} not found: {self.name} has no repository {repository}"
        what = "manifest" if is_registry_digest(ref) else "tag"
        return f"image {where} not found: {self.name} has no {what} {ref} in {repository}"

    # -- blobs ----------------------------------------------------------------------------
    def fetch_blob(self, repository: str, desc: Descriptor, dest: Path, label: str) -> Fetched:
        """Download one blob through the Downloader (cache, retries, digest check)."""
        item = Download(
            (f"{self.base_url}/v2/{repository}/blobs/{desc.digest}",),
            dest,
            Digest.parse(desc.digest),
            desc.size,
            headers=self.auth_header(repository),
            label=label,
        )
        try:
            return self.downloader.fetch(item)
        except NotFoundError as exc:
            raise NotFoundError(
                f"{label} ({desc.digest}) is missing on {self.name}: the registry lists a "
                "blob it cannot serve"
            ) from exc


def _error_codes(resp: requests.Response) -> set[str]:
    """The ``errors[].code`` values of a registry error body."""
    try:
        return {str(e.get("code")) for e in resp.json().get("errors", [])}
    except (ValueError, AttributeError, TypeError):
        return set()
