"""Sandbox hosts reachable over real SSH: one Debian ``sshd`` per sandbox host.

Each ``SshHost`` starts ``/usr/sbin/sshd -D`` through the sandbox's own ``enter.sh`` (see
tests/rig/sandbox.py), so the daemon and every session it forks live in that host's private
mount namespace: CentOS 7's os-release and kernel release, its ``/var/lib``, ``/var/log``,
``/run`` and ``/etc/docker``, and the ``yum``/``rpm``/``systemctl`` shims first on ``PATH``
(sshd's ``SetEnv``, since sshd builds a fresh environment for each session).  Ansible
reaches it as root on its own ``127.0.0.1`` port with a throw-away key pair (``SshKeys``),
checks the host key against a known_hosts file the rig writes (no ``StrictHostKeyChecking=no``),
and runs modules with pyenv's Python 2.7.18 (CentOS 7's /usr/bin/python is 2.7.5).

What is not real: no PAM (``UsePAM no``) and ``StrictModes no`` (the key files sit in pytest's
temporary folders); root logs in with its key only.  ``SshHost.stop()`` ends sshd by PID, then
every process left in its mount namespace (sessions, the installer, dockerd, containerd and
their shims) by PID, via ``Sandbox.stop()``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.rig.sandbox import Sandbox, mount_ns, process_alive, processes_in, terminate

SSHD = "/usr/sbin/sshd"

SSHD_CONFIG = """# airdock test rig: one sandbox host
Port {port}
ListenAddress 127.0.0.1
HostKey {host_key}
PidFile {pid_file}
AuthorizedKeysFile {authorized_keys}
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PrintMotd no
PrintLastLog no
MaxSessions 50
MaxStartups 50:30:100
Subsystem sftp internal-sftp
SetEnv PATH={path} LANG=C.UTF-8 AIRDOCK_SANDBOX={sandbox}
LogLevel ERROR
"""


@dataclass
class SshKeys:
    """The controller's throw-away key pair (ed25519, no passphrase)."""

    private: Path
    public: Path

    @classmethod
    def make(cls, folder: Path) -> SshKeys:
        folder.mkdir(parents=True, exist_ok=True)
        private = folder / "id_ed25519"
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "airdock-rig", "-f",
             str(private)],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        private.chmod(0o600)
        return cls(private, folder / "id_ed25519.pub")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SshHost:
    """``sandbox`` served by its own sshd on 127.0.0.1:``port`` (started by ``start()``)."""

    def __init__(self, name: str, sandbox: Sandbox, keys: SshKeys):
        self.name = name
        self.sandbox = sandbox
        self.keys = keys
        self.folder = sandbox.base / "ssh"
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.host_public = ""

    def start(self, timeout: float = 30) -> SshHost:
        self.folder.mkdir(parents=True, exist_ok=True)
        host_key = self.folder / "ssh_host_ed25519_key"
        if not host_key.exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)],
                           check=True, capture_output=True, timeout=60)  # fmt: skip
        self.host_public = (self.folder / "ssh_host_ed25519_key.pub").read_text().split()[:2]
        (self.folder / "authorized_keys").write_text(self.keys.public.read_text())
        # sshd's privilege-separation folder, on the sandbox's /run
        privsep = self.sandbox.host / "run" / "sshd"
        privsep.mkdir(parents=True, exist_ok=True)
        privsep.chmod(0o755)
        for attempt in range(5):
            self.port = free_port()
            config = self.folder / "sshd_config"
            config.write_text(
                SSHD_CONFIG.format(
                    port=self.port,
                    host_key=host_key,
                    pid_file=self.folder / "sshd.pid",
                    authorized_keys=self.folder / "authorized_keys",
                    path=f"{self.sandbox.shims}:/usr/sbin:/usr/bin:/sbin:/bin",
                    sandbox=self.sandbox.base,
                )
            )
            log = open(self.folder / "sshd.log", "ab")  # noqa: SIM115 - closed below
            try:
                # enter.sh execs sshd: the PID is sshd's own, in the sandbox's mount namespace
                self.proc = subprocess.Popen(
                    self.sandbox.command([SSHD, "-D", "-e", "-f", str(config)]),
                    stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                )  # fmt: skip
            finally:
                log.close()
            if self._wait_listening(timeout):
                return self
            self.stop()
            if attempt == 4:
                break
        raise AssertionError(
            f"sshd for {self.name} did not start:\n{(self.folder / 'sshd.log').read_text()}"
        )

    def _wait_listening(self, timeout: float) -> bool:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    if sock.recv(4).startswith(b"SSH-"):
                        return True
            except OSError:
                time.sleep(0.1)
        return False

    @property
    def known_hosts_line(self) -> str:
        return f"[127.0.0.1]:{self.port} {' '.join(self.host_public)}\n"

    def inventory_line(self, python: str) -> str:
        return (
            f"{self.name} ansible_host=127.0.0.1 ansible_port={self.port} ansible_user=root "
            f"ansible_ssh_private_key_file={self.keys.private} "
            f"ansible_python_interpreter={python}"
        )

    def ssh(
        self, command: str, known_hosts: Path, timeout: float = 60
    ) -> subprocess.CompletedProcess:
        """One plain ``ssh`` command on the host (what an operator would type)."""
        return subprocess.run(
            ["ssh", "-F", "/dev/null", "-i", str(self.keys.private), "-p", str(self.port),
             "-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=yes",
             "-o", "BatchMode=yes", "root@127.0.0.1", command],
            capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
        )  # fmt: skip

    def stop(self) -> None:
        """sshd by PID, then whatever is left in its mount namespace, then the sandbox's
        daemons (Sandbox.stop())."""
        if self.proc is not None:
            ns = mount_ns(self.proc.pid)
            own = mount_ns(os.getpid())
            terminate(self.proc.pid, grace=10)
            self.proc.wait()
            if ns and ns != own:
                for pid in processes_in({ns}):
                    if process_alive(pid):
                        terminate(pid, grace=5)
            self.proc = None
        self.sandbox.stop()


def write_known_hosts(hosts: list[SshHost], path: Path) -> Path:
    path.write_text("".join(h.known_hosts_line for h in hosts))
    return path
