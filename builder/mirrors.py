"""Where the repositories are: mirror presets and the URLs of each yum repository.

A mirror is two URL prefixes: one that replaces ``https://download.docker.com``
(the docker-ce tree) and one that replaces ``https://vault.centos.org`` (CentOS
7.9's ``os``, ``extras`` and ``updates`` repositories, which hold the
dependencies). Everything below the prefix keeps the upstream layout, which is
how the Chinese mirrors are organised too. Presets are data, kept here only.

``--mirror aliyun,docker`` is a :class:`MirrorChain`: every file is looked for
on the first mirror, then on the next (per-file fallback). A ``.repo`` file
(``--repo-file``) gives the docker-ce baseurl directly, with ``$releasever`` and
``$basearch``; one taken from a mirror that still points at download.docker.com
is rewritten to that mirror's prefix, as people do by hand with sed.
"""

from __future__ import annotations

import configparser
import re
from collections.abc import Iterable
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
    # From a .repo file whose baseurl does not follow the upstream layout.
    docker_repo_template: str | None = None

    def docker_repo_url(self, arch: str, channel: str = "stable") -> str:
        if self.docker_repo_template:
            url = expand_repo_vars(self.docker_repo_template, arch)
            return url if url.endswith("/") else url + "/"
        return f"{self.docker_ce}/linux/centos/{RELEASEVER}/{arch}/{channel}/"

    def centos_repo_url(self, repo: str, arch: str) -> str:
        # CentOS 7 for aarch64 lived in "altarch"; the vault keeps that split.
        alt = "altarch/" if arch != "x86_64" else ""
        return f"{self.os}/{alt}{CENTOS_RELEASE}/{repo}/{arch}/"


@dataclass(frozen=True)
class MirrorChain:
    """Mirrors in fallback order: each file comes from the first one that has it."""

    mirrors: tuple[Mirror, ...]

    @property
    def name(self) -> str:
        return "+".join(m.name for m in self.mirrors)

    @property
    def first(self) -> Mirror:
        return self.mirrors[0]

    def docker_repo_urls(self, arch: str, channel: str = "stable") -> list[str]:
        return _unique(m.docker_repo_url(arch, channel) for m in self.mirrors)

    def centos_repo_urls(self, repo: str, arch: str) -> list[str]:
        return _unique(m.centos_repo_url(repo, arch) for m in self.mirrors)

    def describe(self) -> list[dict[str, str]]:
        return [
            {
                "name": m.name,
                "docker_ce": m.docker_repo_url("$basearch", "$channel")
                if m.docker_repo_template
                else m.docker_ce,
                "os": m.os,
            }
            for m in self.mirrors
        ]


def _unique(urls: Iterable[str]) -> list[str]:
    seen: list[str] = []
    for url in urls:
        if url not in seen:
            seen.append(url)
    return seen


def expand_repo_vars(text: str, arch: str) -> str:
    return text.replace("$releasever", RELEASEVER).replace("$basearch", arch)


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


# get.docker.com's --mirror spellings (Aliyun, AzureChinaCloud): Azure China carries docker-ce
# but no CentOS vault, so it keeps the official vault (docs/el7-facts.md, "Mirror presets").
GET_DOCKER_SPELLINGS = {
    "azurechinacloud": Mirror(
        "azurechinacloud", "https://mirror.azure.cn/docker-ce", OFFICIAL_VAULT
    ),
}


def preset(name: str) -> Mirror | None:
    """The preset a name spells, case-insensitively (``Aliyun`` is ``aliyun``), or None."""
    key = name.strip().lower()
    return PRESETS.get(key) or GET_DOCKER_SPELLINGS.get(key)


def _os_prefix(os_mirror: str) -> str:
    found = preset(os_mirror)
    return found.os if found else _prefix(os_mirror, "--os-mirror")


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


def resolve_chain(mirror: str = "docker", os_mirror: str | None = None) -> MirrorChain:
    """``--mirror a,b`` (presets or URL prefixes) and ``--os-mirror`` as a fallback chain."""
    names = [part.strip() for part in mirror.split(",") if part.strip()]
    if not names:
        raise UsageError("--mirror is empty; give a preset name or a URL prefix")
    return MirrorChain(tuple(resolve_mirror(name, os_mirror) for name in names))


def resolve_mirror(mirror: str = "docker", os_mirror: str | None = None) -> Mirror:
    """Turn one ``--mirror`` value and ``--os-mirror`` into a Mirror.

    ``mirror`` is a preset name or a URL prefix replacing https://download.docker.com.
    ``os_mirror`` (optional) overrides the CentOS vault prefix; a URL ``mirror``
    without ``os_mirror`` keeps the official vault.
    """
    found = preset(mirror)
    if found is not None:
        base = found
    else:
        docker = _prefix(mirror, "--mirror")
        base = Mirror(_name_for(docker), docker, OFFICIAL_VAULT)
    if os_mirror:
        os_prefix = _os_prefix(os_mirror)
        base = Mirror(base.name, base.docker_ce, os_prefix, base.docker_repo_template)
    return base


def mirror_from_repo_file(
    text: str, source: str, channel: str, os_mirror: str | None = None
) -> Mirror:
    """A Mirror from the text of a docker-ce.repo file fetched from ``source``."""
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(text, source)
    except configparser.Error as exc:
        raise UsageError(f"--repo-file {source} is not a yum .repo file ({exc.message})") from exc
    section = f"docker-ce-{channel}"
    if section not in parser or not parser[section].get("baseurl"):
        raise UsageError(
            f"--repo-file {source} has no [{section}] section with a baseurl; "
            "check the file or --channel"
        )
    baseurl = parser[section]["baseurl"].split()[0].rstrip("/")
    marker = "/linux/centos/"
    if (
        baseurl.startswith(OFFICIAL_DOCKER + marker)
        and marker in source
        and not source.startswith(OFFICIAL_DOCKER)
    ):
        # A mirror's copy of Docker's file: point it at the mirror it came from.
        baseurl = source.split(marker)[0] + baseurl[len(OFFICIAL_DOCKER) :]
    upstream = re.fullmatch(
        r"(.+)/linux/centos/\$releasever/\$basearch/" + re.escape(channel), baseurl
    )
    os_prefix = _os_prefix(os_mirror) if os_mirror else OFFICIAL_VAULT
    if upstream:
        prefix = _prefix(upstream.group(1), "--repo-file baseurl")
        return Mirror(_name_for(prefix), prefix, os_prefix)
    _prefix(baseurl.replace("$", ""), "--repo-file baseurl")
    return Mirror(_name_for(baseurl), baseurl, os_prefix, baseurl)


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
