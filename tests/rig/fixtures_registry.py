"""Pytest fixtures for registries, the multi-arch test image and a private dockerd.

Session-scoped (built or started once): the test image, a token-auth registry
and a registry without auth with the image pushed under several names, and the
Docker engine. Function-scoped: the redirecting front proxy, so each test sees
fresh counters and its own corruption settings.

What is pushed where (``tag`` refers to the OCI layout's references, see
tests/rig/testimage.py):

| registry | repository:tag | from |
|---|---|---|
| auth, plain | library/hello-world:latest | ``latest`` (OCI index + attestations) |
| auth, plain | library/hello-list:latest | ``plain`` as a Docker manifest list (v2s2) |
| auth | library/hello-world:amd64-only | ``amd64-only`` |
| auth | private/app:1.0 | ``latest``, readable only with credentials |
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from .dockerd import Dockerd, start_dockerd
from .registry import FrontProxy, Registry, TokenServer, start_registry
from .testimage import TestImage, build_test_image, skopeo_push
from .tools import need

USER, PASSWORD = "pusher", "s3cret-pw"


@dataclass
class RegistryRig:
    registry: Registry
    image: TestImage
    user: str = USER
    password: str = PASSWORD

    @property
    def host(self) -> str:
        return self.registry.host

    @property
    def url(self) -> str:
        return self.registry.url


@pytest.fixture(scope="session")
def test_image(tmp_path_factory: pytest.TempPathFactory) -> TestImage:
    need("gcc")
    need("aarch64-linux-gnu-gcc")
    return build_test_image(tmp_path_factory.mktemp("test-image"))


@pytest.fixture(scope="session")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenServer]:
    server = TokenServer(tmp_path_factory.mktemp("token-server"), {USER: PASSWORD})
    yield server
    server.stop()


@pytest.fixture(scope="session")
def auth_registry(
    tmp_path_factory: pytest.TempPathFactory, token_server: TokenServer, test_image: TestImage
) -> Iterator[RegistryRig]:
    """docker-registry with token auth: anonymous pull, push with USER/PASSWORD."""
    need("skopeo")
    work = tmp_path_factory.mktemp("auth-registry")
    registry = start_registry(work, token_server)
    try:
        creds = f"{USER}:{PASSWORD}"
        auth_file = work / "skopeo-auth.json"
        host = registry.host
        skopeo_push(test_image, "latest", f"{host}/library/hello-world:latest",
                    creds=creds, auth_file=auth_file)  # fmt: skip
        skopeo_push(test_image, "plain", f"{host}/library/hello-list:latest",
                    creds=creds, v2s2=True, auth_file=auth_file)  # fmt: skip
        skopeo_push(test_image, "amd64-only", f"{host}/library/hello-world:amd64-only",
                    creds=creds, auth_file=auth_file)  # fmt: skip
        skopeo_push(test_image, "latest", f"{host}/private/app:1.0",
                    creds=creds, auth_file=auth_file)  # fmt: skip
        token_server.requests.clear()
        yield RegistryRig(registry, test_image)
    finally:
        registry.stop()


@pytest.fixture(scope="session")
def plain_registry(
    tmp_path_factory: pytest.TempPathFactory, test_image: TestImage
) -> Iterator[RegistryRig]:
    """docker-registry without auth."""
    need("skopeo")
    work = tmp_path_factory.mktemp("plain-registry")
    registry = start_registry(work)
    try:
        auth_file = work / "skopeo-auth.json"
        skopeo_push(test_image, "latest", f"{registry.host}/library/hello-world:latest",
                    auth_file=auth_file)  # fmt: skip
        skopeo_push(test_image, "plain", f"{registry.host}/library/hello-list:latest",
                    v2s2=True, auth_file=auth_file)  # fmt: skip
        yield RegistryRig(registry, test_image)
    finally:
        registry.stop()


@pytest.fixture
def front_proxy(auth_registry: RegistryRig) -> Iterator[FrontProxy]:
    """The token registry behind a proxy that redirects blobs to 127.0.0.2 storage."""
    proxy = FrontProxy(auth_registry.registry)
    yield proxy
    proxy.stop()


@pytest.fixture(scope="session")
def dockerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dockerd]:
    """A private Docker engine (own containerd, data and exec roots, socket, mount namespace)."""
    engine = start_dockerd(tmp_path_factory.mktemp("dockerd"))
    yield engine
    engine.stop()
