"""A private Docker engine for tests: ``start_dockerd(base_dir)``.

Debian's dockerd 20.10 writes to a few fixed host paths even with its own
``--data-root``/``--exec-root``: ``/etc/docker/key.json`` (its trust key, no
flag moves it in 20.10), ``/run/docker/plugins``, and — through containerd's
runc shim — ``/run/containerd/{s,runc}``. It would also use the host's
containerd if ``/run/containerd/containerd.sock`` existed. So the engine runs
in a private mount namespace (``unshare --mount --propagation private``) where
``/run`` and ``/etc/docker`` are bind mounts of folders under ``base_dir``, with
its own containerd (config, root, state and socket under ``base_dir`` too).
Sockets under ``base_dir`` stay reachable from outside the namespace.

containerd is started first (its PID is the namespace's first process),
dockerd joins the namespace with ``nsenter`` (which execs, so the PID we hold
is dockerd's). :meth:`Dockerd.stop` ends dockerd, then any shim left in the
namespace, then containerd — each by PID. Nothing under ``/var/lib/docker``,
``/run/docker.sock`` or the host's containerd is touched.

Needs root, ``unshare``/``nsenter`` (util-linux), ``dockerd``, ``containerd`` and
the ``docker`` CLI.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from .tools import need, run, stop_process

_CONTAINERD_TOML = """\
version = 2
root = "{base}/containerd/root"
state = "{base}/containerd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "{base}/containerd.sock"
[ttrpc]
  address = "{base}/containerd.sock.ttrpc"
"""


@dataclass
class Dockerd:
    """A running private engine. ``docker(*args)`` runs the CLI against it."""

    base: Path
    sock: Path
    process: subprocess.Popen
    containerd: subprocess.Popen
    cli: str
    env: dict[str, str] = field(repr=False, default_factory=dict)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def host(self) -> str:
        return f"unix://{self.sock}"

    def docker(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return run([self.cli, "-H", self.host, *args], env=self.env, check=check)

    def stop(self) -> None:
        namespace = _mount_ns(self.containerd.pid)
        stop_process(self.process)
        if namespace:  # shims of containers that outlived dockerd
            for pid in _pids_in_mount_ns(namespace):
                if pid != self.containerd.pid:
                    _kill(pid)
        stop_process(self.containerd)

    def log(self) -> str:
        return (self.base / "dockerd.log").read_text(errors="replace")


def start_dockerd(base_dir: Path) -> Dockerd:
    """Start containerd + dockerd under ``base_dir`` and wait until the API answers."""
    unshare, nsenter = need("unshare"), need("nsenter")
    dockerd, containerd, cli = need("dockerd"), need("containerd"), need("docker")
    base = Path(base_dir).resolve()
    for sub in ("run", "etc-docker", "data", "exec", "containerd", "cli-config"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    (base / "containerd.toml").write_text(_CONTAINERD_TOML.format(base=base))
    binds = f"mount -n --bind {base}/run /run"
    if Path("/etc/docker").is_dir():
        binds += f" && mount -n --bind {base}/etc-docker /etc/docker"
    script = f"{binds} && exec {containerd} --config {base}/containerd.toml"
    with open(base / "containerd.log", "wb") as log:
        ctd = subprocess.Popen(
            [unshare, "--mount", "--propagation", "private", "sh", "-c", script],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        _wait(lambda: (base / "containerd.sock").exists(), ctd, base / "containerd.log")
        sock = base / "docker.sock"
        cmd = [
            nsenter, f"--target={ctd.pid}", "--mount", "--",
            dockerd,
            "--data-root", str(base / "data"),
            "--exec-root", str(base / "exec"),
            "-H", f"unix://{sock}",
            "--pidfile", str(base / "dockerd.pid"),
            "--containerd", str(base / "containerd.sock"),
            "--bridge=none", "--iptables=false", "--ip-masq=false",
            "--storage-driver=vfs",
        ]  # fmt: skip
        with open(base / "dockerd.log", "wb") as log:
            proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
    except BaseException:
        stop_process(ctd)
        raise
    env = {**os.environ, "DOCKER_CONFIG": str(base / "cli-config")}
    env.pop("DOCKER_HOST", None)
    engine = Dockerd(base, sock, proc, ctd, cli, env)
    try:
        _wait(
            lambda: engine.docker("version", check=False).returncode == 0,
            proc,
            base / "dockerd.log",
        )
    except BaseException:
        engine.stop()
        raise
    return engine


def _wait(ready, proc: subprocess.Popen, log: Path, attempts: int = 600) -> None:
    for _ in range(attempts):
        if ready():
            return
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited ({proc.returncode}):\n{log.read_text()}")
        time.sleep(0.1)
    raise RuntimeError(f"{proc.args} did not become ready:\n{log.read_text()}")


def _mount_ns(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return None


def _pids_in_mount_ns(namespace: str) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid() and _mount_ns(int(entry)) == namespace:
            pids.append(int(entry))
    return pids


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
