"""A signed fixture mirror shaped like the real Docker CE / CentOS 7 trees.

Declarative package definitions (`Pkg`, `catalog`) are turned into tiny but
real RPMs with ``rpmbuild``, signed with throwaway RSA keys (``rpmsign --addsign
--rpmv3``, so el7's rpm 4.11 could check them), and indexed with
``createrepo_c`` (``-g comps.xml`` for the CentOS ``os`` repo, which carries the
``core`` group).  The dependency graph follows docs/el7-facts.md: a CentOS 7.9 @core
set, the non-core os packages docker pulls in, an ``updates`` repo with a
policycoreutils upgrade that the correct answer must include (and selinux-policy
/ systemd updates it must NOT include), ``extras`` with container-selinux,
fuse-overlayfs, slirp4netns and the old CentOS docker 1.13, and Docker's
``stable`` repo with three docker-ce versions.

Layout of ``FixtureMirror.root`` (Aliyun-style prefixes)::

    docker-ce/linux/centos/docker-ce.repo        (baseurl=https://download.docker.com/...)
    docker-ce/linux/centos/gpg                   (Docker-side fixture key, ASCII armour)
    docker-ce/linux/centos/7/<arch>/stable/{Packages,repodata}
    centos-vault/RPM-GPG-KEY-CentOS-7            (CentOS-side fixture key)
    centos-vault/7.9.2009/{os,updates,extras}/x86_64/{Packages,repodata}
    centos-vault/altarch/7.9.2009/{os,updates,extras}/aarch64/{Packages,repodata}
    centos-vault/altarch/RPM-GPG-KEY-CentOS-7-aarch64

Two different throwaway keys are used, as in reality: ``DOCKER_UID`` signs the
Docker repo, ``CENTOS_UID`` signs the three CentOS repos (both arches).  The
private keys live in ``FixtureMirror.gnupghome`` so later tests can sign extra
packages with the same keys (``sign_rpms``); an untrusted key is one
``make_key`` call away.

Public API
----------
``Pkg``                             one package: name, version, release, epoch, arch
                                    (``"noarch"`` or the tree's arch), requires/provides/
                                    conflicts/obsoletes, files {path: content},
                                    symlinks {path: target}, dirs, summary, group
                                    (``"mandatory"``/``"default"`` = in the comps ``core``
                                    list, ``"dep"`` = pulled in by @core, None = not core).
                                    ``pkg.nevra`` is ``name-epoch:version-release.arch``
                                    (epoch always written, 0 when absent), ``pkg.filename``
                                    the RPM file name.
``catalog(arch)``                   {repo id: [Pkg]} for ``REPO_IDS`` (newest first per name)
``core_group(arch)``                names listed in the comps ``core`` group
``core_packages(arch)``             names ``dnf groupinstall core`` installs (group + deps)
``expected_docker_install(arch)``   the NEVRAs a minimal host adds for the five docs packages
``FixtureMirror``                   root, key_file (Docker), centos_key_file, gnupghome,
                                    arches; ``repo_dir(repo, arch)``, ``rpm_path(repo, arch,
                                    name, version=None)``, ``repo_urls(base_url, arch)``,
                                    ``core_packages(arch)``, ``keys``
``build_fixture_mirror(dest, arches=("x86_64",))``   build (atomically) or load ``dest``
``cached_fixture_mirror(arches=("x86_64",))``        the same, under
                                    ``.cache/fixture-mirror/<hash of this file>/<arches>``
``build_rpm(pkg, outdir)``          one unsigned RPM -> Path
``build_rpms(pkgs, outdir)``        several, in parallel -> [Path]
``sign_rpms(paths, gnupghome, uid)``  rpmsign --addsign --rpmv3 in place
``make_key(gnupghome, uid)``        new RSA-2048 signing key -> ASCII-armoured public key
``createrepo(repo_dir, comps=None)``  createrepo_c (deterministic timestamps)
``write_comps(path, arch)``         the os repo's comps.xml

Nothing here prints; failures raise AssertionError with the tool's stderr.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

from tests.rig.tools import need, run

REPO_TOP = Path(__file__).resolve().parents[2]
CACHE_ROOT = REPO_TOP / ".cache" / "fixture-mirror"

SOURCE_DATE_EPOCH = 1717200000  # 2024-06-01, about when Docker published its last el7 build
BUILDHOST = "fixture-builder.airdock.invalid"
CENTOS_RELEASE = "7.9.2009"
DOCKER_UID = "Docker Test Signing <docker-test@example.invalid>"
CENTOS_UID = "CentOS Test Signing <centos-test@example.invalid>"
ARCHES = ("x86_64", "aarch64")
REPO_IDS = ("os", "updates", "extras", "docker-ce-stable")
CENTOS_REPOS = ("os", "updates", "extras")

# The five packages of Docker's install docs.
DOCKER_DOCS_PACKAGES = (
    "docker-ce",
    "docker-ce-cli",
    "containerd.io",
    "docker-buildx-plugin",
    "docker-compose-plugin",
)


# --------------------------------------------------------------------------- packages


@dataclass
class Pkg:
    name: str
    version: str
    release: str
    epoch: int | None = None
    arch: str = "x86_64"
    requires: tuple[str, ...] = ()
    provides: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()
    obsoletes: tuple[str, ...] = ()
    files: dict[str, str] = field(default_factory=dict)
    symlinks: dict[str, str] = field(default_factory=dict)
    dirs: tuple[str, ...] = ()
    summary: str = ""
    license: str = "GPLv2+"
    group: str | None = None

    @property
    def evr(self) -> str:
        """``epoch:version-release`` with the epoch only when set (RPM's own spelling)."""
        prefix = f"{self.epoch}:" if self.epoch is not None else ""
        return f"{prefix}{self.version}-{self.release}"

    @property
    def vr(self) -> str:
        return f"{self.version}-{self.release}"

    @property
    def nevra(self) -> str:
        """``name-epoch:version-release.arch``, epoch always written (the oracle's format)."""
        return f"{self.name}-{self.epoch or 0}:{self.version}-{self.release}.{self.arch}"

    @property
    def filename(self) -> str:
        return f"{self.name}-{self.version}-{self.release}.{self.arch}.rpm"


def _pkg(name, version, release, *, arch, epoch=None, noarch=False, files=None, **kw) -> Pkg:
    """Catalog helper: every package also gets a small doc file naming its EVR."""
    real_arch = "noarch" if noarch else arch
    all_files = {
        f"/usr/share/doc/{name}-{version}/README": (
            f"{name} {version}-{release} ({real_arch}) - airdock test fixture\n"
        )
    }
    all_files.update(files or {})
    kw.setdefault("summary", f"{name} (airdock test fixture)")
    return Pkg(name, version, release, epoch=epoch, arch=real_arch, files=all_files, **kw)


def _bin(text: str) -> str:
    return f"#!/bin/sh\n# {text}\nexit 0\n"


def _lib(arch: str) -> str:
    return "/usr/lib64"  # el7 uses lib64 on both x86_64 and aarch64


def _os_repo(arch: str) -> list[Pkg]:
    lib = _lib(arch)
    p = _pkg
    pkgs = [
        # ---- @core: the comps group and what it pulls in
        p("setup", "2.8.71", "11.el7", arch=arch, noarch=True, group="mandatory",
          files={"/etc/passwd": "root:x:0:0:root:/root:/bin/bash\n",
                 "/etc/group": "root:x:0:\n"}, license="Public Domain"),
        p("filesystem", "3.2", "25.el7", arch=arch, group="mandatory",
          requires=("setup",), license="Public Domain",
          dirs=("/etc", "/usr", "/usr/bin", "/usr/sbin", "/usr/lib", "/usr/lib64",
                "/usr/libexec", "/usr/share", "/usr/share/doc", "/var", "/var/lib",
                "/var/log"),
          symlinks={"/bin": "usr/bin", "/sbin": "usr/sbin", "/lib": "usr/lib",
                    "/lib64": "usr/lib64"}),
        p("basesystem", "10.0", "7.el7.centos", arch=arch, noarch=True, group="mandatory",
          requires=("filesystem", "setup"), license="Public Domain"),
        p("glibc", "2.17", "317.el7", arch=arch, group="dep", requires=("basesystem",),
          provides=("config(glibc) = 2.17-317.el7",),
          files={f"{lib}/libc-2.17.so": "glibc fixture\n"}, license="LGPLv2+"),
        p("bash", "4.2.46", "34.el7", arch=arch, group="mandatory", requires=("glibc",),
          provides=("/bin/sh", "/bin/bash"),
          files={"/usr/bin/bash": _bin("bash fixture")}, symlinks={"/usr/bin/sh": "bash"},
          license="GPLv3+"),
        p("coreutils", "8.22", "24.el7", arch=arch, group="mandatory",
          requires=("glibc", "libselinux"), files={"/usr/bin/coreutils": _bin("coreutils")},
          license="GPLv3+"),
        p("libsepol", "2.5", "10.el7", arch=arch, group="dep", requires=("glibc",),
          files={f"{lib}/libsepol.so.1": "libsepol fixture\n"}, license="LGPLv2+"),
        p("libselinux", "2.5", "15.el7", arch=arch, group="dep",
          requires=("libsepol >= 2.5", "glibc"),
          files={f"{lib}/libselinux.so.1": "libselinux fixture\n"}, license="Public Domain"),
        p("libselinux-utils", "2.5", "15.el7", arch=arch, group="dep",
          requires=("libselinux = 2.5-15.el7",),
          files={"/usr/sbin/getenforce": _bin("getenforce")}, license="Public Domain"),
        p("audit-libs", "2.8.5", "4.el7", arch=arch, group="dep", requires=("glibc",),
          files={f"{lib}/libaudit.so.1": "audit-libs fixture\n"}, license="LGPLv2+"),
        p("audit", "2.8.5", "4.el7", arch=arch, group="mandatory",
          requires=("audit-libs = 2.8.5-4.el7",), files={"/usr/sbin/auditd": _bin("auditd")}),
        p("libsemanage", "2.5", "14.el7", arch=arch, group="dep",
          requires=("libselinux >= 2.5", "libsepol >= 2.5", "audit-libs"),
          files={f"{lib}/libsemanage.so.1": "libsemanage fixture\n"}, license="LGPLv2+"),
        p("shadow-utils", "4.6", "5.el7", epoch=2, arch=arch, group="mandatory",
          requires=("glibc", "audit-libs >= 1.6.5", "libselinux >= 1.25.2-1", "libsemanage"),
          files={"/usr/sbin/groupadd": _bin("groupadd (shadow-utils fixture)"),
                 "/usr/sbin/useradd": _bin("useradd (shadow-utils fixture)"),
                 "/usr/sbin/groupdel": _bin("groupdel (shadow-utils fixture)")},
          license="BSD and GPLv2+"),
        p("libseccomp", "2.3.1", "4.el7", arch=arch, group="dep", requires=("glibc",),
          files={f"{lib}/libseccomp.so.2.3.1": "libseccomp fixture\n"}, license="LGPLv2"),
        p("xz-libs", "5.2.2", "1.el7", arch=arch, group="dep", requires=("glibc",),
          files={f"{lib}/liblzma.so.5.2.2": "liblzma fixture\n"}, license="Public Domain"),
        p("xz", "5.2.2", "1.el7", arch=arch, group="default",
          requires=("xz-libs = 5.2.2-1.el7",), files={"/usr/bin/xz": _bin("xz")},
          license="GPLv2+ and Public Domain"),
        p("systemd", "219", "78.el7", arch=arch, group="mandatory",
          requires=("glibc", "libseccomp", "libselinux", "audit-libs", "xz-libs",
                    "coreutils"),
          files={"/usr/bin/systemctl": _bin("systemctl 219-78.el7"),
                 "/usr/lib/systemd/systemd": _bin("systemd 219-78.el7")},
          license="LGPLv2+ and MIT and GPLv2+"),
        p("iptables", "1.4.21", "35.el7", arch=arch, group="mandatory", requires=("glibc",),
          files={"/usr/sbin/iptables": _bin("iptables")}, license="GPLv2"),
        p("tar", "1.26", "35.el7", epoch=2, arch=arch, group="mandatory", requires=("glibc",),
          files={"/usr/bin/tar": _bin("tar")}, license="GPLv3+"),
        p("policycoreutils", "2.5", "34.el7", arch=arch, group="mandatory",
          requires=("libselinux-utils >= 2.5-11", "libsemanage >= 2.5-5",
                    "libsepol >= 2.5-6", "audit-libs >= 2.1.3-4", "coreutils"),
          files={"/usr/sbin/semodule": _bin("semodule 2.5-34.el7"),
                 "/usr/sbin/restorecon": _bin("restorecon 2.5-34.el7")}),
        p("selinux-policy", "3.13.1", "268.el7", arch=arch, noarch=True, group="dep",
          requires=("policycoreutils >= 2.5-22",),
          files={"/etc/selinux/config": "SELINUX=enforcing\nSELINUXTYPE=targeted\n"}),
        p("selinux-policy-targeted", "3.13.1", "268.el7", arch=arch, noarch=True,
          group="mandatory",
          requires=("selinux-policy = 3.13.1-268.el7", "policycoreutils >= 2.5-22"),
          provides=("selinux-policy-base = 3.13.1-268.el7",),
          files={"/etc/selinux/targeted/policy/policy.31": "targeted 3.13.1-268.el7\n"}),
        p("python-libs", "2.7.5", "89.el7", arch=arch, group="dep", requires=("glibc",),
          files={f"{lib}/libpython2.7.so.1.0": "libpython fixture\n"}, license="Python"),
        p("python", "2.7.5", "89.el7", arch=arch, group="dep",
          requires=("python-libs = 2.7.5-89.el7",),
          files={"/usr/bin/python2.7": _bin("python 2.7.5")},
          symlinks={"/usr/bin/python": "python2", "/usr/bin/python2": "python2.7"},
          license="Python"),
        p("rpm", "4.11.3", "45.el7", arch=arch, group="mandatory",
          requires=("coreutils", "xz-libs", "/bin/sh"), files={"/usr/bin/rpm": _bin("rpm")}),
        p("rpm-python", "4.11.3", "45.el7", arch=arch, group="dep",
          requires=("rpm = 4.11.3-45.el7", "python"),
          files={f"{lib}/python2.7/site-packages/rpm/__init__.py": "# rpm-python\n"}),
        p("yum", "3.4.3", "168.el7.centos", arch=arch, noarch=True, group="mandatory",
          requires=("python", "rpm-python", "rpm >= 0:4.4.2"),
          files={"/usr/bin/yum": _bin("yum 3.4.3")}),
        # ---- not in @core, pulled in by docker (via container-selinux)
        p("audit-libs-python", "2.8.5", "4.el7", arch=arch,
          requires=("audit-libs = 2.8.5-4.el7", "python"),
          files={f"{lib}/python2.7/site-packages/audit.py": "# audit-libs-python\n"},
          license="LGPLv2+"),
        p("checkpolicy", "2.5", "8.el7", arch=arch, requires=("glibc",),
          files={"/usr/bin/checkpolicy": _bin("checkpolicy")}),
        p("libcgroup", "0.41", "21.el7", arch=arch, requires=("glibc",),
          files={f"{lib}/libcgroup.so.1": "libcgroup fixture\n"}, license="LGPLv2+"),
        p("libsemanage-python", "2.5", "14.el7", arch=arch,
          requires=("libsemanage = 2.5-14.el7", "python"),
          files={f"{lib}/python2.7/site-packages/semanage.py": "# libsemanage-python\n"},
          license="LGPLv2+"),
        p("python-IPy", "0.75", "6.el7", arch=arch, noarch=True, requires=("python",),
          files={"/usr/lib/python2.7/site-packages/IPy.py": "# python-IPy\n"},
          license="BSD"),
        p("setools-libs", "3.3.8", "4.el7", arch=arch,
          requires=("libselinux >= 2.5", "libsepol >= 2.5"),
          files={f"{lib}/libsetools.so.4": "setools-libs fixture\n"}, license="LGPLv2"),
        _policycoreutils_python("2.5", "34.el7", arch),
        # ---- unrelated non-core packages: a minimal answer never contains them
        p("vim-common", "7.4.629", "7.el7", epoch=2, arch=arch,
          files={"/usr/share/vim/vim74/README": "vim-common\n"}, license="Vim"),
        p("vim-enhanced", "7.4.629", "7.el7", epoch=2, arch=arch,
          requires=("vim-common = 2:7.4.629-7.el7",), files={"/usr/bin/vim": _bin("vim")},
          license="Vim"),
        p("wget", "1.14", "18.el7_6.1", arch=arch, requires=("glibc",),
          files={"/usr/bin/wget": _bin("wget")}, license="GPLv3+"),
        p("nano", "2.3.1", "10.el7", arch=arch, requires=("glibc",),
          files={"/usr/bin/nano": _bin("nano")}, license="GPLv3+"),
    ]  # fmt: skip
    return pkgs


def _policycoreutils_python(version: str, release: str, arch: str) -> Pkg:
    return _pkg(
        "policycoreutils-python", version, release, arch=arch,
        requires=(f"policycoreutils = {version}-{release}", "audit-libs-python >= 2.8.5",
                  "checkpolicy", "libcgroup", "libsemanage-python >= 2.5-9", "python-IPy",
                  "setools-libs >= 3.3.8-4", "python"),
        files={"/usr/sbin/semanage": _bin(f"semanage {version}-{release}")},
    )  # fmt: skip


def _updates_repo(arch: str) -> list[Pkg]:
    p = _pkg
    return [
        # The upgrade a correct answer must include (policycoreutils-python pins it).
        p("policycoreutils", "2.5", "34.el7_9.1", arch=arch,
          requires=("libselinux-utils >= 2.5-11", "libsemanage >= 2.5-5",
                    "libsepol >= 2.5-6", "audit-libs >= 2.1.3-4", "coreutils"),
          files={"/usr/sbin/semodule": _bin("semodule 2.5-34.el7_9.1"),
                 "/usr/sbin/restorecon": _bin("restorecon 2.5-34.el7_9.1")}),
        _policycoreutils_python("2.5", "34.el7_9.1", arch),
        # Updates a minimal answer must NOT include.
        p("selinux-policy", "3.13.1", "268.el7_9.2", arch=arch, noarch=True,
          requires=("policycoreutils >= 2.5-22",),
          files={"/etc/selinux/config": "SELINUX=enforcing\nSELINUXTYPE=targeted\n"}),
        p("selinux-policy-targeted", "3.13.1", "268.el7_9.2", arch=arch, noarch=True,
          requires=("selinux-policy = 3.13.1-268.el7_9.2", "policycoreutils >= 2.5-22"),
          provides=("selinux-policy-base = 3.13.1-268.el7_9.2",),
          files={"/etc/selinux/targeted/policy/policy.31": "targeted 3.13.1-268.el7_9.2\n"}),
        p("systemd", "219", "78.el7_9.9", arch=arch,
          requires=("glibc", "libseccomp", "libselinux", "audit-libs", "xz-libs",
                    "coreutils"),
          files={"/usr/bin/systemctl": _bin("systemctl 219-78.el7_9.9"),
                 "/usr/lib/systemd/systemd": _bin("systemd 219-78.el7_9.9")},
          license="LGPLv2+ and MIT and GPLv2+"),
    ]  # fmt: skip


# The fixture's container-selinux needs the policycoreutils-python from updates, which pins
# policycoreutils to the same version-release: the correct answer for a @core host therefore
# UPGRADES an installed core package.  (yum picks that newest provider anyway; libsolv/dnf
# would otherwise keep the installed policycoreutils and take the os build, so the versioned
# requirement makes every sane solver agree.)
PCU_UPDATE = "2.5-34.el7_9.1"


def _container_selinux(version: str, release: str, arch: str) -> Pkg:
    return _pkg(
        "container-selinux", version, release, epoch=2, arch=arch, noarch=True,
        requires=("policycoreutils", f"policycoreutils-python >= {PCU_UPDATE}",
                  "selinux-policy >= 3.13.1-216.el7", "selinux-policy-base >= 3.13.1-216.el7",
                  "selinux-policy-targeted >= 3.13.1-216.el7"),
        provides=(f"docker-selinux = 2:{version}-{release}",),
        obsoletes=("docker-selinux <= 2:1.12.4-28",),
        files={"/usr/share/selinux/packages/container.pp.bz2": f"container {version}\n"},
    )  # fmt: skip


OLD_DOCKER_VR = ("1.13.1", "209.git7d71120.el7.centos")


def _extras_repo(arch: str) -> list[Pkg]:
    p = _pkg
    dv, dr = OLD_DOCKER_VR
    old_evr = f"2:{dv}-{dr}"
    return [
        _container_selinux("2.119.2", "1.911c772.el7_8", arch),
        _container_selinux("2.107", "3.el7", arch),
        p("fuse3-libs", "3.6.1", "4.el7", arch=arch, requires=("glibc",),
          files={f"{_lib(arch)}/libfuse3.so.3": "libfuse3 fixture\n"}, license="LGPLv2+"),
        p("fuse-overlayfs", "0.7.2", "6.el7_8", arch=arch,
          requires=("fuse3-libs", "glibc"),
          files={"/usr/bin/fuse-overlayfs": _bin("fuse-overlayfs")}),
        p("slirp4netns", "0.4.3", "4.el7_8", arch=arch, requires=("glibc", "libseccomp"),
          files={"/usr/bin/slirp4netns": _bin("slirp4netns")}),
        # The old CentOS docker (what people have to remove first).
        p("docker", dv, dr, epoch=2, arch=arch,
          requires=(f"docker-client = {old_evr}", f"docker-common = {old_evr}",
                    "container-selinux >= 2:2.10", "libseccomp >= 2.3.0", "iptables",
                    "systemd"),
          files={"/usr/bin/dockerd-current": _bin("dockerd-current 1.13.1 (CentOS)"),
                 "/usr/libexec/docker/docker-runc-current": _bin("docker-runc-current")},
          license="ASL 2.0"),
        p("docker-client", dv, dr, epoch=2, arch=arch,
          requires=(f"docker-common = {old_evr}",),
          files={"/usr/bin/docker-current": _bin("docker-current 1.13.1 (CentOS)")},
          license="ASL 2.0"),
        p("docker-common", dv, dr, epoch=2, arch=arch,
          files={"/usr/bin/docker": _bin("CentOS docker-common wrapper for docker-current"),
                 "/etc/sysconfig/docker": "OPTIONS='--selinux-enabled --log-driver=journald'\n"},
          license="ASL 2.0"),
    ]  # fmt: skip


# docker-ce version -> (containerd.io minimum, buildx, compose) ; newest first.
DOCKER_CE_VERSIONS = (
    ("26.1.4", "1.6.24", "0.14.1", "2.27.1"),
    ("25.0.5", "1.6.24", "0.13.1", "2.25.0"),
    ("24.0.9", "1.6.4", None, None),
)
CONTAINERD_VERSIONS = ("1.6.33", "1.6.28")


def _docker_repo(arch: str) -> list[Pkg]:
    p = _pkg
    pkgs: list[Pkg] = []
    for version, containerd_min, _buildx, _compose in DOCKER_CE_VERSIONS:
        pkgs.append(p(
            "docker-ce", version, "1.el7", epoch=3, arch=arch, license="ASL 2.0",
            summary="The open-source application container engine",
            requires=("/usr/sbin/groupadd", "docker-ce-cli", "docker-ce-rootless-extras",
                      "container-selinux >= 2:2.74", "libseccomp >= 2.3", "systemd",
                      "iptables", "libcgroup", f"containerd.io >= {containerd_min}", "tar",
                      "xz"),
            conflicts=("docker", "docker-io", "docker-engine-cs", "docker-ee"),
            obsoletes=("docker-ce-selinux", "docker-engine-selinux", "docker-engine"),
            files={"/usr/bin/dockerd": _bin(f"dockerd {version}"),
                   "/usr/bin/docker-proxy": _bin(f"docker-proxy {version}"),
                   "/usr/lib/systemd/system/docker.service": "[Unit]\nDescription=Docker\n",
                   "/usr/lib/systemd/system/docker.socket": "[Socket]\nListenStream=docker.sock\n"},
        ))  # fmt: skip
        pkgs.append(p(
            "docker-ce-cli", version, "1.el7", epoch=1, arch=arch, license="ASL 2.0",
            summary="The open-source application container engine",
            requires=("/bin/sh", "/usr/sbin/groupadd", "docker-buildx-plugin",
                      "docker-compose-plugin"),
            conflicts=("docker", "docker-io", "docker-ee", "docker-ee-cli"),
            files={"/usr/bin/docker": _bin(f"docker-ce-cli {version}"),
                   "/usr/share/bash-completion/completions/docker": "# completion\n"},
        ))  # fmt: skip
        pkgs.append(p(
            "docker-ce-rootless-extras", version, "1.el7", arch=arch, license="ASL 2.0",
            summary="Rootless support for Docker",
            requires=("docker-ce", "fuse-overlayfs >= 0.7", "slirp4netns >= 0.4"),
            conflicts=("rootlesskit",),
            files={"/usr/bin/rootlesskit": _bin(f"rootlesskit for {version}"),
                   "/usr/bin/dockerd-rootless.sh": _bin("dockerd-rootless.sh"),
                   "/usr/bin/dockerd-rootless-setuptool.sh": _bin("setuptool")},
        ))  # fmt: skip
    for version in CONTAINERD_VERSIONS:
        pkgs.append(p(
            "containerd.io", version, "3.1.el7", arch=arch, license="ASL 2.0",
            summary="An industry-standard container runtime",
            requires=("container-selinux >= 2:2.74", "libseccomp"),
            provides=("containerd", "runc"),
            obsoletes=("containerd", "runc"),
            conflicts=("containerd", "runc"),
            files={"/usr/bin/containerd": _bin(f"containerd {version}"),
                   "/usr/bin/containerd-shim-runc-v2": _bin("shim"),
                   "/usr/bin/ctr": _bin("ctr"),
                   "/usr/bin/runc": _bin("runc"),
                   "/etc/containerd/config.toml": 'disabled_plugins = ["cri"]\n'},
        ))  # fmt: skip
    for _, _, buildx, compose in DOCKER_CE_VERSIONS:
        if buildx:
            pkgs.append(p(
                "docker-buildx-plugin", buildx, "1.el7", arch=arch, license="ASL 2.0",
                files={"/usr/libexec/docker/cli-plugins/docker-buildx": _bin(f"buildx {buildx}")},
            ))  # fmt: skip
        if compose:
            pkgs.append(p(
                "docker-compose-plugin", compose, "1.el7", arch=arch, license="ASL 2.0",
                files={"/usr/libexec/docker/cli-plugins/docker-compose":
                       _bin(f"compose {compose}")},
            ))  # fmt: skip
    return pkgs


def catalog(arch: str = "x86_64") -> dict[str, list[Pkg]]:
    """Repo id -> packages for one arch; within a name, newest first."""
    if arch not in ARCHES:
        raise ValueError(f"unsupported arch {arch!r}")
    return {
        "os": _os_repo(arch),
        "updates": _updates_repo(arch),
        "extras": _extras_repo(arch),
        "docker-ce-stable": _docker_repo(arch),
    }


def core_group(arch: str = "x86_64") -> list[str]:
    """Names listed (mandatory or default) in the comps ``core`` group."""
    return sorted(p.name for p in catalog(arch)["os"] if p.group in ("mandatory", "default"))


def core_packages(arch: str = "x86_64") -> list[str]:
    """Names ``dnf groupinstall core`` installs from the os repo (group + dependencies)."""
    return sorted(p.name for p in catalog(arch)["os"] if p.group)


def expected_docker_install(arch: str = "x86_64") -> set[str]:
    """NEVRAs dnf adds to a @core root for the five docs packages, all repos enabled.

    Newest docker-ce (26.1.4) and friends, container-selinux's chain from os and
    extras, and the policycoreutils UPGRADE from updates (policycoreutils-python
    from updates pins it) - but not the selinux-policy / systemd updates.
    """
    cat = catalog(arch)
    wanted = {
        "os": {"audit-libs-python", "checkpolicy", "libcgroup", "libsemanage-python",
               "python-IPy", "setools-libs"},
        "updates": {"policycoreutils", "policycoreutils-python"},
        "extras": {"container-selinux", "fuse-overlayfs", "fuse3-libs", "slirp4netns"},
        "docker-ce-stable": {"docker-ce", "docker-ce-cli", "docker-ce-rootless-extras",
                             "containerd.io", "docker-buildx-plugin", "docker-compose-plugin"},
    }  # fmt: skip
    result = set()
    for repo, names in wanted.items():
        for name in names:
            result.add(next(p for p in cat[repo] if p.name == name).nevra)  # newest first
    return result


def write_comps(path: Path, arch: str = "x86_64") -> Path:
    reqs = "\n".join(
        f'      <packagereq type="{p.group}">{escape(p.name)}</packagereq>'
        for p in sorted(catalog(arch)["os"], key=lambda p: p.name)
        if p.group in ("mandatory", "default")
    )
    path.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<!DOCTYPE comps PUBLIC "-//CentOS//DTD Comps info//EN" "comps.dtd">\n'
        "<comps>\n"
        "  <group>\n"
        "    <id>core</id>\n"
        "    <name>Core</name>\n"
        "    <description>Smallest possible installation.</description>\n"
        "    <default>true</default>\n"
        "    <uservisible>false</uservisible>\n"
        "    <packagelist>\n"
        f"{reqs}\n"
        "    </packagelist>\n"
        "  </group>\n"
        "  <environment>\n"
        "    <id>minimal</id>\n"
        "    <name>Minimal Install</name>\n"
        "    <description>Basic functionality.</description>\n"
        "    <display_order>5</display_order>\n"
        "    <grouplist>\n"
        "      <groupid>core</groupid>\n"
        "    </grouplist>\n"
        "  </environment>\n"
        "</comps>\n"
    )
    return path


DOCKER_CE_REPO_FILE = """\
[docker-ce-stable]
name=Docker CE Stable - $basearch
baseurl=https://download.docker.com/linux/centos/$releasever/$basearch/stable
enabled=1
gpgcheck=1
gpgkey=https://download.docker.com/linux/centos/gpg

[docker-ce-stable-debuginfo]
name=Docker CE Stable - Debuginfo $basearch
baseurl=https://download.docker.com/linux/centos/$releasever/debug-$basearch/stable
enabled=0
gpgcheck=1
gpgkey=https://download.docker.com/linux/centos/gpg

[docker-ce-stable-source]
name=Docker CE Stable - Sources
baseurl=https://download.docker.com/linux/centos/$releasever/source/stable
enabled=0
gpgcheck=1
gpgkey=https://download.docker.com/linux/centos/gpg

[docker-ce-test]
name=Docker CE Test - $basearch
baseurl=https://download.docker.com/linux/centos/$releasever/$basearch/test
enabled=0
gpgcheck=1
gpgkey=https://download.docker.com/linux/centos/gpg

[docker-ce-test-debuginfo]
name=Docker CE Test - Debuginfo $basearch
baseurl=https://download.docker.com/linux/centos/$releasever/debug-$basearch/test
enabled=0
gpgcheck=1
gpgkey=https://download.docker.com/linux/centos/gpg

[docker-ce-test-source]
name=Docker CE Test - Sources
baseurl=https://download.docker.com/linux/centos/$releasever/source/test
enabled=0
gpgcheck=1
gpgkey=https://download.docker.com/linux/centos/gpg

[docker-ce-nightly]
name=Docker CE Nightly - $basearch
baseurl=https://download.docker.com/linux/centos/$releasever/$basearch/nightly
enabled=0
gpgcheck=1
gpgkey=https://download.docker.com/linux/centos/gpg

[docker-ce-nightly-debuginfo]
name=Docker CE Nightly - Debuginfo $basearch
baseurl=https://download.docker.com/linux/centos/$releasever/debug-$basearch/nightly
enabled=0
gpgcheck=1
gpgkey=https://download.docker.com/linux/centos/gpg

[docker-ce-nightly-source]
name=Docker CE Nightly - Sources
baseurl=https://download.docker.com/linux/centos/$releasever/source/nightly
enabled=0
gpgcheck=1
gpgkey=https://download.docker.com/linux/centos/gpg
"""


# --------------------------------------------------------------------------- tools


RPMMACROS = f"""\
%_dbpath /var/lib/rpm
%_binary_payload w2.xzdio
%debug_package %{{nil}}
%_build_id_links none
%__os_install_post %{{nil}}
%__arch_install_post %{{nil}}
%_buildhost {BUILDHOST}
%use_source_date_epoch_as_buildtime 1
%clamp_mtime_to_source_date_epoch 1
%_build_name_fmt %%{{NAME}}-%%{{VERSION}}-%%{{RELEASE}}.%%{{ARCH}}.rpm
"""


def rpm_env(home: Path) -> dict[str, str]:
    """Environment for rpm tools: HOME with the rig's .rpmmacros (``_dbpath /var/lib/rpm``)."""
    home.mkdir(parents=True, exist_ok=True)
    macros = home / ".rpmmacros"
    if not macros.exists() or macros.read_text() != RPMMACROS:
        macros.write_text(RPMMACROS)
    env = dict(os.environ)
    env.update(HOME=str(home), LC_ALL="C", TZ="UTC", SOURCE_DATE_EPOCH=str(SOURCE_DATE_EPOCH))
    return env


def _spec(pkg: Pkg, stage: Path) -> str:
    lines = [
        f"Name: {pkg.name}",
        f"Version: {pkg.version}",
        f"Release: {pkg.release}",
    ]
    if pkg.epoch is not None:
        lines.append(f"Epoch: {pkg.epoch}")
    lines += [
        f"Summary: {pkg.summary or pkg.name}",
        f"License: {pkg.license}",
        "URL: https://example.invalid/airdock-fixture",
        "AutoReqProv: no",
    ]
    if pkg.arch == "noarch":
        lines.append("BuildArch: noarch")
    for tag, values in (
        ("Requires", pkg.requires),
        ("Provides", pkg.provides),
        ("Conflicts", pkg.conflicts),
        ("Obsoletes", pkg.obsoletes),
    ):
        lines += [f"{tag}: {v}" for v in values]
    lines += ["", "%description", f"{pkg.summary or pkg.name}.", "", "%install"]
    lines.append(f"cp -a '{stage}/.' %{{buildroot}}/")
    lines += ["", "%files", "%defattr(-,root,root,-)"]
    lines += [f"%dir {d}" for d in pkg.dirs]
    for path in sorted(pkg.files):
        if path.startswith("/etc/"):
            lines.append(f"%config(noreplace) {path}")
        elif "/bin/" in path or "/sbin/" in path or "/libexec/" in path or path.endswith(".sh"):
            lines.append(f"%attr(0755,root,root) {path}")
        else:
            lines.append(path)
    lines += sorted(pkg.symlinks)
    return "\n".join(lines) + "\n"


def build_rpm(pkg: Pkg, outdir: Path, workdir: Path | None = None) -> Path:
    """Build one unsigned RPM of ``pkg`` into ``outdir``; returns its path."""
    need("rpmbuild")
    outdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rig-rpmbuild-", dir=workdir) as tmp:
        top = Path(tmp)
        stage = top / "stage"
        stage.mkdir()
        for d in pkg.dirs:
            (stage / d.lstrip("/")).mkdir(parents=True, exist_ok=True)
        for path, content in pkg.files.items():
            target = stage / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)
        for path, dest in pkg.symlinks.items():
            target = stage / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(dest)
        spec = top / f"{pkg.name}.spec"
        spec.write_text(_spec(pkg, stage))
        cmd = [
            "rpmbuild", "-bb", "--quiet",
            "--define", f"_topdir {top / 'top'}",
            "--define", f"_rpmdir {outdir}",
        ]  # fmt: skip
        if pkg.arch != "noarch":
            cmd += ["--target", pkg.arch]
        run([*cmd, str(spec)], env=rpm_env(top / "home"))
    path = outdir / pkg.filename
    if not path.exists():
        raise AssertionError(f"rpmbuild did not produce {path}")
    return path


def build_rpms(pkgs: Iterable[Pkg], outdir: Path, jobs: int | None = None) -> list[Path]:
    """Build several RPMs in parallel (rpmbuild is a subprocess, threads suffice)."""
    pkgs = list(pkgs)
    jobs = jobs or max(2, (os.cpu_count() or 2) * 2)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(lambda p: build_rpm(p, outdir), pkgs))


@contextlib.contextmanager
def private_gnupghome(source: Path | None = None) -> Iterator[Path]:
    """A short-lived copy of ``source`` (or an empty home) whose gpg-agent is killed after."""
    need("gpg")
    tmp = Path(tempfile.mkdtemp(prefix="rig-gpg-"))
    home = tmp / "g"
    if source is not None:
        shutil.copytree(
            source, home, ignore=shutil.ignore_patterns("S.*", "*.lock", ".#*", "random_seed")
        )
    else:
        home.mkdir()
    home.chmod(0o700)
    try:
        yield home
    finally:
        subprocess.run(
            ["gpgconf", "--homedir", str(home), "--kill", "all"],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(tmp, ignore_errors=True)


def make_key(gnupghome: Path, uid: str) -> str:
    """Generate an RSA-2048 signing key for ``uid`` in ``gnupghome``; returns the public armour."""
    env = dict(os.environ, GNUPGHOME=str(gnupghome))
    run(
        ["gpg", "--batch", "--quiet", "--passphrase", "", "--quick-gen-key", uid,
         "rsa2048", "sign", "never"],
        env=env,
    )  # fmt: skip
    return run(["gpg", "--batch", "--armor", "--export", uid], env=env).stdout


def key_fingerprint(gnupghome: Path, uid: str) -> str:
    env = dict(os.environ, GNUPGHOME=str(gnupghome))
    out = run(["gpg", "--batch", "--with-colons", "--fingerprint", uid], env=env).stdout
    return next(line.split(":")[9] for line in out.splitlines() if line.startswith("fpr:"))


def sign_rpms(paths: Iterable[Path], gnupghome: Path, uid: str) -> None:
    """``rpmsign --addsign --rpmv3`` with ``uid``'s key (header and header+payload signatures).

    ``gnupghome`` is copied to a private temporary home first, so a cached home is
    never written to and no gpg-agent outlives the call.
    """
    need("rpmsign")
    paths = [str(p) for p in paths]
    if not paths:
        return
    with private_gnupghome(gnupghome) as home:
        env = rpm_env(home.parent / "rpmhome")
        env["GNUPGHOME"] = str(home)
        run(
            ["rpmsign", "--addsign", "--rpmv3",
             "--define", "__gpg /usr/bin/gpg",
             "--define", f"_gpg_path {home}",
             "--define", f"_gpg_name {uid}",
             "--define", "_gpg_digest_algo sha256",
             *paths],
            env=env,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip


def createrepo(repo_dir: Path, comps: Path | None = None) -> None:
    """createrepo_c with a fixed revision/timestamp; ``comps`` adds the group record."""
    need("createrepo_c")
    cmd = [
        "createrepo_c", "--quiet",
        "--revision", str(SOURCE_DATE_EPOCH), "--set-timestamp-to-revision",
    ]  # fmt: skip
    if comps is not None:
        cmd += ["-g", str(comps)]
    run([*cmd, str(repo_dir)], env=dict(os.environ, SOURCE_DATE_EPOCH=str(SOURCE_DATE_EPOCH)))


# --------------------------------------------------------------------------- the mirror


def repo_relpath(repo: str, arch: str) -> str:
    """Path of a repo below the served root (real mirror layout)."""
    if repo == "docker-ce-stable":
        return f"docker-ce/linux/centos/7/{arch}/stable"
    if repo not in CENTOS_REPOS:
        raise KeyError(repo)
    if arch == "x86_64":
        return f"centos-vault/{CENTOS_RELEASE}/{repo}/{arch}"
    return f"centos-vault/altarch/{CENTOS_RELEASE}/{repo}/{arch}"


@dataclass
class FixtureMirror:
    """A built mirror. ``root`` is what the HTTP server serves."""

    path: Path
    arches: tuple[str, ...]
    fingerprints: dict[str, str] = field(default_factory=dict)  # "docker"/"centos" -> fpr

    @property
    def root(self) -> Path:
        return self.path / "root"

    @property
    def key_file(self) -> Path:
        """The Docker-side public key (same bytes as ``docker-ce/linux/centos/gpg``)."""
        return self.path / "keys" / "docker-fixture.asc"

    @property
    def centos_key_file(self) -> Path:
        """The CentOS-side public key (same bytes as ``centos-vault/RPM-GPG-KEY-CentOS-7``)."""
        return self.path / "keys" / "centos-fixture.asc"

    @property
    def keys(self) -> list[Path]:
        return [self.key_file, self.centos_key_file]

    @property
    def gnupghome(self) -> Path:
        """Holds both private keys (``DOCKER_UID``, ``CENTOS_UID``); use via ``sign_rpms``."""
        return self.path / "gnupg"

    def repo_dir(self, repo: str, arch: str = "x86_64") -> Path:
        return self.root / repo_relpath(repo, arch)

    def repo_urls(self, base_url: str, arch: str = "x86_64") -> dict[str, str]:
        """Repo id -> baseurl below ``base_url`` (the server's URL) for DnfRoot."""
        base = base_url.rstrip("/")
        return {repo: f"{base}/{repo_relpath(repo, arch)}/" for repo in REPO_IDS}

    def packages(self, repo: str, arch: str = "x86_64") -> list[Pkg]:
        return catalog(arch)[repo]

    def pkg(self, repo: str, arch: str, name: str, version: str | None = None) -> Pkg:
        """The catalog entry; ``version`` is "V" or "V-R" (newest when None)."""
        for p in catalog(arch)[repo]:
            if p.name == name and version in (None, p.version, p.vr, p.evr):
                return p
        raise KeyError(f"{name} {version or ''} not in {repo}/{arch}")

    def rpm_path(self, repo: str, arch: str, name: str, version: str | None = None) -> Path:
        return self.repo_dir(repo, arch) / "Packages" / self.pkg(repo, arch, name, version).filename

    def core_packages(self, arch: str = "x86_64") -> list[str]:
        return core_packages(arch)


def _source_hash() -> str:
    digest = hashlib.sha256(Path(__file__).read_bytes())
    for arch in ARCHES:
        digest.update(repr(catalog(arch)).encode())
    return digest.hexdigest()[:16]


def _build_into(tmp: Path, arches: tuple[str, ...]) -> dict[str, str]:
    root = tmp / "root"
    keys = tmp / "keys"
    keys.mkdir(parents=True)
    with private_gnupghome() as home:
        (keys / "docker-fixture.asc").write_text(make_key(home, DOCKER_UID))
        (keys / "centos-fixture.asc").write_text(make_key(home, CENTOS_UID))
        fingerprints = {
            "docker": key_fingerprint(home, DOCKER_UID),
            "centos": key_fingerprint(home, CENTOS_UID),
        }
        shutil.copytree(
            home, tmp / "gnupg", ignore=shutil.ignore_patterns("S.*", "*.lock", "random_seed")
        )

    jobs: list[tuple[Pkg, Path]] = []
    for arch in arches:
        for repo, pkgs in catalog(arch).items():
            packages = root / repo_relpath(repo, arch) / "Packages"
            jobs += [(p, packages) for p in pkgs]
    with ThreadPoolExecutor(max_workers=max(2, (os.cpu_count() or 2) * 2)) as pool:
        built = list(pool.map(lambda job: build_rpm(*job, workdir=tmp), jobs))

    docker_side = [p for p in built if "/docker-ce/" in str(p)]
    centos_side = [p for p in built if "/centos-vault/" in str(p)]
    sign_rpms(docker_side, tmp / "gnupg", DOCKER_UID)
    sign_rpms(centos_side, tmp / "gnupg", CENTOS_UID)

    comps = write_comps(tmp / "comps.xml")
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [
            pool.submit(
                createrepo, root / repo_relpath(repo, arch), comps if repo == "os" else None
            )
            for arch in arches
            for repo in REPO_IDS
        ]
        for f in futures:
            f.result()

    centos = root / "docker-ce" / "linux" / "centos"
    (centos / "docker-ce.repo").write_text(DOCKER_CE_REPO_FILE)
    shutil.copyfile(keys / "docker-fixture.asc", centos / "gpg")
    vault = root / "centos-vault"
    shutil.copyfile(keys / "centos-fixture.asc", vault / "RPM-GPG-KEY-CentOS-7")
    for arch in arches:
        name = "RPM-GPG-KEY-CentOS-7" if arch == "x86_64" else "RPM-GPG-KEY-CentOS-7-aarch64"
        shutil.copyfile(keys / "centos-fixture.asc", root / repo_relpath("os", arch) / name)
        if arch != "x86_64":
            shutil.copyfile(keys / "centos-fixture.asc", vault / "altarch" / name)
    (tmp / "comps.xml").unlink()
    return fingerprints


def build_fixture_mirror(dest: Path, arches: Iterable[str] = ("x86_64",)) -> FixtureMirror:
    """Build the mirror into ``dest`` (a temp sibling renamed into place), or load it if built."""
    arches = tuple(arches)
    dest = Path(dest)
    meta = dest / "mirror.json"
    if not meta.exists():
        for tool in ("rpmbuild", "rpmsign", "createrepo_c", "gpg"):
            need(tool)
        dest.parent.mkdir(parents=True, exist_ok=True)
        _sweep_stale_tmp(dest.parent)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{dest.name}-", dir=dest.parent))
        try:
            fingerprints = _build_into(tmp, arches)
            (tmp / "mirror.json").write_text(
                json.dumps({"arches": list(arches), "fingerprints": fingerprints}, indent=2)
            )
            try:
                tmp.rename(dest)
            except OSError:
                if not meta.exists():  # lost a race to a concurrent builder: use its tree
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    data = json.loads(meta.read_text())
    if tuple(data["arches"]) != arches:
        raise AssertionError(f"{dest} holds arches {data['arches']}, not {list(arches)}")
    return FixtureMirror(dest, arches, dict(data["fingerprints"]))


def _sweep_stale_tmp(parent: Path, max_age: float = 3600) -> None:
    now = time.time()
    for tmp in parent.glob(".tmp-*"):
        with contextlib.suppress(OSError):
            if now - tmp.stat().st_mtime > max_age:
                shutil.rmtree(tmp, ignore_errors=True)


def cached_fixture_mirror(
    arches: Iterable[str] = ("x86_64",), cache_root: Path = CACHE_ROOT
) -> FixtureMirror:
    """The mirror for ``arches``, cached across sessions under ``cache_root/<hash>/``."""
    arches = tuple(arches)
    return build_fixture_mirror(cache_root / _source_hash() / "+".join(arches), arches)


__all__ = [
    "ARCHES",
    "CENTOS_UID",
    "DOCKER_DOCS_PACKAGES",
    "DOCKER_UID",
    "FixtureMirror",
    "Pkg",
    "REPO_IDS",
    "build_fixture_mirror",
    "build_rpm",
    "build_rpms",
    "cached_fixture_mirror",
    "catalog",
    "core_group",
    "core_packages",
    "createrepo",
    "expected_docker_install",
    "key_fingerprint",
    "make_key",
    "private_gnupghome",
    "repo_relpath",
    "rpm_env",
    "sign_rpms",
    "write_comps",
]
