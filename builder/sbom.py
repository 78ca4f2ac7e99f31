"""The bundle's software bill of materials: ``sbom.cdx.json``, CycloneDX 1.5 JSON.

Made from the manifest's data alone (:func:`make_sbom`), with cyclonedx-python-lib and its
JSON outputter; nothing is read from the network or the clock, so the same manifest gives
the same bytes:

* the serial number is a UUID5 over the manifest's canonical JSON (a different bundle gets
  a different serial, a rebuild of the same one the same serial);
* the timestamp is the bundle's ``created`` time (SOURCE_DATE_EPOCH or the mirror state);
* every component has an explicit ``bom-ref`` (its path in the bundle, unique there), so the
  library never invents a random one; components, hashes and properties are kept sorted by
  the library.

RPMs are ``library`` components (version ``VERSION-RELEASE``) with the purl
``pkg:rpm/<vendor>/NAME@VERSION-RELEASE?arch=A`` (plus ``&epoch=N`` when the epoch is not 0,
as in the purl spec's rpm examples); the vendor namespace is ``docker`` for packages from a
``docker-ce*`` repository and ``centos`` for the rest. Images are ``container`` components
(name ``registry/repository``, version the platform manifest digest) with the purl
``pkg:oci/NAME@sha256:…?arch=…&platform=…&repository_url=…&tag=…`` of that manifest.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cyclonedx.model import (
    ExternalReference,
    ExternalReferenceType,
    HashAlgorithm,
    HashType,
    Property,
    XsUri,
)
from cyclonedx.model.bom import Bom, BomMetaData
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.model.tool import ToolRepository
from cyclonedx.output.json import JsonV1Dot5
from packageurl import PackageURL

from .download import file_digest
from .registry import Reference

SBOM_FILE = "sbom.cdx.json"
SBOM_FORMAT = "CycloneDX 1.5"
# uuid5 namespace of airdock's SBOM serial numbers (itself uuid5(NAMESPACE_URL, the project))
SERIAL_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/airdock/airdock/sbom")
PROPERTY_PREFIX = "airdock:"


# -- purls ----------------------------------------------------------------------------------
def rpm_namespace(repo_id: str) -> str:
    """The purl namespace (vendor) of an RPM from repository ``repo_id``."""
    return "docker" if repo_id.startswith("docker-ce") else "centos"


def rpm_purl(name: str, epoch: int, version: str, release: str, arch: str, repo_id: str) -> str:
    """``pkg:rpm/<vendor>/NAME@VERSION-RELEASE?arch=ARCH[&epoch=N]`` (epoch only when not 0)."""
    qualifiers = {"arch": arch}
    if epoch:
        qualifiers["epoch"] = str(epoch)
    return PackageURL(
        type="rpm",
        namespace=rpm_namespace(repo_id),
        name=name,
        version=f"{version}-{release}",
        qualifiers=qualifiers,
    ).to_string()


def oci_purl(reference: str, manifest_digest: str, platform: str) -> str:
    """``pkg:oci/NAME@<manifest digest>?arch=…&platform=…&repository_url=…&tag=…``.

    ``repository_url`` is the repository the reference names (``docker.io/library/x``, not
    the mirror it was pulled through); ``tag`` only when the reference had one; ``arch`` is
    the purl spec's qualifier, ``platform`` the full OCI platform (``linux/arm64/v8``).
    """
    ref = Reference.parse(reference)
    qualifiers = {
        "arch": platform.split("/")[1] if "/" in platform else platform,
        "platform": platform,
        "repository_url": f"{ref.registry}/{ref.repository}",
    }
    if ref.tag:
        qualifiers["tag"] = ref.tag
    return PackageURL(
        type="oci",
        name=ref.repository.rsplit("/", 1)[-1].lower(),
        version=manifest_digest,
        qualifiers=qualifiers,
    ).to_string()


# -- the document -----------------------------------------------------------------------------
def serial_number(manifest: dict[str, Any]) -> uuid.UUID:
    """A UUID5 of the manifest's canonical JSON (an ``sbom`` entry in it is ignored)."""
    content = {k: v for k, v in manifest.items() if k != "sbom"}
    return uuid.uuid5(SERIAL_NAMESPACE, json.dumps(content, sort_keys=True, separators=(",", ":")))


def created_time(manifest: dict[str, Any]) -> datetime:
    return datetime.strptime(manifest["created"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


def _text(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _properties(**values: object) -> list[Property]:
    """``airdock:<key>`` properties (``_`` written ``-``) for the values that are not None."""
    return [
        Property(name=PROPERTY_PREFIX + key.replace("_", "-"), value=_text(value))
        for key, value in values.items()
        if value is not None
    ]


def _sha256(hexdigest: str) -> list[HashType]:
    return [HashType(alg=HashAlgorithm.SHA_256, content=hexdigest)]


def rpm_component(package: dict[str, Any], signers: dict[str, str]) -> Component:
    """One RPM of the manifest; ``signers`` maps a signing key id to its key's fingerprint."""
    key_id = package.get("signing_key")
    return Component(
        type=ComponentType.LIBRARY,
        bom_ref=package["file"],
        name=package["name"],
        version=f"{package['version']}-{package['release']}",
        purl=PackageURL.from_string(
            rpm_purl(
                package["name"],
                package["epoch"],
                package["version"],
                package["release"],
                package["arch"],
                package["repo"],
            )
        ),
        hashes=_sha256(package["sha256"]),
        external_references=[
            ExternalReference(type=ExternalReferenceType.DISTRIBUTION, url=XsUri(package["url"]))
        ],
        properties=_properties(
            file=package["file"],
            repo=package["repo"],
            signing_key=key_id,
            signer=signers.get(key_id) if key_id else None,
            requested=package.get("requested"),
        ),
    )


def image_component(image: dict[str, Any]) -> Component:
    ref = Reference.parse(image["reference"])
    return Component(
        type=ComponentType.CONTAINER,
        bom_ref=image["file"],
        name=f"{ref.registry}/{ref.repository}",
        version=image["manifest_digest"],
        purl=PackageURL.from_string(
            oci_purl(image["reference"], image["manifest_digest"], image["platform"])
        ),
        hashes=_sha256(image["sha256"]),
        external_references=[
            ExternalReference(
                type=ExternalReferenceType.DISTRIBUTION,
                url=XsUri(
                    f"{image['registry'].rstrip('/')}/v2/{ref.repository}"
                    f"/manifests/{image['manifest_digest']}"
                ),
            )
        ],
        properties=_properties(
            file=image["file"],
            reference=image["reference"],
            repo_tag=image["repo_tag"],
            index_digest=image.get("index_digest"),
            config_digest=image["config_digest"],
            platform=image["platform"],
        ),
    )


def signer_fingerprints(keys: Iterable[dict[str, Any]]) -> dict[str, str]:
    """Key id (16 hex, lower) → fingerprint of the manifest key that has it."""
    return {kid.lower(): k["fingerprint"] for k in keys for kid in k.get("key_ids", ())}


def make_bom(manifest: dict[str, Any]) -> Bom:
    signers = signer_fingerprints(manifest.get("keys", ()))
    components = [rpm_component(p, signers) for p in manifest["packages"]]
    components += [image_component(i) for i in manifest.get("images", ())]
    tool = manifest.get("tool", {})
    target = manifest.get("target", {})
    bundle = Component(
        type=ComponentType.APPLICATION,
        bom_ref=manifest["name"],
        name=manifest["name"],
        version=manifest["docker_version"],
        description=(
            f"airdock bundle: Docker CE {manifest['docker_version']} for CentOS "
            f"{target.get('releasever', '7')} {target.get('arch', '')}".rstrip()
        ),
        properties=_properties(
            arch=target.get("arch"),
            channel=manifest.get("channel"),
            closure=target.get("closure"),
            baseline=target.get("baseline"),
        ),
    )
    bom = Bom(
        serial_number=serial_number(manifest),
        metadata=BomMetaData(
            timestamp=created_time(manifest),
            tools=ToolRepository(
                components=[
                    Component(
                        type=ComponentType.APPLICATION,
                        name=tool.get("name", "airdock"),
                        version=tool.get("version"),
                    )
                ]
            ),
            component=bundle,
        ),
        components=components,
    )
    bom.register_dependency(bundle, components)  # the bundle needs every file it holds
    return bom


def make_sbom(manifest: dict[str, Any]) -> str:
    """The SBOM of the bundle ``manifest`` describes, as CycloneDX 1.5 JSON text."""
    return JsonV1Dot5(make_bom(manifest)).output_as_string(indent=2) + "\n"


def write_sbom(folder: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Write ``sbom.cdx.json`` into the bundle ``folder``; return its manifest entry."""
    path = folder / SBOM_FILE
    path.write_text(make_sbom(manifest), encoding="utf-8")
    return {"file": SBOM_FILE, "sha256": file_digest(path)["sha256"], "format": SBOM_FORMAT}
