"""Where the repositories are: mirror presets and the URLs of each yum repository.

A mirror is two URL prefixes: one that replaces ``https://download.docker.com``
(the docker-ce tree) and one that replaces ``https://vault.centos.org`` (CentOS
7.9's ``os``, ``extras`` and ``updates`` repositories, which hold the
dependencies). Everything below the prefix keeps the upstream layout, which is
how the Chinese mirrors are organised too. Presets are data, kept here only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from .errors import UsageError

CENTOS_RELEASE = "7.9.2009"
RELEASEVER = "7"
ARCHES = ("x86_64", "aarch64")
CHANNELS = ("stable", "test", "nightly")
CENTOS_REPOS = ("os", "extras", "updates")

OFFICIAL_DOCKER = "https://download.docker.com"
OFFICIAL_VAULT = "https://vault.centos.org"


@dataclass(frozen=True)
class Mirror:
    """A named pair of URL prefixes (no trailing slash)."""

    name: str
    docker_ce: str
    os: str

    def docker_repo_url(self, arch: str, channel: str = "stable") -> str:
        return f"{self.docker_ce}/linux/centos/{RELEASEVER}/{arch}/{channel}/"

    def centos_repo_url(self, repo: str, arch: str) -> str:
        # CentOS 7 for aarch64 lived in "altarch"; the vault keeps that split.
        alt = "altarch/" if arch != "x86_64" else ""
        return f"{self.os}/{alt}{CENTOS_RELEASE}/{repo}/{arch}/"

    def repo_file_url(self) -> str:
        return f"{self.docker_ce}/linux/centos/docker-ce.repo"


PRESETS: dict[str, Mirror] = {
    m.name: m
    for m in (
        Mirror("docker", OFFICIAL_DOCKER, OFFICIAL_VAULT),
        Mirror(
            "aliyun",
            "https://mirrors.aliyun.com/docker-ce",
            "https://mirrors.aliyun.com/centos-vault",
        ),
        Mirror(
            "tsinghua",
            "https://mirrors.tuna.tsinghua.edu.cn/docker-ce",
            "https://mirrors.tuna.tsinghua.edu.cn/centos-vault",
        ),
        Mirror(
            "ustc",
            "https://mirrors.ustc.edu.cn/docker-ce",
            "https://mirrors.ustc.edu.cn/centos-vault",
        ),
        Mirror(
            "huaweicloud",
            "https://repo.huaweicloud.com/docker-ce",
            "https://repo.huaweicloud.com/centos-vault",
        ),
        Mirror(
            "tencent",
            "https://mirrors.cloud.tencent.com/docker-ce",
            "https://mirrors.cloud.tencent.com/centos-vault",
        ),
    )
}


def _prefix(value: str, option: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https", "file") or not (parts.netloc or parts.path):
        raise UsageError(
            f"{option} {value!r} is neither a preset ({', '.join(PRESETS)}) nor an "
            "http(s):// URL prefix; run `airdock mirrors` to see the presets"
        )
    return value.rstrip("/")


def _name_for(prefix: str) -> str:
    host = urlsplit(prefix).hostname or "local"
    return re.sub(r"[^A-Za-z0-9.-]+", "-", host)


def resolve_mirror(mirror: str = "docker", os_mirror: str | None = None) -> Mirror:
    """Turn ``--mirror`` / ``--os-mirror`` into a Mirror.

    ``mirror`` is a preset name or a URL prefix replacing https://download.docker.com.
    ``os_mirror`` (optional) overrides the CentOS vault prefix; a URL ``mirror``
    without ``os_mirror`` keeps the official vault.
    """
    if mirror in PRESETS:
        base = PRESETS[mirror]
    else:
        docker = _prefix(mirror, "--mirror")
        base = Mirror(_name_for(docker), docker, OFFICIAL_VAULT)
    if os_mirror:
        os_prefix = (
            PRESETS[os_mirror].os if os_mirror in PRESETS else _prefix(os_mirror, "--os-mirror")
        )
        base = Mirror(base.name, base.docker_ce, os_prefix)
    return base


def check_arch(arch: str) -> str:
    if arch not in ARCHES:
        raise UsageError(f"--arch {arch!r} is not supported; use one of: {', '.join(ARCHES)}")
    return arch


def check_channel(channel: str) -> str:
    if channel not in CHANNELS:
        raise UsageError(
            f"--channel {channel!r} is not a docker-ce channel; use one of: {', '.join(CHANNELS)}"
        )
    return channel
