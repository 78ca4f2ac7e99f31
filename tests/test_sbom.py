"""The bundle's SBOM, ``sbom.cdx.json``: CycloneDX 1.5, reproducible, covered by SHA256SUMS.

Pure tests first (purls, the document from a hand-written manifest), then whole builds
against the fixture mirror (and a registry for the image), the SBOM checked against the
CycloneDX 1.5 JSON schema by cyclonedx-python-lib's own validator.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packageurl import PackageURL
from typer.testing import CliRunner

from builder.cli import app
from builder.sbom import SBOM_FILE, make_sbom, oci_purl, rpm_purl, serial_number
from tests.rig.tools import run

DIGEST = "sha256:" + "2" * 64


def assert_valid(text: str) -> None:
    errors = JsonStrictValidator(SchemaVersion.V1_5).validate_str(text, all_errors=True)
    assert errors is None, [str(e) for e in errors]


def by_ref(sbom: dict) -> dict[str, dict]:
    return {c["bom-ref"]: c for c in sbom["components"]}


def props(component: dict) -> dict[str, str]:
    return {p["name"]: p["value"] for p in component.get("properties", [])}


def sha256_of(component: dict) -> str:
    [digest] = [h["content"] for h in component["hashes"] if h["alg"] == "SHA-256"]
    return digest


# -- pure: purls and the document ----------------------------------------------------------
def test_rpm_purl_vendor_namespace_and_epoch_only_when_not_zero():
    assert (
        rpm_purl("docker-ce", 3, "26.1.4", "1.el7", "x86_64", "docker-ce-stable")
        == "pkg:rpm/docker/docker-ce@26.1.4-1.el7?arch=x86_64&epoch=3"
    )
    assert (
        rpm_purl("containerd.io", 0, "1.6.33", "3.1.el7", "x86_64", "docker-ce-test")
        == "pkg:rpm/docker/containerd.io@1.6.33-3.1.el7?arch=x86_64"
    )
    assert (
        rpm_purl("container-selinux", 2, "2.119.2", "1.911c772.el7_8", "noarch", "centos-extras")
        == "pkg:rpm/centos/container-selinux@2.119.2-1.911c772.el7_8?arch=noarch&epoch=2"
    )
    purl = PackageURL.from_string(
        rpm_purl("libstdc++", 0, "4.8.5", "44.el7", "aarch64", "centos-os")
    )
    assert (purl.namespace, purl.name, purl.version) == ("centos", "libstdc++", "4.8.5-44.el7")
    assert purl.qualifiers == {"arch": "aarch64"}


def test_oci_purl_names_the_repository_not_the_mirror():
    assert oci_purl("docker.io/library/hello-world:latest", DIGEST, "linux/amd64") == (
        f"pkg:oci/hello-world@{DIGEST}?arch=amd64&platform=linux/amd64"
        "&repository_url=docker.io/library/hello-world&tag=latest"
    )
    purl = PackageURL.from_string(
        oci_purl(f"127.0.0.1:5000/team/app@{DIGEST}", DIGEST, "linux/arm64/v8")
    )
    assert (purl.name, purl.version) == ("app", DIGEST)
    assert purl.qualifiers == {
        "arch": "arm64",
        "platform": "linux/arm64/v8",
        "repository_url": "127.0.0.1:5000/team/app",
    }


def sample_manifest() -> dict:
    """The manifest fields the SBOM reads, as bundle.make_manifest writes them."""
    docker_key, centos_key = "c52feb6b621e9f35", "24c6a8a7f4a80eb5"
    return {
        "format": "airdock-bundle",
        "format_version": 1,
        "name": "airdock-docker-ce-26.1.4-el7-x86_64-docker",
        "tool": {"name": "airdock", "version": "0.1.0"},
        "created": "2024-06-30T00:00:00Z",
        "docker_version": "26.1.4",
        "channel": "stable",
        "target": {
            "os": "centos",
            "releasever": "7",
            "arch": "x86_64",
            "baseline": "centos-7.9.2009 @core",
            "closure": "minimal",
        },
        "keys": [
            {"file": "keys/docker.asc", "fingerprint": "A" * 40, "key_ids": [docker_key]},
            {"file": "keys/centos.asc", "fingerprint": "B" * 40, "key_ids": [centos_key]},
        ],
        "packages": [
            {
                "name": "docker-ce",
                "epoch": 3,
                "version": "26.1.4",
                "release": "1.el7",
                "arch": "x86_64",
                "file": "rpms/docker-ce-26.1.4-1.el7.x86_64.rpm",
                "size": 1,
                "sha256": "a" * 64,
                "url": "https://download.docker.com/linux/centos/7/x86_64/stable/Packages/"
                "docker-ce-26.1.4-1.el7.x86_64.rpm",
                "repo": "docker-ce-stable",
                "signing_key": docker_key,
                "requested": True,
            },
            {
                "name": "slirp4netns",
                "epoch": 0,
                "version": "0.4.3",
                "release": "4.el7_8",
                "arch": "x86_64",
                "file": "rpms/slirp4netns-0.4.3-4.el7_8.x86_64.rpm",
                "size": 2,
                "sha256": "b" * 64,
                "url": "https://vault.centos.org/7.9.2009/extras/x86_64/Packages/"
                "slirp4netns-0.4.3-4.el7_8.x86_64.rpm",
                "repo": "centos-extras",
                "signing_key": centos_key,
                "requested": False,
            },
        ],
        "images": [
            {
                "reference": "docker.io/library/hello-world:latest",
                "repo_tag": "hello-world:latest",
                "registry": "https://registry-1.docker.io",
                "index_digest": "sha256:" + "1" * 64,
                "manifest_digest": DIGEST,
                "config_digest": "sha256:" + "3" * 64,
                "platform": "linux/amd64",
                "file": "images/hello-world_latest.tar",
                "size": 3,
                "sha256": "c" * 64,
            }
        ],
    }


def test_sbom_of_a_manifest_is_valid_cyclonedx_1_5():
    text = make_sbom(sample_manifest())
    assert_valid(text)
    sbom = json.loads(text)
    assert (sbom["bomFormat"], sbom["specVersion"]) == ("CycloneDX", "1.5")
    assert sbom["metadata"]["timestamp"] == "2024-06-30T00:00:00+00:00"
    assert sbom["metadata"]["tools"]["components"] == [
        {"name": "airdock", "type": "application", "version": "0.1.0"}
    ]
    root = sbom["metadata"]["component"]
    assert (root["name"], root["version"]) == (
        "airdock-docker-ce-26.1.4-el7-x86_64-docker",
        "26.1.4",
    )
    [root_deps] = [d for d in sbom["dependencies"] if d["ref"] == root["bom-ref"]]
    assert sorted(root_deps["dependsOn"]) == sorted(by_ref(sbom))

    components = by_ref(sbom)
    ce = components["rpms/docker-ce-26.1.4-1.el7.x86_64.rpm"]
    assert (ce["type"], ce["name"], ce["version"]) == ("library", "docker-ce", "26.1.4-1.el7")
    assert ce["purl"] == "pkg:rpm/docker/docker-ce@26.1.4-1.el7?arch=x86_64&epoch=3"
    assert sha256_of(ce) == "a" * 64
    assert props(ce)["airdock:signer"] == "A" * 40
    assert props(ce)["airdock:repo"] == "docker-ce-stable"
    assert props(ce)["airdock:requested"] == "true"
    assert ce["externalReferences"] == [
        {"type": "distribution", "url": sample_manifest()["packages"][0]["url"]}
    ]
    slirp = components["rpms/slirp4netns-0.4.3-4.el7_8.x86_64.rpm"]
    assert slirp["purl"] == "pkg:rpm/centos/slirp4netns@0.4.3-4.el7_8?arch=x86_64"
    assert props(slirp)["airdock:signer"] == "B" * 40

    image = components["images/hello-world_latest.tar"]
    assert (image["type"], image["name"]) == ("container", "docker.io/library/hello-world")
    assert image["purl"] == oci_purl("docker.io/library/hello-world:latest", DIGEST, "linux/amd64")
    assert sha256_of(image) == "c" * 64
    assert props(image)["airdock:config-digest"] == "sha256:" + "3" * 64


def test_sbom_bytes_depend_on_the_manifest_only():
    manifest = sample_manifest()
    first = make_sbom(manifest)
    shuffled = copy.deepcopy(manifest)
    shuffled["packages"].reverse()
    shuffled["keys"].reverse()
    assert make_sbom(manifest) == first
    assert (
        make_sbom(shuffled).replace(str(serial_number(shuffled)), str(serial_number(manifest)))
        == first
    )  # the order of the input does not matter, only the serial sees it
    changed = copy.deepcopy(manifest)
    changed["packages"][1]["sha256"] = "d" * 64
    assert serial_number(changed) != serial_number(manifest)
    with_entry = dict(manifest, sbom={"file": SBOM_FILE, "sha256": "e" * 64})
    assert serial_number(with_entry) == serial_number(manifest)
    assert json.loads(first)["serialNumber"] == serial_number(manifest).urn


def test_sbom_without_images_or_signer():
    manifest = sample_manifest()
    manifest["images"] = []
    manifest["keys"] = []
    manifest["packages"][1]["signing_key"] = None
    text = make_sbom(manifest)
    assert_valid(text)
    components = by_ref(json.loads(text))
    assert [c["type"] for c in components.values()] == ["library", "library"]
    assert "airdock:signer" not in props(components["rpms/docker-ce-26.1.4-1.el7.x86_64.rpm"])
    assert "airdock:signing-key" not in props(
        components["rpms/slirp4netns-0.4.3-4.el7_8.x86_64.rpm"]
    )


# -- whole builds ------------------------------------------------------------------------------
def airdock_build(mirror_args: list[str], output: Path, cache: Path, *extra: str) -> Path:
    result = CliRunner().invoke(
        app,
        ["build", *mirror_args, "--output", str(output), "--cache-dir", str(cache), "--json"]
        + [str(e) for e in extra],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    return Path(json.loads(result.stdout)["bundle"])


@pytest.fixture(scope="module")
def sbom_bundles(tmp_path_factory, fixture_mirror, mirror_server):
    """The default build (no images) twice: into two outputs, the second from the cache."""
    from tests.rig.fixtures_mirror import builder_mirror_args

    tmp = tmp_path_factory.mktemp("sbom-bundles")
    args = builder_mirror_args(fixture_mirror, mirror_server.url)
    return [airdock_build(args, tmp / out, tmp / "cache", "--no-images") for out in ("a", "b")]


def check_bundle_lists_sbom(folder: Path) -> dict:
    """The SBOM is in the manifest and SHA256SUMS, and ``sha256sum -c`` passes; its JSON."""
    manifest = json.loads((folder / "manifest.json").read_text())
    path = folder / SBOM_FILE
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert manifest["sbom"] == {"file": SBOM_FILE, "sha256": digest, "format": "CycloneDX 1.5"}
    assert f"{digest}  {SBOM_FILE}\n" in (folder / "SHA256SUMS").read_text()
    check = run(["sha256sum", "-c", "--strict", "SHA256SUMS"], cwd=folder)
    assert f"{SBOM_FILE}: OK" in check.stdout
    text = path.read_text()
    assert_valid(text)
    return json.loads(text)


@pytest.mark.slow
def test_default_bundle_sbom_lists_every_package(sbom_bundles):
    folder = sbom_bundles[0]
    sbom = check_bundle_lists_sbom(folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert sbom["metadata"]["timestamp"] == manifest["created"].replace("Z", "+00:00")
    assert sbom["metadata"]["component"]["name"] == folder.name
    fingerprints = {k["fingerprint"] for k in manifest["keys"]}
    components = by_ref(sbom)
    assert set(components) == {p["file"] for p in manifest["packages"]}
    for p in manifest["packages"]:
        component = components[p["file"]]
        vendor = "docker" if p["repo"].startswith("docker-ce") else "centos"
        epoch = f"&epoch={p['epoch']}" if p["epoch"] else ""
        assert component["purl"] == (
            f"pkg:rpm/{vendor}/{p['name']}@{p['version']}-{p['release']}?arch={p['arch']}{epoch}"
        )
        assert sha256_of(component) == hashlib.sha256((folder / p["file"]).read_bytes()).hexdigest()
        assert props(component)["airdock:signer"] in fingerprints
        assert component["externalReferences"] == [{"type": "distribution", "url": p["url"]}]
    ce = components[next(p["file"] for p in manifest["packages"] if p["name"] == "docker-ce")]
    assert ce["purl"].startswith("pkg:rpm/docker/docker-ce@26.1.4-1.el7?arch=x86_64&epoch=3")


@pytest.mark.slow
def test_two_builds_give_the_same_sbom_bytes(sbom_bundles):
    first, second = (folder / SBOM_FILE for folder in sbom_bundles)
    assert first.read_bytes() == second.read_bytes()


def test_bundle_with_an_image_lists_it_with_its_digest(
    tmp_path, mirror_args, mirror, plain_registry
):
    folder = airdock_build(
        mirror_args, tmp_path / "o", tmp_path / "c", "--registry-mirror", plain_registry.url
    )
    sbom = check_bundle_lists_sbom(folder)
    [image] = json.loads((folder / "manifest.json").read_text())["images"]
    component = by_ref(sbom)[image["file"]]
    assert component["type"] == "container"
    assert component["version"] == image["manifest_digest"]
    assert component["purl"] == (
        f"pkg:oci/hello-world@{image['manifest_digest']}?arch=amd64&platform=linux/amd64"
        "&repository_url=docker.io/library/hello-world&tag=latest"
    )
    assert sha256_of(component) == hashlib.sha256((folder / image["file"]).read_bytes()).hexdigest()
    assert props(component)["airdock:config-digest"] == image["config_digest"]
    [distribution] = component["externalReferences"]
    assert distribution["url"].startswith(plain_registry.url.rstrip("/") + "/v2/library/")
