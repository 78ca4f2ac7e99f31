"""Pull images for one platform into ``images/<name>_<tag>.tar`` docker-load archives.

The flow is the builder's usual one: resolve every reference to a platform
manifest first (small verified documents), then fetch all blobs in parallel
through the Downloader (cache keyed by digest: a rebuild fetches none), then
check each config against its manifest and write the archives.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .download import Downloader, parallel
from .errors import MirrorError, UsageError, VerifyError
from .imagearchive import Blob, write_image_archive
from .manifest import ManifestImage
from .registry import (
    CONFIG_TYPES,
    LAYER_TYPES,
    Credentials,
    Descriptor,
    Manifest,
    Platform,
    PlatformError,
    Reference,
    RegistryClient,
    default_docker_config,
    docker_config_credentials,
    platform_for_arch,
    registry_url,
    select_platform,
)


@dataclass
class RegistryOptions:
    registry_mirror: str | None = None  # pull-through mirror for Docker Hub images
    username: str | None = None
    password: str | None = None  # the CLI reads it from env AIRDOCK_REGISTRY_PASSWORD
    docker_config: Path | None = None  # default $DOCKER_CONFIG/config.json or ~/.docker/


@dataclass
class ResolvedImage:
    """One reference resolved to a verified platform manifest: what a plan shows, and what
    :func:`fetch_images` then downloads (its blobs are named by these digests)."""

    ref: Reference
    client: RegistryClient
    index_digest: str | None
    manifest: Manifest
    config: Descriptor
    layers: list[Descriptor]
    platform: Platform

    @property
    def file(self) -> str:
        return f"images/{self.ref.file_stem}.tar"

    @property
    def size(self) -> int:
        """Bytes to download: the config and every layer."""
        return self.config.size + sum(layer.size for layer in self.layers)

    def describe(self) -> dict[str, Any]:
        """The plan's view of the image (``--dry-run --json``)."""
        return {
            "reference": str(self.ref),
            "platform": str(self.platform),
            "registry": self.client.base_url,
            "index_digest": self.index_digest,
            "manifest_digest": self.manifest.digest,
            "config_digest": self.config.digest,
            "size": self.size,
        }


class _Clients:
    """One RegistryClient per base URL, with the credentials that apply to it."""

    def __init__(self, downloader: Downloader, options: RegistryOptions) -> None:
        self.downloader = downloader
        self.options = options
        self._clients: dict[str, RegistryClient] = {}

    def for_ref(self, ref: Reference) -> RegistryClient:
        mirror = self.options.registry_mirror
        if mirror and "://" not in mirror:
            raise UsageError(f"--registry-mirror needs a URL with http:// or https://: {mirror!r}")
        base = registry_url(ref.registry, mirror)
        if base not in self._clients:
            name = ref.registry if base == registry_url(ref.registry) else base
            self._clients[base] = RegistryClient(
                base, self.downloader, self._credentials(base, ref.registry), name
            )
        return self._clients[base]

    def _credentials(self, base: str, registry: str) -> Credentials | None:
        o = self.options
        if o.username:
            if o.password is None:
                raise UsageError("a registry user needs a password: set AIRDOCK_REGISTRY_PASSWORD")
            return Credentials(o.username, o.password, "--registry-user")
        config = o.docker_config or default_docker_config()
        host = registry if base == registry_url(registry) else base
        return docker_config_credentials(config, host)


def resolve_images(
    references: Sequence[str], arch: str, downloader: Downloader, options: RegistryOptions
) -> list[ResolvedImage]:
    """Every reference resolved to its verified platform manifest (small documents only).

    Runs before any RPM is downloaded, so a typo, a private image or an unreachable
    registry fails the build before hundreds of megabytes are fetched.
    """
    platform = platform_for_arch(arch)
    clients = _Clients(downloader, options)
    images = []
    for ref in _unique_refs(references):
        client = clients.for_ref(ref)
        try:
            images.append(_resolve(ref, client, platform))
        except MirrorError as exc:
            if type(exc) is not MirrorError:
                raise  # not found, refused, tampered: the message already says what to do
            raise MirrorError(
                f"cannot pull {ref} from {client.name}: {exc}; where the registry is blocked, "
                "use --registry-mirror URL (a pull-through mirror) or build with --no-images"
            ) from exc
    return images


def fetch_images(
    images: Sequence[ResolvedImage],
    arch: str,
    bundle_dir: Path,
    workdir: Path,
    jobs: int = 4,
) -> list[ManifestImage]:
    """Fetch the blobs of resolved images and write ``bundle_dir/images/*.tar``.

    Returns the objects of the "Image object" table in docs/bundle-format.md, in the
    order of the references (duplicates removed).
    """
    platform = platform_for_arch(arch)
    blobs: dict[str, tuple[ResolvedImage, Descriptor, str]] = {}
    for img in images:
        blobs.setdefault(img.config.digest, (img, img.config, f"{img.ref} config"))
    paths = _fetch_blobs(blobs, workdir / "blobs", jobs)
    for img in images:  # small configs first: a wrong image fails before its layers download
        _check_config(img, platform, paths[img.config.digest])

    blobs = {}
    for img in images:
        for i, layer in enumerate(img.layers, 1):
            label = f"{img.ref} layer {i}/{len(img.layers)} {layer.digest[:19]}"
            blobs.setdefault(layer.digest, (img, layer, label))
    paths.update(_fetch_blobs(blobs, workdir / "blobs", jobs))

    return [_write(img, platform, paths, bundle_dir) for img in images]


def pull_images(
    references: Sequence[str],
    arch: str,
    downloader: Downloader,
    bundle_dir: Path,
    workdir: Path,
    options: RegistryOptions,
    jobs: int = 4,
) -> list[ManifestImage]:
    """Resolve, then fetch: each reference for ``arch`` into ``bundle_dir/images/``."""
    images = resolve_images(references, arch, downloader, options)
    return fetch_images(images, arch, bundle_dir, workdir, jobs)


def _fetch_blobs(
    blobs: dict[str, tuple[ResolvedImage, Descriptor, str]], blob_dir: Path, jobs: int
) -> dict[str, Path]:
    """Fetch blobs in parallel (each digest once); the first error cancels the rest."""

    def fetch(digest: str) -> Path:
        img, desc, label = blobs[digest]
        dest = blob_dir / digest.replace(":", "/", 1)
        return img.client.fetch_blob(img.ref.repository, desc, dest, label).path

    digests = list(blobs)
    return dict(zip(digests, parallel(fetch, digests, jobs)))


def _unique_refs(references: Sequence[str]) -> list[Reference]:
    refs: dict[str, Reference] = {}
    files: dict[str, str] = {}
    for text in references:
        ref = Reference.parse(text)
        if str(ref) in refs:
            continue
        other = files.setdefault(ref.file_stem, str(ref))
        if other != str(ref):
            raise UsageError(
                f"images {other} and {ref} would both be saved as "
                f"images/{ref.file_stem}.tar; bundle only one of them"
            )
        refs[str(ref)] = ref
    return list(refs.values())


def _resolve(ref: Reference, client: RegistryClient, platform: Platform) -> ResolvedImage:
    where = str(ref)
    top = client.manifest(ref.repository, ref.manifest_ref, where)
    index_digest = None
    manifest = top
    if top.is_index:
        index_digest = top.digest
        entry = select_platform(top, platform, where)
        manifest = client.manifest(ref.repository, entry.digest, f"{where} ({platform})")
        if manifest.is_index:
            raise VerifyError(f"{where}: the {platform} entry is another index, not an image")
    config = manifest.config(where)
    if config.media_type not in CONFIG_TYPES:
        raise VerifyError(f"{where} is not a container image (config type {config.media_type!r})")
    layers = manifest.layers(where)
    for layer in layers:
        if layer.media_type not in LAYER_TYPES:
            raise VerifyError(
                f"{where} has a layer of type {layer.media_type!r} that docker load cannot "
                "read (only tar and tar+gzip layers are supported)"
            )
    return ResolvedImage(ref, client, index_digest, manifest, config, layers, platform)


def _check_config(img: ResolvedImage, platform: Platform, path: Path) -> None:
    """The config must be an image for ``platform`` with one diff_id per layer."""
    where = str(img.ref)
    try:
        config = json.loads(path.read_bytes())
        diff_ids = config["rootfs"]["diff_ids"]
        found = Platform.of(config)
    except (ValueError, KeyError, TypeError) as exc:
        raise VerifyError(f"{where}: the image config is not valid ({exc})") from exc
    if (found.os, found.architecture) != (platform.os, platform.architecture):
        if img.index_digest is None:
            raise PlatformError(
                f"{where} is a single-platform image for {found}, not {platform} — "
                "choose another --arch or image"
            )
        raise VerifyError(f"{where}: the index entry for {platform} points at a {found} image")
    if len(diff_ids) != len(img.layers):
        raise VerifyError(
            f"{where}: the config lists {len(diff_ids)} layers, the manifest {len(img.layers)}"
        )


def _write(
    img: ResolvedImage, platform: Platform, paths: dict[str, Path], bundle_dir: Path
) -> ManifestImage:
    config_path = paths[img.config.digest]
    dest = bundle_dir / img.file
    sha256 = write_image_archive(
        dest,
        config=Blob(img.config.digest, config_path),
        layers=[Blob(layer.digest, paths[layer.digest]) for layer in img.layers],
        manifest=img.manifest.raw,
        manifest_digest=img.manifest.digest,
        manifest_media_type=img.manifest.media_type,
        repo_tags=[img.ref.repo_tag],
        image_name=_containerd_name(img.ref),
        tag=img.ref.tag_or_pseudo,
    )
    return ManifestImage(
        reference=str(img.ref),
        repo_tag=img.ref.repo_tag,
        registry=img.client.base_url,
        index_digest=img.index_digest,
        manifest_digest=img.manifest.digest,
        config_digest=img.config.digest,
        platform=str(platform),
        file=img.file,
        size=dest.stat().st_size,
        sha256=sha256,
    )


def _containerd_name(ref: Reference) -> str:
    """The full name containerd's image store gives the image (``docker.io/library/x:t``)."""
    return f"{ref.registry}/{ref.repository}:{ref.tag_or_pseudo}"
