"""Pytest fixtures for the installer's sandbox host (see tests/rig/sandbox.py, tests/README.md).

Session scope (built once)
--------------------------
``sandbox_templates``   ``.get("core" | "old-docker") -> DnfRoot``: pristine installroots with
                        ``@core`` and the CentOS fixture key imported (not Docker's: the
                        installer imports it); "old-docker" adds CentOS's docker 1.13
                        (``dnf install docker`` from the fixture extras repo).
``publisher``           the rig's publisher key (rig/publisher.py): every sandbox bundle is
                        signed with it (``--sign-key``) and sandbox hosts trust it by default.
``installer_bundles``   ``{"26.1.4": Path, "25.0.5": Path}``: bundles built by ``airdock build``
                        from the fixture mirror, ``--no-images``, signed by ``publisher``.
``image_bundles``       the same two versions with ``hello-world:latest`` pulled from the plain
                        fixture registry (``--registry-mirror``).
``aarch64_bundle``      a 26.1.4 bundle built ``--arch aarch64`` from the multi-arch mirror.

Function scope
--------------
``sandbox``             factory ``sandbox(root="core", os_release=CENTOS_7, kernel=KERNEL_EL7,
                        name="sb", trust=True) -> Sandbox``; ``trust`` puts the publisher's key
                        in the host's /etc/airdock/trusted-keys; every sandbox is stopped (its
                        daemons ended by PID) and removed at teardown.
``bundle_copy``         factory ``bundle_copy(bundle, name=None) -> Path``: a private copy of a
                        bundle folder to tamper with.

``INSTALLER_PYTHONS``   the interpreters the installer must run on: pyenv's 2.7.18 and 3.6.15 and
                        the current one; ``installer_python(label)`` resolves one (skip/fail like
                        every missing tool).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.rig import mirror as rig
from tests.rig.dnfroot import DnfRoot
from tests.rig.fixtures_mirror import builder_mirror_args, fixture_dnfroot
from tests.rig.httpserver import MirrorServer
from tests.rig.mirror import FixtureMirror
from tests.rig.publisher import Publisher, make_publisher, use
from tests.rig.sandbox import CENTOS_7, KERNEL_EL7, Sandbox
from tests.rig.tools import IN_CI, need, pyenv_python

INSTALLER_PYTHONS = ("2.7", "3.6", "current")
BUNDLE_VERSIONS = ("26.1.4", "25.0.5")


def installer_python(label: str) -> str:
    if label == "2.7":
        return pyenv_python("2.7.18")
    if label == "3.6":
        return pyenv_python("3.6.15")
    return sys.executable


def airdock_cli() -> list[str]:
    """The builder CLI of this checkout (the venv's console script, else ``python -m``)."""
    script = Path(sys.executable).with_name("airdock")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from builder.cli import main; main()"]


def build_bundle(
    mirror: FixtureMirror,
    server_url: str,
    output: Path,
    cache: Path,
    version: str,
    *extra: str,
) -> Path:
    """``airdock build`` from the fixture mirror; returns the bundle folder."""
    cmd = [
        *airdock_cli(), "build", *builder_mirror_args(mirror, server_url),
        "--docker-version", version, "--output", str(output), "--cache-dir", str(cache),
        "--json", *extra,
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise AssertionError(f"airdock build failed:\n{proc.stdout}\n{proc.stderr}")
    summary = json.loads(proc.stdout)
    folder = Path(summary.get("folder") or summary.get("bundle") or "")
    if not folder.is_dir():
        found = sorted(output.glob(f"airdock-docker-ce-{version}-*"))
        folder = next(p for p in found if p.is_dir())
    return folder


def forget_docker_key(root: DnfRoot) -> None:
    """A CentOS host trusts CentOS's key, not Docker's: the installer has to import it."""
    out = root.rpm("-q", "gpg-pubkey", "--qf", "%{NAME}-%{VERSION}-%{RELEASE}\t%{SUMMARY}\n")
    for line in out.stdout.splitlines():
        name, _, summary = line.partition("\t")
        if rig.DOCKER_UID in summary:
            root.rpm("-e", name)


class _SandboxTemplates:
    def __init__(self, base: Path, mirror: FixtureMirror):
        self.base = base
        self.mirror = mirror
        self.roots: dict[str, DnfRoot] = {}
        self.lock = threading.Lock()

    def get(self, kind: str) -> DnfRoot:
        with self.lock:
            if kind not in self.roots:
                with MirrorServer(self.mirror.root) as private:
                    root = fixture_dnfroot(self.base / kind, self.mirror, private.url)
                    root.import_keys()
                    root.install_group_core()
                    if kind == "old-docker":
                        root.install_names(["docker"])
                    elif kind != "core":
                        raise ValueError(f"unknown sandbox root {kind!r}")
                    forget_docker_key(root)
                self.roots[kind] = root
            return self.roots[kind]


@pytest.fixture(scope="session")
def sandbox_templates(tmp_path_factory, fixture_mirror) -> _SandboxTemplates:
    need("dnf")
    need("unshare")
    need("setpriv")
    if os.geteuid() != 0:
        message = "the sandbox host needs root (unshare --mount, mount --bind)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return _SandboxTemplates(tmp_path_factory.mktemp("sandbox-templates"), fixture_mirror)


@pytest.fixture(scope="session")
def publisher(tmp_path_factory) -> Publisher:
    """The rig's publisher key: signs the sandbox bundles; sandbox hosts trust it."""
    return use(make_publisher(tmp_path_factory.mktemp("publisher")))


@pytest.fixture(scope="session")
def installer_bundles(
    tmp_path_factory, fixture_mirror, mirror_server, publisher
) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("installer-bundles")
    return {
        v: build_bundle(
            fixture_mirror,
            mirror_server.url,
            out / "bundles",
            out / "cache",
            v,
            "--no-images",
            "--sign-key",
            str(publisher.secret),
        )  # fmt: skip
        for v in BUNDLE_VERSIONS
    }


@pytest.fixture(scope="session")
def image_bundles(
    tmp_path_factory, fixture_mirror, mirror_server, plain_registry, publisher
) -> dict:
    out = tmp_path_factory.mktemp("image-bundles")
    return {
        v: build_bundle(
            fixture_mirror,
            mirror_server.url,
            out / "bundles",
            out / "cache",
            v,
            "--image",
            "hello-world:latest",
            "--registry-mirror",
            plain_registry.url,
            "--sign-key",
            str(publisher.secret),
        )  # fmt: skip
        for v in BUNDLE_VERSIONS
    }


@pytest.fixture(scope="session")
def aarch64_bundle(
    tmp_path_factory, fixture_mirror_multiarch, mirror_server_multiarch, publisher
) -> Path:
    """A genuine aarch64 bundle (for the arch-mismatch check on this x86_64 host)."""
    out = tmp_path_factory.mktemp("aarch64-bundle")
    return build_bundle(fixture_mirror_multiarch, mirror_server_multiarch.url, out / "bundles",
                        out / "cache", "26.1.4", "--arch", "aarch64", "--no-images",
                        "--sign-key", str(publisher.secret))  # fmt: skip


@pytest.fixture
def sandbox(tmp_path: Path, sandbox_templates, publisher) -> Iterator:
    """``sandbox(root="core", os_release=…, kernel=…, name="sb", trust=True)``: a sandbox host;
    ``trust`` provisions the rig's publisher key in its /etc/airdock/trusted-keys."""
    made: list[Sandbox] = []

    def make(
        root: str = "core", os_release: str = CENTOS_7, kernel: str = KERNEL_EL7,
        name: str = "sb", trust: bool = True,
    ) -> Sandbox:  # fmt: skip
        base = tmp_path / name
        if base.exists():
            raise FileExistsError(f"{base} already exists; pass another name")
        base.mkdir()
        copy = sandbox_templates.get(root).copy(base / "root")
        box = Sandbox(base / "host-sandbox", copy, os_release=os_release, kernel=kernel,
                      trusted=[publisher.public] if trust else [])  # fmt: skip
        made.append(box)
        return box

    yield make
    for box in made:
        box.close()


@pytest.fixture
def bundle_copy(tmp_path: Path):
    def copy(bundle: Path, name: str | None = None) -> Path:
        dest = tmp_path / "bundle-copies" / (name or bundle.name)
        shutil.copytree(bundle, dest, symlinks=True)
        return dest

    return copy
