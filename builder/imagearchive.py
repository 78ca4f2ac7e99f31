"""Write an image as a ``docker load`` archive, without a daemon.

Why hand-written: the only writers of this format are ``docker save`` (needs a
daemon), skopeo's ``docker-archive:`` (a Go binary the builder must not need)
and libraries that bring their own registry stack. The format itself is a tar
with one small JSON file, and we need control over its bytes to make it
reproducible.

The archive holds both layouts Docker 25+ writes, sharing the same blobs:

* ``manifest.json`` — ``[{"Config", "RepoTags", "Layers"}]``: the docker-save
  form, the only one ``docker load`` reads on Docker 20.10 through 26 (classic
  image store). Layers stay as the registry sent them (gzip or plain tar):
  ``docker load`` decompresses them and checks the result against the config's
  ``rootfs.diff_ids``;
* ``index.json`` + ``oci-layout`` — an OCI image layout pointing at the
  registry's own platform manifest (kept byte for byte under its digest), which
  the containerd image store reads.

Everything lives under ``blobs/<algo>/<hex>``, so the image ID after loading is
the config digest. Entries are sorted and normalised (mtime 0, root owner with
empty names, 0644 files, 0755 directories): the same image gives the same bytes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .tarutil import HashingWriter, add_bytes, add_dir, add_files, open_tar

MTIME = 0
OCI_LAYOUT = {"imageLayoutVersion": "1.0.0"}
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


@dataclass(frozen=True)
class Blob:
    """A verified blob on disk: ``digest`` is ``algo:hex`` of the file's bytes."""

    digest: str
    path: Path

    @property
    def arcname(self) -> str:
        algo, value = self.digest.split(":", 1)
        return f"blobs/{algo}/{value}"


def _json(data: object) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


def docker_manifest(config: Blob, layers: Sequence[Blob], repo_tags: Sequence[str]) -> bytes:
    """The docker-save ``manifest.json``: one image."""
    entry = {
        "Config": config.arcname,
        "RepoTags": list(repo_tags),
        "Layers": [layer.arcname for layer in layers],
    }
    return _json([entry])


def oci_index(
    manifest_digest: str,
    manifest_size: int,
    manifest_media_type: str,
    image_name: str | None,
    tag: str | None,
) -> bytes:
    """The OCI ``index.json`` naming the platform manifest like ``docker save`` 25+ does."""
    annotations = {}
    if image_name:
        annotations["io.containerd.image.name"] = image_name
    if tag:
        annotations["org.opencontainers.image.ref.name"] = tag
    descriptor: dict[str, Any] = {
        "mediaType": manifest_media_type,
        "digest": manifest_digest,
        "size": manifest_size,
    }
    if annotations:
        descriptor["annotations"] = annotations
    return _json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [descriptor]})


def write_image_archive(
    dest: Path,
    *,
    config: Blob,
    layers: Sequence[Blob],
    manifest: bytes,
    manifest_digest: str,
    manifest_media_type: str,
    repo_tags: Sequence[str],
    image_name: str | None = None,
    tag: str | None = None,
) -> str:
    """Write the archive to ``dest`` (atomically: a temporary name, then rename); return its
    sha256, computed as it was written.

    ``manifest`` is the registry's platform manifest as fetched (its digest is
    ``manifest_digest``); ``image_name``/``tag`` annotate the OCI index entry.
    """
    algo, value = manifest_digest.split(":", 1)
    blobs: dict[str, Path] = {}
    for blob in (config, *layers):
        blobs.setdefault(blob.arcname, blob.path)
    manifest_arcname = f"blobs/{algo}/{value}"
    files: dict[str, bytes] = {
        "index.json": oci_index(
            manifest_digest, len(manifest), manifest_media_type, image_name, tag
        ),
        "manifest.json": docker_manifest(config, layers, repo_tags),
        "oci-layout": _json(OCI_LAYOUT),
    }
    if manifest_arcname not in blobs:
        files[manifest_arcname] = manifest
    dirs = {d for name in (*blobs, *files) for d in _parents(name)}

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as out:
            writer = HashingWriter(out)
            tar = open_tar(writer)
            with tar:
                names = sorted([*dirs, *blobs, *files], key=lambda n: n.split("/"))
                for name in names:
                    if name in dirs:
                        add_dir(tar, name, MTIME)
                    elif name in blobs:
                        add_files(tar, [(name, blobs[name])], MTIME)
                    else:
                        add_bytes(tar, name, files[name], MTIME)
        os.replace(tmp, dest)
        return writer.total.hexdigest()
    finally:
        tmp.unlink(missing_ok=True)


def _parents(name: str) -> list[str]:
    """``blobs/sha256/x`` -> ``["blobs", "blobs/sha256"]``."""
    parts = name.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]
