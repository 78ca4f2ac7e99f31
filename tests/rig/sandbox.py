"""A CentOS-7-shaped sandbox host for running the UNMODIFIED installer on this Debian machine.

What is real and what is not
----------------------------
* The packages: an installroot (a ``DnfRoot`` copy with the fixture mirror's ``@core``, and in
  some tests CentOS's old docker 1.13) managed by the host's real ``dnf`` and ``rpm``.
* The installer: ``installer/airdock_install.py`` exactly as the builder copies it into the
  bundle, run by pyenv's Python 2.7.18 / 3.6.15 or the current Python as a subprocess.
* The host's view: the installer runs inside ``unshare --mount --propagation private`` where
  ``enter.sh`` bind-mounts sandbox files and folders over ``/etc/os-release``,
  ``/proc/sys/kernel/osrelease``, ``/etc/docker``, ``/var/lib`` (so ``/var/lib/docker``,
  ``/var/lib/containerd`` and ``/var/lib/airdock`` are the sandbox's), ``/var/log`` and
  ``/run`` (Debian's ``/var/run`` is a symlink to it).  Outside the namespace nothing changes.
* Three shims on PATH, nothing else (``tests/rig/shims``, copied to a 0755 folder in /tmp so
  an unprivileged run reaches them wherever the checkout is): ``yum`` -> ``dnf --installroot``
  (``yum shell``, ``history``, ``remove`` ... pass through), ``rpm`` -> ``rpm --root`` (a call
  that names its own ``--dbpath`` is passed through untouched: that is a private database,
  not the system one), ``systemctl`` -> starts/stops the host's real ``containerd`` and
  ``dockerd`` on the sandbox's default paths (``/run/docker.sock``, ``/var/lib/docker``...).
  ``docker`` is Debian's real client (/usr/bin/docker) talking to that daemon.
* dockerd runs with ``--bridge=none --iptables=false --ip-masq=false --storage-driver=vfs``
  (no bridge can be made here).  With no default bridge, a plain ``docker run --rm
  hello-world`` gets no network, which hello-world does not need: the installer's smoke test
  runs unchanged.
* The sandbox host is air-gapped: its yum configuration (the shim's dnf.conf, modelled on
  CentOS 7's yum.conf: ``gpgcheck=1``, ``localpkg_gpgcheck=0``) enables base/updates/extras
  repos whose baseurl is a closed local port, so forgetting ``--disablerepo='*'`` fails.

Everything the sandbox starts is recorded by the systemctl shim (``state/*.pid``) and
``Sandbox.stop()`` ends it by PID, together with any process left in the daemons' mount
namespace (containerd shims).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from builder.bundle import write_sha256sums
from tests.rig.dnfroot import RPMMACROS, DnfRoot
from tests.rig.publisher import resign

REPO = Path(__file__).resolve().parents[2]
SHIMS = Path(__file__).resolve().parent / "shims"
INSTALLER = REPO / "installer" / "airdock_install.py"

CENTOS_7 = """NAME="CentOS Linux"
VERSION="7 (Core)"
ID="centos"
ID_LIKE="rhel fedora"
VERSION_ID="7"
PRETTY_NAME="CentOS Linux 7 (Core)"
ANSI_COLOR="0;31"
CPE_NAME="cpe:/o:centos:centos:7"
HOME_URL="https://www.centos.org/"
BUG_REPORT_URL="https://bugs.centos.org/"
"""
RHEL_7 = """NAME="Red Hat Enterprise Linux Server"
VERSION="7.9 (Maipo)"
ID="rhel"
ID_LIKE="fedora"
VERSION_ID="7.9"
PRETTY_NAME="Red Hat Enterprise Linux Server 7.9 (Maipo)"
"""
# CentOS 6 has no /etc/os-release; the file stands in for what a 6.x-era tool would report.
CENTOS_6 = """NAME="CentOS"
ID="centos"
VERSION_ID="6"
PRETTY_NAME="CentOS release 6.10 (Final)"
"""
UBUNTU_22 = """PRETTY_NAME="Ubuntu 22.04.4 LTS"
NAME="Ubuntu"
VERSION_ID="22.04"
VERSION="22.04.4 LTS (Jammy Jellyfish)"
ID=ubuntu
ID_LIKE=debian
"""
KERNEL_EL7 = "3.10.0-1160.el7.x86_64"
KERNEL_EL6 = "2.6.32-754.el6.x86_64"

# CentOS 7's /etc/yum.conf, as dnf options (dnf's own defaults differ: clean_requirements...).
HOST_DNF_CONF = """[main]
gpgcheck=1
localpkg_gpgcheck=0
installonly_limit=5
install_weak_deps=False
clean_requirements_on_remove=False
best=False
skip_if_unavailable=False
keepcache=0
plugins=0
protected_packages=
"""
UNREACHABLE = "http://127.0.0.1:9"  # the discard port: nothing listens, connections are refused
HOST_REPOS = "".join(
    f"[{repo}]\nname=CentOS-7 - {repo}\nbaseurl={UNREACHABLE}/centos/7/{repo}/x86_64/\n"
    f"enabled=1\ngpgcheck=1\ngpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-CentOS-7\n\n"
    for repo in ("base", "updates", "extras")
)

CONTAINERD_TOML = """version = 2
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.internal.v1.opt"]
"""

ENTER_SH = """#!/bin/sh
# Enter the airdock sandbox host; run inside `unshare --mount --propagation private`.
set -e
SB={sb}
mount --bind "$SB/host/etc/os-release" /etc/os-release
mount --bind "$SB/host/kernel-osrelease" /proc/sys/kernel/osrelease
mount --bind "$SB/host/etc/docker" /etc/docker
mount --bind "$SB/host/etc/airdock" /etc/airdock
mount --bind "$SB/host/var/lib" /var/lib
mount --bind "$SB/host/var/log" /var/log
mount --bind "$SB/host/run" /run
PATH={shims}:/usr/sbin:/usr/bin:/sbin:/bin
HOME="$SB/home"
AIRDOCK_SANDBOX="$SB"
LANG=C.UTF-8
export PATH HOME AIRDOCK_SANDBOX LANG
unset DOCKER_HOST DOCKER_CONTEXT DOCKER_CONFIG DOCKER_TLS_VERIFY DOCKER_CERT_PATH PYTHONPATH
unset PYTHONHOME VIRTUAL_ENV
exec "$@"
"""

NOBODY = [
    "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
    # /root is 0700 and pyenv lives there: read access only, still uid 65534 (not root).
    "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search", "--",
]  # fmt: skip


def quote_sh(value: str) -> str:
    return "'" + str(value).replace("'", "'\\''") + "'"


class Sandbox:
    """One sandbox host below ``base``: ``root`` (a DnfRoot) is its rpmdb and filesystem."""

    def __init__(
        self,
        base: Path,
        root: DnfRoot,
        os_release: str = CENTOS_7,
        kernel: str = KERNEL_EL7,
        trusted: Sequence[Path] = (),
    ):
        self.base = Path(base).resolve()
        self.root = root
        self.host = self.base / "host"
        self.state = self.base / "state"
        for folder in (
            self.host / "etc" / "docker",
            self.host / "etc" / "airdock",
            self.host / "var" / "lib" / "docker",
            self.host / "var" / "lib" / "containerd",
            self.host / "var" / "lib" / "airdock",
            self.host / "var" / "log",
            self.host / "run",
            self.base / "home",
            self.base / "dnf" / "repos.d",
            self.base / "dnf" / "vars",
            self.base / "dnf" / "home",
            self.state / "enabled",
        ):
            folder.mkdir(parents=True, exist_ok=True)
        self.set_os_release(os_release)
        self.set_kernel(kernel)
        self.trust(*trusted)
        (self.base / "dnf" / "dnf.conf").write_text(HOST_DNF_CONF)
        (self.base / "dnf" / "repos.d" / "CentOS-Base.repo").write_text(HOST_REPOS)
        (self.base / "dnf" / "home" / ".rpmmacros").write_text(RPMMACROS)
        (self.state / "containerd.toml").write_text(CONTAINERD_TOML)
        config = {
            "root": str(self.root.root),
            "dnf_config": str(self.base / "dnf" / "dnf.conf"),
            "dnf_reposdir": str(self.base / "dnf" / "repos.d"),
            "dnf_varsdir": str(self.base / "dnf" / "vars"),
            "dnf_home": str(self.base / "dnf" / "home"),
            "state": str(self.state),
            "containerd_config": str(self.state / "containerd.toml"),
            "forcearch": self.root.arch if self.root.forcearch else None,
        }
        (self.base / "sandbox.json").write_text(json.dumps(config, indent=2) + "\n")
        self.shims = reachable_shims()
        self.enter = self.base / "enter.sh"
        self.enter.write_text(ENTER_SH.format(sb=quote_sh(self.base), shims=quote_sh(self.shims)))
        # /etc/airdock is the one bind target Debian lacks: an empty folder, made once.
        os.makedirs("/etc/airdock", exist_ok=True)
        for target in ("/etc/os-release", "/proc/sys/kernel/osrelease", "/etc/docker",
                       "/etc/airdock", "/var/lib", "/var/log", "/run"):  # fmt: skip
            if not os.path.exists(target):
                raise AssertionError(f"sandbox: {target} is missing on this host (bind target)")

    # ------------------------------------------------------------------ the host's identity

    def set_os_release(self, text: str) -> None:
        (self.host / "etc").mkdir(parents=True, exist_ok=True)
        (self.host / "etc" / "os-release").write_text(text)

    def trust(self, *keys: Path) -> None:
        """Provision publisher keys in the host's /etc/airdock/trusted-keys (kickstart's job)."""
        folder = self.host / "etc" / "airdock" / "trusted-keys"
        for key in keys:
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(key, folder / Path(key).name)

    @property
    def trusted_keys(self) -> list[str]:
        folder = self.host / "etc" / "airdock" / "trusted-keys"
        return sorted(p.name for p in folder.glob("*.asc")) if folder.exists() else []

    def set_kernel(self, release: str) -> None:
        (self.host / "kernel-osrelease").write_text(release + "\n")

    # ------------------------------------------------------------------ paths seen from outside

    @property
    def docker_sock(self) -> Path:
        return self.host / "run" / "docker.sock"

    @property
    def var_lib(self) -> Path:
        return self.host / "var" / "lib"

    @property
    def receipt(self) -> Path:
        return self.var_lib / "airdock" / "receipt.json"

    @property
    def log_file(self) -> Path:
        return self.host / "var" / "log" / "airdock-install.log"

    # ------------------------------------------------------------------ running inside

    def command(self, argv: list[str], user: str | None = None) -> list[str]:
        """The full command line that runs ``argv`` inside a fresh mount namespace."""
        prefix = ["unshare", "--mount", "--propagation", "private", "/bin/sh", str(self.enter)]
        if user == "nobody":
            prefix += NOBODY
        elif user is not None:
            raise ValueError(f"unknown user {user!r}")
        return prefix + [str(a) for a in argv]

    def run(
        self,
        argv: list[str],
        user: str | None = None,
        env: dict | None = None,
        timeout: float = 300,
        input: str | None = None,
    ) -> subprocess.CompletedProcess:
        full_env = dict(os.environ)
        full_env.update(env or {})
        return subprocess.run(
            self.command(argv, user),
            capture_output=True,
            text=True,
            env=full_env,
            timeout=timeout,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
        )

    def installer(
        self,
        bundle: Path,
        *args: str,
        python: str | None = None,
        user: str | None = None,
        wrapper: bool = False,
        timeout: float = 300,
    ) -> subprocess.CompletedProcess:
        """Run the bundle's own installer (``python airdock_install.py ARGS``, or
        ``sh install.sh ARGS`` with ``AIRDOCK_PYTHON`` when ``wrapper``)."""
        python = python or sys.executable
        bundle = Path(bundle)
        if wrapper:
            return self.run(["/bin/sh", bundle / "install.sh", *args], user=user,
                            env={"AIRDOCK_PYTHON": python}, timeout=timeout)  # fmt: skip
        return self.run([python, bundle / "airdock_install.py", *args], user=user,
                        timeout=timeout)  # fmt: skip

    # ------------------------------------------------------------------ inspecting from outside

    def rpm_qa(self, include_keys: bool = True) -> set[str]:
        return self.root.rpm_qa(include_keys=include_keys)

    def history_count(self) -> int:
        return self.root.history_count()

    def last_transaction(self) -> dict[str, str]:
        """{package name: action} of the newest dnf history entry: install, remove, ...; an
        upgrade shows as "upgrade+upgraded" (the new and the old version of the name)."""
        import sqlite3

        actions = {
            1: "install",
            2: "downgrade",
            3: "downgraded",
            4: "obsolete",
            5: "obsoleted",
            6: "upgrade",
            7: "upgraded",
            8: "remove",
            9: "reinstall",
            10: "reinstalled",
        }
        db = self.root.root / "var" / "lib" / "dnf" / "history.sqlite"
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            rows = conn.execute(
                "SELECT r.name, ti.action FROM trans_item ti JOIN rpm r ON r.item_id = ti.item_id"
                " WHERE ti.trans_id = (SELECT MAX(id) FROM trans)"
            ).fetchall()
        found: dict[str, set[str]] = {}
        for name, action in rows:
            found.setdefault(name, set()).add(actions.get(action, str(action)))
        return {name: "+".join(sorted(acts)) for name, acts in found.items()}

    def docker(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            ["/usr/bin/docker", "-H", f"unix://{self.docker_sock}", *args],
            capture_output=True,
            text=True,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(self.base / "home")},
            timeout=120,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")
        return proc

    def unit_pids(self) -> dict[str, int]:
        pids = {}
        for pidfile in self.state.glob("*.pid"):
            try:
                pids[pidfile.stem] = int(pidfile.read_text().strip())
            except ValueError:
                continue
        return {u: p for u, p in pids.items() if process_alive(p)}

    def snapshot(self) -> dict:
        """Everything a 'nothing changed' assertion compares."""
        files = {}
        for top in (self.var_lib, self.host / "etc" / "docker", self.host / "etc" / "airdock"):
            for path in sorted(top.rglob("*")):
                if path.is_file() or path.is_symlink():
                    files[str(path.relative_to(self.host))] = path.stat().st_size
        return {
            "rpm": sorted(self.rpm_qa(include_keys=True)),
            "history": self.history_count(),
            "files": files,
            "daemons": sorted(self.unit_pids()),
        }

    # ------------------------------------------------------------------ teardown

    def stop(self) -> None:
        """End every process the sandbox started, by PID (daemons, then what shares their
        mount namespace: containerd shims and containers' processes)."""
        own_ns = mount_ns(os.getpid())
        namespaces = set()
        pids = self.unit_pids()
        for pid in pids.values():
            ns = mount_ns(pid)
            if ns and ns != own_ns:
                namespaces.add(ns)
        for unit in ("docker", "containerd"):
            if unit in pids:
                terminate(pids[unit])
        for pid in pids.values():
            terminate(pid)
        for pid in processes_in(namespaces):
            terminate(pid, grace=5)

    def close(self) -> None:
        """stop(), then remove the shims' copy (the sandbox's files stay for inspection)."""
        self.stop()
        shutil.rmtree(self.shims, ignore_errors=True)

    def remove(self) -> None:
        self.close()
        shutil.rmtree(self.base, ignore_errors=True)


def reachable_shims() -> Path:
    """A copy of the shims in a fresh 0755 folder under /tmp (1777).

    A run as uid 65534 finds its tools with ``access(2)``, which drops the capabilities the
    run keeps (CAP_DAC_READ_SEARCH): the checkout may sit below a folder that uid cannot
    enter (a clone inside ``mktemp -d``, 0700), so the shims must not be reached through it.
    """
    folder = Path(tempfile.mkdtemp(prefix="airdock-shims-"))
    folder.chmod(0o755)
    for shim in SHIMS.iterdir():
        if shim.is_file():
            shutil.copy2(shim, folder / shim.name)
            (folder / shim.name).chmod(0o755)
    return folder


def process_alive(pid: int) -> bool:
    """True while pid runs (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def mount_ns(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return None


def processes_in(namespaces: set[str]) -> list[int]:
    found = []
    if not namespaces:
        return found
    for entry in os.listdir("/proc"):
        if entry.isdigit() and mount_ns(int(entry)) in namespaces:
            found.append(int(entry))
    return found


def terminate(pid: int, grace: float = 20) -> None:
    if not process_alive(pid):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.time() + grace
    while time.time() < deadline:
        if not process_alive(pid):
            return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    deadline = time.time() + 5
    while process_alive(pid) and time.time() < deadline:
        time.sleep(0.1)


# ---------------------------------------------------------------------- tampering with bundles


def flip_byte(path: Path, offset: int | None = None) -> None:
    """Flip one byte, keeping the size; by default the 32nd from the end, which in an RPM is
    in the payload.  (The middle of a small RPM is often the signature header's reserved
    space, which no digest or signature covers: flipping it changes nothing that matters.)"""
    data = bytearray(Path(path).read_bytes())
    at = len(data) - 32 if offset is None else offset
    data[at] ^= 0xFF
    Path(path).write_bytes(bytes(data))


def rewrite_sha256sums(bundle: Path, sign: bool = True) -> None:
    """Recompute SHA256SUMS with the builder's own writer (what a careful attacker does), and
    re-sign it with the rig's publisher key unless ``sign`` is false (see rig/publisher.py)."""
    write_sha256sums(Path(bundle))
    if sign:
        resign(Path(bundle))


def edit_manifest(bundle: Path, edit) -> dict:
    """Apply ``edit(manifest)`` to manifest.json, then rewrite SHA256SUMS consistently."""
    path = Path(bundle) / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    rewrite_sha256sums(bundle)
    return manifest


def reseal_file(bundle: Path, path: Path) -> dict:
    """After tampering with ``path``: make manifest.json and SHA256SUMS agree with it again."""
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    rel = Path(path).relative_to(bundle).as_posix()

    def edit(manifest: dict) -> None:
        for entry in manifest.get("packages", []) + manifest.get("images", []):
            if entry["file"] == rel:
                entry["sha256"] = digest
                entry["size"] = Path(path).stat().st_size

    return edit_manifest(bundle, edit)
