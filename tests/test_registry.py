"""builder.registry: references, credentials, token auth, manifests and their digests.

Pure functions first, then the client against real docker-registry instances
(token auth and no auth) with the multi-arch test image pushed by skopeo.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
import requests

from builder.download import Cache, Digest, Downloader
from builder.errors import ChecksumError, MirrorError, NotFoundError, UsageError
from builder.registry import (
    DOCKER_LIST,
    OCI_INDEX,
    OCI_MANIFEST,
    AuthError,
    Credentials,
    Manifest,
    Platform,
    PlatformError,
    Reference,
    RegistryClient,
    docker_config_credentials,
    parse_challenge,
    platform_for_arch,
    registry_url,
    select_platform,
)

AMD64 = platform_for_arch("x86_64")
ARM64 = platform_for_arch("aarch64")


# -- references -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, normalised, repo_tag, stem",
    [
        ("hello-world", "docker.io/library/hello-world:latest", "hello-world:latest",
         "hello-world_latest"),
        ("hello-world:linux", "docker.io/library/hello-world:linux", "hello-world:linux",
         "hello-world_linux"),
        ("docker.io/library/nginx:1.25", "docker.io/library/nginx:1.25", "nginx:1.25",
         "nginx_1.25"),
        ("index.docker.io/nginx", "docker.io/library/nginx:latest", "nginx:latest",
         "nginx_latest"),
        ("myorg/app:1.0", "docker.io/myorg/app:1.0", "myorg/app:1.0", "myorg_app_1.0"),
        ("quay.io/prometheus/node-exporter:v1.8.1", "quay.io/prometheus/node-exporter:v1.8.1",
         "quay.io/prometheus/node-exporter:v1.8.1", "quay.io_prometheus_node-exporter_v1.8.1"),
        ("localhost:5000/app", "localhost:5000/app:latest", "localhost:5000/app:latest",
         "localhost-5000_app_latest"),
        ("hello-world@sha256:" + "ab" * 32, "docker.io/library/hello-world@sha256:" + "ab" * 32,
         "hello-world:sha256-abababababab", "hello-world_sha256-abababababab"),
        ("hello-world:latest@sha256:" + "CD" * 32,
         "docker.io/library/hello-world:latest@sha256:" + "cd" * 32,
         "hello-world:latest", "hello-world_latest"),
    ],
)  # fmt: skip
def test_reference_normalisation(text: str, normalised: str, repo_tag: str, stem: str) -> None:
    ref = Reference.parse(text)
    assert str(ref) == normalised
    assert ref.repo_tag == repo_tag
    assert ref.file_stem == stem


def test_reference_asks_for_the_digest_when_pinned() -> None:
    digest = "sha256:" + "12" * 32
    assert Reference.parse(f"hello-world:latest@{digest}").manifest_ref == digest
    assert Reference.parse("hello-world").manifest_ref == "latest"


@pytest.mark.parametrize(
    "text", ["Hello-World", "hello world", "hello-world:", "hello@sha256:xyz", "a/:b", ""]
)
def test_invalid_references_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError, match="invalid image reference"):
        Reference.parse(text)


def test_registry_urls_loopback_is_http_and_mirror_only_for_docker_hub() -> None:
    assert registry_url("docker.io") == "https://registry-1.docker.io"
    assert registry_url("docker.io", "https://mirror.example.cn/") == "https://mirror.example.cn"
    assert registry_url("quay.io", "https://mirror.example.cn") == "https://quay.io"
    assert registry_url("127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert registry_url("localhost:5000") == "http://localhost:5000"
    assert registry_url("registry.local:5000") == "https://registry.local:5000"


def test_platforms_follow_the_bundle_arch() -> None:
    assert str(AMD64) == "linux/amd64"
    assert str(ARM64) == "linux/arm64/v8"
    assert ARM64.matches(Platform("linux", "arm64"))  # no variant means v8
    assert not ARM64.matches(Platform("linux", "arm", "v7"))
    with pytest.raises(UsageError, match="no image platform for architecture 'i686'"):
        platform_for_arch("i686")


# -- credentials and challenges -------------------------------------------------------------


def _config(tmp_path: Path, auths: dict) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"auths": auths, "credsStore": "desktop"}))
    return path


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_docker_config_auths_match_the_registry_host(tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        {
            "https://index.docker.io/v1/": {"auth": _b64("hubuser:hubpw")},
            "127.0.0.1:5000": {"auth": _b64("local:pw:with:colons")},
            "http://mirror.example.cn": {"username": "m", "password": "mpw"},
        },
    )
    hub = docker_config_credentials(config, "docker.io")
    assert (hub.username, hub.password) == ("hubuser", "hubpw")
    local = docker_config_credentials(config, "127.0.0.1:5000")
    assert (local.username, local.password) == ("local", "pw:with:colons")
    mirror = docker_config_credentials(config, "https://mirror.example.cn")
    assert (mirror.username, mirror.password) == ("m", "mpw")
    assert docker_config_credentials(config, "quay.io") is None
    assert docker_config_credentials(tmp_path / "missing.json", "docker.io") is None


def test_www_authenticate_challenges_are_parsed() -> None:
    scheme, params = parse_challenge(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/hello-world:pull"'
    )
    assert scheme == "bearer"
    assert params == {
        "realm": "https://auth.docker.io/token",
        "service": "registry.docker.io",
        "scope": "repository:library/hello-world:pull",
    }
    assert parse_challenge('Basic realm="Registry Realm"') == ("basic", {"realm": "Registry Realm"})


def test_select_platform_skips_attestations_and_lists_what_there_is() -> None:
    def entry(digest: str, platform: dict, **annotations: str) -> dict:
        return {"mediaType": OCI_MANIFEST, "digest": "sha256:" + digest * 64, "size": 1,
                "platform": platform, "annotations": annotations}  # fmt: skip

    index = {
        "manifests": [
            entry("a", {"os": "linux", "architecture": "amd64"}),
            entry(
                "b",
                {"os": "unknown", "architecture": "unknown"},
                **{"vnd.docker.reference.type": "attestation-manifest"},
            ),  # fmt: skip
            entry("c", {"os": "linux", "architecture": "arm", "variant": "v7"}),
            entry("d", {"os": "linux", "architecture": "arm64"}),
            entry("e", {"os": "windows", "architecture": "amd64"}),
        ]
    }
    manifest = Manifest(OCI_INDEX, "sha256:" + "0" * 64, b"", index)
    assert select_platform(manifest, AMD64, "x").digest == "sha256:" + "a" * 64
    assert select_platform(manifest, ARM64, "x").digest == "sha256:" + "d" * 64
    with pytest.raises(PlatformError) as err:
        select_platform(manifest, Platform("linux", "s390x"), "docker.io/library/x:1")
    assert str(err.value) == (
        "docker.io/library/x:1 has no linux/s390x image; the index has linux/amd64, "
        "linux/arm/v7, linux/arm64, windows/amd64 — choose another --arch or image"
    )


# -- against real registries ----------------------------------------------------------------


def _client(rig, creds: Credentials | None = None, base: str | None = None) -> RegistryClient:
    return RegistryClient(base or rig.url, Downloader(retries=0), creds, rig.host)


def test_anonymous_token_pull_selects_each_platform(auth_registry, token_server) -> None:
    image = auth_registry.image
    client = _client(auth_registry)
    token_server.requests.clear()
    index = client.manifest("library/hello-world", "latest", "hello-world:latest")
    assert index.media_type == OCI_INDEX
    assert index.digest == image.indexes["latest"]
    assert [r.user for r in token_server.requests] == [None]
    assert token_server.requests[0].scopes == ["repository:library/hello-world:pull"]

    amd64 = select_platform(index, AMD64, "hello-world")
    arm64 = select_platform(index, ARM64, "hello-world")
    assert amd64.digest == image.manifests["amd64"]
    assert arm64.digest == image.manifests["arm64"]
    assert amd64.digest != arm64.digest
    assert image.attestations["amd64"] in {e.digest for e in index.entries("x")}

    for arch, entry in (("amd64", amd64), ("arm64", arm64)):
        manifest = client.manifest("library/hello-world", entry.digest, "hello-world")
        assert manifest.digest == entry.digest
        assert manifest.config("x").digest == image.configs[arch]
        assert [layer.digest for layer in manifest.layers("x")] == [image.layers[arch]]


def test_docker_manifest_list_variant(auth_registry) -> None:
    client = _client(auth_registry)
    index = client.manifest("library/hello-list", "latest", "hello-list:latest")
    assert index.media_type == DOCKER_LIST
    entry = select_platform(index, ARM64, "hello-list")
    manifest = client.manifest("library/hello-list", entry.digest, "hello-list")
    assert manifest.media_type == "application/vnd.docker.distribution.manifest.v2+json"
    # same config blob as the OCI variant: skopeo converted the manifests only
    assert manifest.config("x").digest == auth_registry.image.configs["arm64"]


def test_registry_without_auth_gets_no_authorization_header(plain_registry) -> None:
    client = _client(plain_registry)
    assert client.auth_header("library/hello-world") == {}
    index = client.manifest("library/hello-world", "latest", "x")
    assert index.digest == plain_registry.image.indexes["latest"]


def test_private_repository_refused_anonymously(auth_registry) -> None:
    with pytest.raises(AuthError) as err:
        _client(auth_registry).manifest("private/app", "1.0", "x")
    message = str(err.value)
    assert "\n" not in message
    assert message == (
        f"{auth_registry.host} refused access to private/app (HTTP 401, tried anonymous pull): "
        "it is private or does not exist; give credentials with --registry-user USER and the "
        f"environment variable AIRDOCK_REGISTRY_PASSWORD, or `docker login {auth_registry.host}`"
    )


def test_private_repository_with_credentials(auth_registry, token_server) -> None:
    creds = Credentials(auth_registry.user, auth_registry.password, "--registry-user")
    token_server.requests.clear()
    index = _client(auth_registry, creds).manifest("private/app", "1.0", "x")
    assert index.digest == auth_registry.image.indexes["latest"]
    assert [r.user for r in token_server.requests] == [auth_registry.user]


def test_wrong_password_is_an_auth_error(auth_registry) -> None:
    creds = Credentials(auth_registry.user, "wrong", "--registry-user")
    with pytest.raises(AuthError) as err:
        _client(auth_registry, creds).manifest("private/app", "1.0", "x")
    assert str(err.value) == (
        f"{auth_registry.host} refused the credentials of user 'pusher' from --registry-user "
        "(token server answered HTTP 401); check the user and password"
    )


def test_unknown_tag_and_repository_name_registry_and_reference(auth_registry) -> None:
    client = _client(auth_registry)
    host = auth_registry.host
    with pytest.raises(NotFoundError) as err:
        client.manifest("library/hello-world", "nope", f"{host}/library/hello-world:nope")
    assert str(err.value) == (
        f"image {host}/library/hello-world:nope not found: "
        f"{host} has no tag nope in library/hello-world"
    )
    with pytest.raises(NotFoundError) as err:
        client.manifest("library/nothing", "latest", f"{host}/library/nothing:latest")
    assert str(err.value) == (
        f"image {host}/library/nothing:latest not found: {host} has no repository library/nothing"
    )


def test_tampered_manifest_is_a_digest_mismatch(auth_registry, front_proxy) -> None:
    front_proxy.tamper_manifests = True
    client = _client(auth_registry, base=front_proxy.url)
    with pytest.raises(ChecksumError) as err:
        client.manifest("library/hello-world", "latest", "hello-world:latest")
    message = str(err.value)
    assert "\n" not in message
    expected = auth_registry.image.indexes["latest"]
    assert f"digest mismatch for the manifest of hello-world:latest from {front_proxy.url}" in (
        message
    )
    assert f"expected {expected} (Docker-Content-Digest), got sha256:" in message
    # by digest: the reference itself is what the body must match
    digest = auth_registry.image.manifests["amd64"]
    with pytest.raises(ChecksumError, match=f"expected {digest} \\(the reference\\)"):
        client.manifest("library/hello-world", digest, "hello-world")


def test_storage_host_refuses_and_records_authorization(front_proxy, auth_registry) -> None:
    """The rig's leak detector works: a client that forwards the token is caught."""
    digest = auth_registry.image.configs["amd64"]
    url = f"{front_proxy.storage_url}/storage/{digest}"
    assert requests.get(url, headers={"Authorization": "Bearer t"}, timeout=10).status_code == 403
    assert requests.get(url, timeout=10).status_code == 200
    assert [h.authorization for h in front_proxy.storage_hits] == ["Bearer t", None]
    assert len(front_proxy.leaks) == 1


def test_blob_download_follows_the_redirect_without_the_token(
    tmp_path, front_proxy, auth_registry
) -> None:
    client = RegistryClient(front_proxy.url, Downloader(retries=0), None, "hub mirror")
    index = client.manifest("library/hello-world", "latest", "x")
    entry = select_platform(index, AMD64, "x")
    manifest = client.manifest("library/hello-world", entry.digest, "x")
    layer = manifest.layers("x")[0]
    got = client.fetch_blob("library/hello-world", layer, tmp_path / "layer", "layer")
    assert got.url == f"{front_proxy.url}/v2/library/hello-world/blobs/{layer.digest}"
    assert front_proxy.blob_requests == 1
    assert [h.path.split("?")[0] for h in front_proxy.storage_hits] == [f"/storage/{layer.digest}"]
    assert front_proxy.leaks == []


def _hub_with_cache(tmp_path, front_proxy):
    """A client of the front proxy with a cache, and the amd64 layer it will fetch."""
    cache = Cache(tmp_path / "cache")
    client = RegistryClient(front_proxy.url, Downloader(cache, retries=1, backoff=0), None, "hub")
    index = client.manifest("library/hello-world", "latest", "x")
    manifest = client.manifest("library/hello-world", select_platform(index, AMD64, "x").digest,
                               "x")  # fmt: skip
    return cache, client, manifest.layers("x")[0]


def test_tampered_blob_under_its_digest_is_refused_and_never_cached(
    tmp_path, front_proxy, auth_registry
) -> None:
    """Same length, one byte changed, served under the digest the manifest names: the
    blob's own digest is what refuses it (not the cache, not the archive writer)."""
    cache, client, layer = _hub_with_cache(tmp_path, front_proxy)
    front_proxy.corrupt_blobs.add(layer.digest)
    with pytest.raises(ChecksumError) as err:
        client.fetch_blob("library/hello-world", layer, tmp_path / "out" / "layer", "layer 1/1")
    actual = "sha256:" + hashlib.sha256(front_proxy._body(layer.digest)).hexdigest()
    message = str(err.value)
    assert "\n" not in message and message.startswith("checksum mismatch for layer 1/1 from ")
    assert f"expected {layer.digest}, got {actual}" in message
    assert cache.lookup(Digest.parse(layer.digest)) is None
    assert [p for p in (tmp_path / "cache").rglob("*") if p.is_file()] == []
    assert not (tmp_path / "out" / "layer").exists()


def test_truncated_blob_with_its_full_length_announced_is_refused_and_never_cached(
    tmp_path, front_proxy, auth_registry
) -> None:
    cache, client, layer = _hub_with_cache(tmp_path, front_proxy)
    front_proxy.truncate_blobs.add(layer.digest)
    with pytest.raises(MirrorError) as err:
        client.fetch_blob("library/hello-world", layer, tmp_path / "out" / "layer", "layer 1/1")
    message = str(err.value)
    assert "\n" not in message and "broke off after" in message, message
    assert "gave up after 2 attempts" in message
    assert [p for p in (tmp_path / "cache").rglob("*") if p.is_file()] == []
    assert not (tmp_path / "out" / "layer").exists()
    front_proxy.truncate_blobs.clear()  # the same client, the registry healthy again: cached
    got = client.fetch_blob("library/hello-world", layer, tmp_path / "out" / "layer", "layer")
    assert got.sha256 == layer.digest.split(":")[1]
    assert cache.lookup(Digest.parse(layer.digest)) is not None


def test_tokens_are_reused_per_repository_and_renewed_before_expiry(
    auth_registry, token_server
) -> None:
    client = _client(auth_registry)
    token_server.requests.clear()
    first = client.auth_header("library/hello-world")
    assert client.auth_header("library/hello-world") == first
    client.auth_header("library/hello-list")
    assert len(token_server.requests) == 2
    client._tokens["library/hello-world"].renew_at = 0.0  # as if 300 s had passed
    assert client.auth_header("library/hello-world")["Authorization"].startswith("Bearer ")
    assert len(token_server.requests) == 3
