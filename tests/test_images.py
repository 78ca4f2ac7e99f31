"""builder.images.pull_images end to end: registry -> archive -> real dockerd.

The token-auth registry is used as a Docker Hub pull-through mirror
(``RegistryOptions.registry_mirror``) behind a proxy that redirects blob
downloads to a storage host on 127.0.0.2, so ``hello-world:latest`` resolves
exactly like the default image does, and every test checks the token never
reaches the storage host.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import tarfile
from pathlib import Path

import pytest

from builder.download import Cache, Digest, Downloader, file_digest
from builder.errors import ChecksumError, NotFoundError, UsageError
from builder.images import RegistryOptions, pull_images
from builder.registry import AuthError, PlatformError
from tests.rig.testimage import message

pytestmark = pytest.mark.slow  # whole builds against real peers: the suite's last tier

IMAGE_KEYS = {
    "reference", "repo_tag", "registry", "index_digest", "manifest_digest",
    "config_digest", "platform", "file", "size", "sha256",
}  # fmt: skip


def _pull(tmp: Path, refs, arch="x86_64", options=None, cache=None, retries=0, name="bundle"):
    downloader = Downloader(Cache(cache or tmp / "cache"), retries=retries, backoff=0)
    options = options or RegistryOptions(docker_config=tmp / "no-config.json")
    bundle = tmp / name
    pulled = pull_images(refs, arch, downloader, bundle, tmp / f"{name}-work", options)
    return [dataclasses.asdict(i) for i in pulled], bundle, downloader


def _mirror(tmp: Path, proxy) -> RegistryOptions:
    return RegistryOptions(registry_mirror=proxy.url, docker_config=tmp / "no-config.json")


def test_pulled_images_load_and_run_in_dockerd(
    tmp_path, front_proxy, auth_registry, token_server, dockerd
):
    image = auth_registry.image
    token_server.requests.clear()
    images, bundle, downloader = _pull(
        tmp_path, ["hello-world", "hello-list:latest"], options=_mirror(tmp_path, front_proxy)
    )
    oci, v2s2 = images
    assert set(oci) == IMAGE_KEYS
    assert oci == {
        "reference": "docker.io/library/hello-world:latest",
        "repo_tag": "hello-world:latest",
        "registry": front_proxy.url,
        "index_digest": image.indexes["latest"],
        "manifest_digest": image.manifests["amd64"],
        "config_digest": image.configs["amd64"],
        "platform": "linux/amd64",
        "file": "images/hello-world_latest.tar",
        "size": (bundle / "images/hello-world_latest.tar").stat().st_size,
        "sha256": file_digest(bundle / "images/hello-world_latest.tar")["sha256"],
    }
    assert v2s2["file"] == "images/hello-list_latest.tar"
    assert v2s2["manifest_digest"] != image.manifests["amd64"]  # converted to schema 2
    assert v2s2["config_digest"] == image.configs["amd64"]

    # config + one layer, shared by both images: fetched once, via the storage host
    assert downloader.stats.fetched == 2
    assert sorted(h.path.split("?")[0].rsplit("/", 1)[1] for h in front_proxy.storage_hits) == (
        sorted([image.configs["amd64"], image.layers["amd64"]])
    )
    assert front_proxy.leaks == []
    # one anonymous pull token per repository, reused for manifests and blobs
    assert [(r.user, r.scopes) for r in token_server.requests] == [
        (None, ["repository:library/hello-world:pull"]),
        (None, ["repository:library/hello-list:pull"]),
    ]

    for img in images:
        dockerd.docker("rmi", "-f", img["repo_tag"], check=False)
        loaded = dockerd.docker("load", "-i", str(bundle / img["file"])).stdout
        assert f"Loaded image: {img['repo_tag']}" in loaded
        image_id = dockerd.docker("image", "inspect", "-f", "{{.Id}}", img["repo_tag"]).stdout
        assert image_id.strip() == img["config_digest"]
        out = dockerd.docker("run", "--rm", "--network", "none", img["repo_tag"]).stdout
        assert out.strip() == message("amd64")
    # what an operator types after loading the bundle
    out = dockerd.docker("run", "--rm", "--network", "none", "hello-world").stdout
    assert out == message("amd64") + "\n"


def test_arm64_selects_the_arm64_manifest(tmp_path, front_proxy, auth_registry, dockerd):
    image = auth_registry.image
    (arm,), bundle, _ = _pull(
        tmp_path, ["hello-world:latest"], "aarch64", _mirror(tmp_path, front_proxy)
    )
    assert arm["platform"] == "linux/arm64/v8"
    assert arm["index_digest"] == image.indexes["latest"]
    assert arm["manifest_digest"] == image.manifests["arm64"] != image.manifests["amd64"]
    assert arm["config_digest"] == image.configs["arm64"]
    with tarfile.open(bundle / arm["file"]) as tar:
        config = json.load(tar.extractfile("blobs/sha256/" + arm["config_digest"][7:]))
    assert (config["architecture"], config["variant"]) == ("arm64", "v8")
    # an amd64 engine loads it (and would not run it): loading checks every diff_id
    dockerd.docker("rmi", "-f", "hello-world:latest", check=False)
    dockerd.docker("load", "-i", str(bundle / arm["file"]))
    inspected = dockerd.docker("image", "inspect", "-f", "{{.Id}} {{.Architecture}}",
                               "hello-world:latest").stdout.split()  # fmt: skip
    assert inspected == [arm["config_digest"], "arm64"]
    dockerd.docker("rmi", "-f", "hello-world:latest")


def test_rebuild_fetches_no_blob_and_writes_identical_tars(tmp_path, front_proxy):
    refs = ["hello-world", "hello-list"]
    first, bundle1, d1 = _pull(tmp_path, refs, options=_mirror(tmp_path, front_proxy), name="b1")
    hits = len(front_proxy.storage_hits)
    requests_before = front_proxy.blob_requests
    second, bundle2, d2 = _pull(tmp_path, refs, options=_mirror(tmp_path, front_proxy), name="b2")
    assert d1.stats.fetched == 2
    assert (d2.stats.fetched, d2.stats.from_cache, d2.stats.network_bytes) == (0, 2, 0)
    assert len(front_proxy.storage_hits) == hits
    assert front_proxy.blob_requests == requests_before
    assert first == second
    for img in first:
        assert (bundle1 / img["file"]).read_bytes() == (bundle2 / img["file"]).read_bytes()


def test_archive_is_docker_save_plus_oci_layout_and_normalised(tmp_path, plain_registry):
    image = plain_registry.image
    ref = f"{plain_registry.host}/library/hello-world:latest"
    (img,), bundle, _ = _pull(tmp_path, [ref])
    assert img["registry"] == plain_registry.url
    assert img["repo_tag"] == ref
    stem = plain_registry.host.replace(":", "-") + "_library_hello-world_latest"
    assert img["file"] == f"images/{stem}.tar"
    config_hex, layer_hex, manifest_hex = (
        d[7:] for d in (image.configs["amd64"], image.layers["amd64"], image.manifests["amd64"])
    )
    with tarfile.open(bundle / img["file"]) as tar:
        members = tar.getmembers()
        names = [m.name for m in members]
        assert names == [
            "blobs",
            "blobs/sha256",
            *sorted(f"blobs/sha256/{h}" for h in (config_hex, layer_hex, manifest_hex)),
            "index.json",
            "manifest.json",
            "oci-layout",
        ]
        for m in members:
            assert (m.mtime, m.uid, m.gid, m.uname, m.gname) == (0, 0, 0, "", "")
            assert m.mode == (0o755 if m.isdir() else 0o644)
            if m.isfile() and m.name.startswith("blobs/"):
                data = tar.extractfile(m).read()
                assert hashlib.sha256(data).hexdigest() == m.name.rsplit("/", 1)[1]
        manifest = json.load(tar.extractfile("manifest.json"))
        index = json.load(tar.extractfile("index.json"))
        assert json.load(tar.extractfile("oci-layout")) == {"imageLayoutVersion": "1.0.0"}
    assert manifest == [
        {
            "Config": f"blobs/sha256/{config_hex}",
            "RepoTags": [ref],
            "Layers": [f"blobs/sha256/{layer_hex}"],
        }
    ]
    (entry,) = index["manifests"]
    assert entry["digest"] == img["manifest_digest"]
    assert entry["annotations"] == {
        "io.containerd.image.name": ref,
        "org.opencontainers.image.ref.name": "latest",
    }


def test_digest_references(tmp_path, plain_registry):
    image = plain_registry.image
    host = plain_registry.host
    index_ref = f"{host}/library/hello-world@{image.indexes['latest']}"
    manifest_ref = f"{host}/library/hello-world@{image.manifests['arm64']}"
    by_index, by_manifest = _pull(tmp_path, [index_ref, manifest_ref], "aarch64")[0]
    assert by_index["index_digest"] == image.indexes["latest"]
    assert by_index["manifest_digest"] == image.manifests["arm64"]
    short = image.indexes["latest"][7:19]
    assert (
        by_index["file"]
        == f"images/{host.replace(':', '-')}_library_hello-world_sha256-{short}.tar"
    )
    assert by_index["repo_tag"] == f"{host}/library/hello-world:sha256-{short}"
    assert by_manifest["index_digest"] is None
    assert by_manifest["manifest_digest"] == image.manifests["arm64"]
    # a single-platform manifest must still be for the requested platform
    with pytest.raises(PlatformError, match="single-platform image for linux/arm64/v8, not"):
        _pull(tmp_path, [manifest_ref], "x86_64", name="wrong")


def test_private_repository_needs_credentials(tmp_path, auth_registry):
    ref = f"{auth_registry.host}/private/app:1.0"
    no_config = tmp_path / "no-config.json"
    with pytest.raises(AuthError) as err:
        _pull(tmp_path, [ref], name="anon")
    assert str(err.value).startswith(
        f"{auth_registry.host} refused access to private/app (HTTP 401, tried anonymous pull): "
    )
    assert not (tmp_path / "anon" / "images").exists()

    options = RegistryOptions(
        username=auth_registry.user, password=auth_registry.password, docker_config=no_config
    )
    (img,), _, _ = _pull(tmp_path, [ref], options=options, name="opts")
    assert img["manifest_digest"] == auth_registry.image.manifests["amd64"]

    config = tmp_path / "docker" / "config.json"
    config.parent.mkdir()
    auth = base64.b64encode(f"{auth_registry.user}:{auth_registry.password}".encode()).decode()
    config.write_text(json.dumps({"auths": {f"http://{auth_registry.host}": {"auth": auth}}}))
    (img2,), _, _ = _pull(tmp_path, [ref], options=RegistryOptions(docker_config=config),
                          name="cfg")  # fmt: skip
    assert img2 == img

    bad = RegistryOptions(username=auth_registry.user, password="nope", docker_config=no_config)
    with pytest.raises(AuthError, match="refused the credentials of user 'pusher'"):
        _pull(tmp_path, [ref], options=bad, name="bad")


def test_corrupted_blob_is_rejected(tmp_path, front_proxy, auth_registry):
    layer = auth_registry.image.layers["amd64"]
    front_proxy.corrupt_blobs.add(layer)
    with pytest.raises(ChecksumError) as err:
        _pull(tmp_path, ["hello-world"], options=_mirror(tmp_path, front_proxy))
    corrupted = front_proxy._body(layer)
    actual = "sha256:" + hashlib.sha256(corrupted).hexdigest()
    message_ = str(err.value)
    assert "\n" not in message_
    assert message_.startswith(
        f"checksum mismatch for docker.io/library/hello-world:latest layer 1/1 {layer[:19]} "
    )
    assert f"expected {layer}, got {actual}" in message_
    assert not (tmp_path / "bundle" / "images").exists()
    assert Cache(tmp_path / "cache").lookup(Digest.parse(layer)) is None
    assert front_proxy.leaks == []


def test_platform_not_in_index_lists_the_platforms(tmp_path, front_proxy):
    with pytest.raises(PlatformError) as err:
        _pull(tmp_path, ["hello-world:amd64-only"], "aarch64", _mirror(tmp_path, front_proxy))
    assert str(err.value) == (
        "docker.io/library/hello-world:amd64-only has no linux/arm64/v8 image; the index has "
        "linux/amd64 — choose another --arch or image"
    )


def test_tag_not_found_names_registry_and_reference(tmp_path, front_proxy):
    with pytest.raises(NotFoundError) as err:
        _pull(tmp_path, ["hello-world:nope"], options=_mirror(tmp_path, front_proxy))
    assert str(err.value) == (
        "image docker.io/library/hello-world:nope not found: "
        f"{front_proxy.url} has no tag nope in library/hello-world"
    )


def test_reference_and_option_errors(tmp_path):
    with pytest.raises(UsageError, match="would both be saved as images/a_b_1.tar"):
        _pull(tmp_path, ["a/b:1", "a_b:1"])
    with pytest.raises(UsageError, match="--registry-mirror needs a URL"):
        _pull(tmp_path, ["hello-world"], options=RegistryOptions(registry_mirror="mirror.cn"))
    with pytest.raises(UsageError, match="set AIRDOCK_REGISTRY_PASSWORD"):
        _pull(tmp_path, ["hello-world"], options=RegistryOptions(username="u"))
