"""Pytest fixtures: the signed fixture mirror, its HTTP server and dnf installroots.

Session scope
-------------
``fixture_mirror``             FixtureMirror, x86_64 only (built once, cached on disk
                               across sessions under .cache/fixture-mirror/)
``fixture_mirror_multiarch``   FixtureMirror with x86_64 + aarch64 (built only when a test
                               asks for it; it has its OWN keys, distinct from
                               ``fixture_mirror``'s)
``mirror_server``              MirrorServer serving ``fixture_mirror.root``
``mirror_server_multiarch``    MirrorServer serving ``fixture_mirror_multiarch.root``

Function scope
--------------
``mirror``                     ``mirror_server``, with records and fault rules reset before
                               and after the test
``mirror_multiarch``           the same for ``mirror_server_multiarch``
``mirror_args``                builder CLI arguments for the fixture mirror: ``--mirror URL/
                               docker-ce --os-mirror URL/centos-vault --gpg-key DOCKER_KEY
                               --gpg-key CENTOS_KEY``
``mirror_args_multiarch``      the same for the multiarch mirror
``baseline_root``              factory ``baseline_root(name="root", arch="x86_64") -> DnfRoot``:
                               a fresh copy (below tmp_path) of a root with both fixture keys
                               imported and ``@core`` installed from the os repo; its dnf
                               config enables all four fixture repos on the session server
``empty_root``                 factory ``empty_root(name="empty", arch="x86_64") -> DnfRoot``:
                               keys imported, nothing installed

Helper: ``fixture_dnfroot(path, mirror, base_url, arch="x86_64") -> DnfRoot``.

The pristine baseline is installed once per session per arch, through a private
short-lived server, so its dnf traffic never shows up in ``mirror`` counts.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.rig.dnfroot import DnfRoot
from tests.rig.httpserver import MirrorServer
from tests.rig.mirror import FixtureMirror, cached_fixture_mirror


def fixture_dnfroot(path: Path, mirror: FixtureMirror, base_url: str, arch="x86_64") -> DnfRoot:
    """A DnfRoot at ``path`` with the mirror's four repos (below ``base_url``) and both keys."""
    return DnfRoot(Path(path), mirror.repo_urls(base_url, arch), mirror.keys, arch=arch)


def builder_mirror_args(mirror: FixtureMirror, base_url: str) -> list[str]:
    base = base_url.rstrip("/")
    return [
        "--mirror", f"{base}/docker-ce",
        "--os-mirror", f"{base}/centos-vault",
        "--gpg-key", str(mirror.key_file),
        "--gpg-key", str(mirror.centos_key_file),
    ]  # fmt: skip


# ------------------------------------------------------------------ mirrors and servers


@pytest.fixture(scope="session")
def fixture_mirror() -> FixtureMirror:
    return cached_fixture_mirror(("x86_64",))


@pytest.fixture(scope="session")
def fixture_mirror_multiarch() -> FixtureMirror:
    return cached_fixture_mirror(("x86_64", "aarch64"))


@pytest.fixture(scope="session")
def mirror_server(fixture_mirror: FixtureMirror) -> Iterator[MirrorServer]:
    with MirrorServer(fixture_mirror.root) as server:
        yield server


@pytest.fixture(scope="session")
def mirror_server_multiarch(fixture_mirror_multiarch: FixtureMirror) -> Iterator[MirrorServer]:
    with MirrorServer(fixture_mirror_multiarch.root) as server:
        yield server


@pytest.fixture
def mirror(mirror_server: MirrorServer) -> Iterator[MirrorServer]:
    mirror_server.reset()
    yield mirror_server
    mirror_server.reset()


@pytest.fixture
def mirror_multiarch(mirror_server_multiarch: MirrorServer) -> Iterator[MirrorServer]:
    mirror_server_multiarch.reset()
    yield mirror_server_multiarch
    mirror_server_multiarch.reset()


@pytest.fixture
def mirror_args(fixture_mirror: FixtureMirror, mirror_server: MirrorServer) -> list[str]:
    return builder_mirror_args(fixture_mirror, mirror_server.url)


@pytest.fixture
def mirror_args_multiarch(
    fixture_mirror_multiarch: FixtureMirror, mirror_server_multiarch: MirrorServer
) -> list[str]:
    return builder_mirror_args(fixture_mirror_multiarch, mirror_server_multiarch.url)


# ------------------------------------------------------------------ installroots


class _Templates:
    """Pristine roots per (kind, arch), built lazily once per session."""

    def __init__(self, base: Path):
        self.base = base
        self.roots: dict[tuple[str, str], DnfRoot] = {}
        self.lock = threading.Lock()

    def get(self, kind: str, arch: str, mirror: FixtureMirror, server: MirrorServer) -> DnfRoot:
        with self.lock:
            key = (kind, arch)
            if key not in self.roots:
                path = self.base / f"{kind}-{arch}"
                # A private server: the template's dnf traffic stays out of `mirror` counts.
                with MirrorServer(mirror.root) as private:
                    root = fixture_dnfroot(path, mirror, private.url, arch)
                    root.import_keys()
                    if kind == "baseline":
                        root.install_group_core()
                self.roots[key] = DnfRoot(
                    root.root, mirror.repo_urls(server.url, arch), mirror.keys, arch=arch
                )
            return self.roots[key]


@pytest.fixture(scope="session")
def _root_templates(tmp_path_factory: pytest.TempPathFactory) -> _Templates:
    return _Templates(tmp_path_factory.mktemp("dnf-templates"))


def _root_factory(kind: str, request: pytest.FixtureRequest, tmp_path: Path, templates):
    def make(name: str = kind if kind != "baseline" else "root", arch: str = "x86_64") -> DnfRoot:
        if arch == "x86_64":
            mirror = request.getfixturevalue("fixture_mirror")
            server = request.getfixturevalue("mirror_server")
        else:
            mirror = request.getfixturevalue("fixture_mirror_multiarch")
            server = request.getfixturevalue("mirror_server_multiarch")
        dest = tmp_path / name
        if dest.exists():
            raise FileExistsError(f"{dest} already exists; pass another name")
        return templates.get(kind, arch, mirror, server).copy(dest)

    return make


@pytest.fixture
def baseline_root(request: pytest.FixtureRequest, tmp_path: Path, _root_templates):
    """Factory: ``baseline_root(name="root", arch="x86_64")`` -> a @core DnfRoot copy."""
    return _root_factory("baseline", request, tmp_path, _root_templates)


@pytest.fixture
def empty_root(request: pytest.FixtureRequest, tmp_path: Path, _root_templates):
    """Factory: ``empty_root(name="empty", arch="x86_64")`` -> keys imported, nothing installed."""
    return _root_factory("empty", request, tmp_path, _root_templates)
