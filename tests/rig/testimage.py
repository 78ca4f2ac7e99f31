"""A multi-arch test image, built from source as an OCI image layout.

The only layer holds ``/hello``, a static binary (``gcc -static`` for amd64,
``aarch64-linux-gnu-gcc -static`` for arm64) that prints :func:`message`. The
layout has three references, each an OCI index:

* ``latest``: amd64 + arm64 manifests and a BuildKit-style attestation entry
  (``unknown/unknown``, annotated ``vnd.docker.reference.type:
  attestation-manifest``), like Docker Hub's images;
* ``amd64-only``: the amd64 manifest and its attestation (for "platform not in index");
* ``plain``: amd64 + arm64 without attestation; ``skopeo copy --format v2s2``
  turns it into a Docker manifest list (schema 2 cannot carry in-toto layers).

``skopeo copy --all oci:DIR:REF docker://…`` pushes any of them.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from .tools import need, run

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
IN_TOTO = "application/vnd.in-toto+json"
EPOCH = "1970-01-01T00:00:00Z"

COMPILERS = {"amd64": "gcc", "arm64": "aarch64-linux-gnu-gcc"}
PLATFORMS = {
    "amd64": {"architecture": "amd64", "os": "linux"},
    "arm64": {"architecture": "arm64", "os": "linux", "variant": "v8"},
}

HELLO_C = r"""
#include <unistd.h>
static const char msg[] = MESSAGE "\n";
int main(void) { return write(1, msg, sizeof msg - 1) == (ssize_t)(sizeof msg - 1) ? 0 : 1; }
"""


def message(arch: str) -> str:
    return f"Hello from the airdock test image ({arch})"


@dataclass
class TestImage:
    """What the layout holds; digests are ``sha256:…``."""

    __test__ = False  # not a pytest test class

    layout: Path
    indexes: dict[str, str] = field(default_factory=dict)  # ref name -> index digest
    manifests: dict[str, str] = field(default_factory=dict)  # arch -> manifest digest
    configs: dict[str, str] = field(default_factory=dict)  # arch -> config digest
    layers: dict[str, str] = field(default_factory=dict)  # arch -> layer digest
    attestations: dict[str, str] = field(default_factory=dict)  # arch -> attestation digest


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _json(data: object) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


class _Layout:
    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (root / "oci-layout").write_bytes(_json({"imageLayoutVersion": "1.0.0"}))
        self.refs: list[dict] = []

    def blob(self, data: bytes, media_type: str, **extra: object) -> dict:
        digest = _digest(data)
        (self.root / "blobs" / "sha256" / digest.split(":")[1]).write_bytes(data)
        return {"mediaType": media_type, "digest": digest, "size": len(data), **extra}

    def tag(self, name: str, descriptor: dict) -> None:
        annotations = {"org.opencontainers.image.ref.name": name}
        self.refs.append({**descriptor, "annotations": annotations})

    def close(self) -> None:
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": self.refs}
        (self.root / "index.json").write_bytes(_json(index))


def _layer(binary: bytes) -> tuple[bytes, str]:
    """A one-file layer: (gzip bytes, diff_id of the uncompressed tar)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("hello")
        info.size, info.mode, info.mtime = len(binary), 0o755, 0
        tar.addfile(info, io.BytesIO(binary))
    raw = buf.getvalue()
    return gzip.compress(raw, mtime=0), _digest(raw)


def compile_hello(arch: str, workdir: Path) -> bytes:
    compiler = need(COMPILERS[arch])
    src = workdir / "hello.c"
    src.write_text(HELLO_C)
    out = workdir / f"hello-{arch}"
    define = f'-DMESSAGE="{message(arch)}"'
    run([compiler, "-static", "-Os", "-s", define, "-o", str(out), str(src)])
    return out.read_bytes()


def build_test_image(workdir: Path) -> TestImage:
    """Compile the binaries and write the OCI layout under ``workdir/layout``."""
    workdir.mkdir(parents=True, exist_ok=True)
    layout = _Layout(workdir / "layout")
    image = TestImage(layout.root)
    entries: dict[str, dict] = {}
    attestation_entries: dict[str, dict] = {}
    for arch, platform in PLATFORMS.items():
        gz, diff_id = _layer(compile_hello(arch, workdir))
        layer = layout.blob(gz, OCI_LAYER_GZIP)
        config = {
            **platform,
            "created": EPOCH,
            "config": {"Cmd": ["/hello"], "Env": ["PATH=/"]},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "history": [{"created": EPOCH, "created_by": "airdock test rig: static hello"}],
        }
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": layout.blob(_json(config), OCI_CONFIG),
            "layers": [layer],
        }
        entry = layout.blob(_json(manifest), OCI_MANIFEST, platform=platform)
        entries[arch] = entry
        image.manifests[arch] = entry["digest"]
        image.configs[arch] = manifest["config"]["digest"]
        image.layers[arch] = layer["digest"]
        attestation_entries[arch] = _attestation(layout, entry["digest"])
        image.attestations[arch] = attestation_entries[arch]["digest"]

    def index(name: str, arches: list[str], attest: bool) -> None:
        manifests = []
        for arch in arches:
            manifests.append(entries[arch])
            if attest:
                manifests.append(attestation_entries[arch])
        data = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}
        descriptor = layout.blob(_json(data), OCI_INDEX)
        layout.tag(name, descriptor)
        image.indexes[name] = descriptor["digest"]

    index("latest", ["amd64", "arm64"], attest=True)
    index("amd64-only", ["amd64"], attest=True)
    index("plain", ["amd64", "arm64"], attest=False)
    layout.close()
    return image


def _attestation(layout: _Layout, subject: str) -> dict:
    """An attestation manifest the way BuildKit attaches provenance to an image."""
    statement = _json(
        {
            "_type": "https://in-toto.io/Statement/v0.1",
            "predicateType": "https://slsa.dev/provenance/v0.2",
            "subject": [{"name": "airdock-test", "digest": {"sha256": subject.split(":")[1]}}],
            "predicate": {"builder": {"id": "airdock test rig"}},
        }
    )
    layer = layout.blob(
        statement,
        IN_TOTO,
        annotations={"in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2"},
    )
    config = {
        "architecture": "unknown",
        "os": "unknown",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]},
    }
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": layout.blob(_json(config), OCI_CONFIG),
        "layers": [layer],
    }
    return layout.blob(
        _json(manifest),
        OCI_MANIFEST,
        platform={"architecture": "unknown", "os": "unknown"},
        annotations={
            "vnd.docker.reference.digest": subject,
            "vnd.docker.reference.type": "attestation-manifest",
        },
    )


def skopeo_push(
    image: TestImage,
    ref_name: str,
    dest: str,
    *,
    creds: str | None = None,
    v2s2: bool = False,
    auth_file: Path | None = None,
) -> None:
    """``skopeo copy --all oci:LAYOUT:REF docker://DEST`` to a plain-http registry."""
    cmd = [need("skopeo"), "copy", "--all", "--quiet", "--dest-tls-verify=false"]
    if v2s2:
        cmd += ["--format", "v2s2"]
    if creds:
        cmd += ["--dest-creds", creds]
    cmd += [f"oci:{image.layout}:{ref_name}", f"docker://{dest}"]
    env = {**os.environ, "REGISTRY_AUTH_FILE": str(auth_file)} if auth_file else None
    run(cmd, env=env)
