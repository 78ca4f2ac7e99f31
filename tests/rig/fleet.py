"""A fleet of SSH-reachable sandbox hosts and ``ansible-playbook`` against them.

``Fleet`` writes the inventory (one line per ``SshHost``: 127.0.0.1, its port, root, the
throw-away key, pyenv's Python 2.7.18), a known_hosts file with every host key, and an
``ansible.cfg`` that keeps Ansible's files in the work folder, checks host keys strictly and
puts the ssh ControlMaster sockets where teardown can end them (``ssh -O exit``).
``Fleet.play()`` runs the bundle's own ``ansible/airdock.yml``.  Used by tests/test_fleet.py,
``make demo-fleet`` (tests/rig/demo_fleet.py) and bench/fleet_bench.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from builder.tarutil import TARBALL_SUFFIX
from tests.rig.sshhost import SshHost, write_known_hosts

REPO = Path(__file__).resolve().parents[2]
RECAP = re.compile(
    r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M
)


def ansible_playbook(version: str) -> Path | None:
    """``ansible-playbook`` of ansible-core 2.16 (this venv) or Ansible 2.9 (.venv-ansible29,
    made by `make ansible29` on Python 3.9), or None when that one is not installed."""
    if version == "2.16":
        path = Path(sys.executable).with_name("ansible-playbook")
    elif version == "2.9":
        path = REPO / ".venv-ansible29" / "bin" / "ansible-playbook"
    else:
        raise ValueError(version)
    return path if path.exists() else None


ANSIBLE_CFG = """[defaults]
forks = 10
host_key_checking = True
retry_files_enabled = False
local_tmp = {work}/ansible-local
nocolor = True
deprecation_warnings = False

[ssh_connection]
ssh_args = -F /dev/null -o UserKnownHostsFile={known_hosts} -o StrictHostKeyChecking=yes
  -o ControlMaster=auto -o ControlPersist=120s
control_path = {control}/%%C
pipelining = True
"""


class Fleet:
    def __init__(self, hosts: list[SshHost], work: Path, python: str):
        self.hosts = hosts
        self.work = Path(work)
        self.work.mkdir(parents=True, exist_ok=True)
        # ssh's ControlMaster sockets: a short folder (a unix socket path has ~100 bytes)
        self.control = Path(tempfile.mkdtemp(prefix="adk-ssh-"))
        self.python = python
        self.known_hosts = write_known_hosts(hosts, self.work / "known_hosts")
        self.inventory = self.work / "inventory.ini"
        self.inventory.write_text(
            "[airdock]\n" + "".join(h.inventory_line(python) + "\n" for h in hosts)
        )
        self.plays = 0
        self.config = self.work / "ansible.cfg"
        self.config.write_text(
            ANSIBLE_CFG.format(work=self.work, known_hosts=self.known_hosts, control=self.control)
        )

    def by_name(self, name: str) -> SshHost:
        return next(h for h in self.hosts if h.name == name)

    def play(
        self,
        playbook: Path,
        ansible: Path,
        extra: dict[str, str] | None = None,
        check: bool = False,
        timeout: float = 1800,
        echo: bool = False,
    ) -> Play:
        cmd = [str(ansible), "-i", str(self.inventory), str(playbook)]
        for key, value in (extra or {}).items():
            cmd += ["-e", f"{key}={value}"]
        if check:
            cmd.append("--check")
        env = dict(os.environ)
        env.update({"ANSIBLE_CONFIG": str(self.config), "ANSIBLE_NOCOLOR": "1",
                    "ANSIBLE_FORCE_COLOR": "0", "PYTHONUNBUFFERED": "1"})  # fmt: skip
        env.pop("PYTHONPATH", None)
        if echo:  # shown line by line as Ansible prints it, and kept
            lines = []
            with subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, text=True,
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT) as live:  # fmt: skip
                assert live.stdout is not None
                for line in live.stdout:
                    print(line, end="", flush=True)
                    lines.append(line)
            proc = subprocess.CompletedProcess(cmd, live.returncode, "".join(lines), "")
        else:
            proc = subprocess.run(cmd, env=env, timeout=timeout, stdin=subprocess.DEVNULL,
                                  capture_output=True, text=True)  # fmt: skip
        play = Play(cmd, proc)
        self.plays += 1
        (self.work / f"play-{self.plays}.log").write_text(repr(play))
        return play

    def close(self) -> None:
        """End Ansible's ssh ControlMasters (by their sockets), then every host."""
        for sock in self.control.glob("*"):
            subprocess.run(["ssh", "-F", "/dev/null", "-o", f"ControlPath={sock}", "-O", "exit",
                            "127.0.0.1"], capture_output=True, timeout=30)  # fmt: skip
        for host in self.hosts:
            host.stop()
            host.sandbox.close()  # and its copy of the shims
        shutil.rmtree(self.control, ignore_errors=True)


class Play:
    def __init__(self, cmd: list[str], proc: subprocess.CompletedProcess):
        self.cmd = cmd
        self.returncode = proc.returncode
        self.output = (proc.stdout or "") + (proc.stderr or "")

    @property
    def recap(self) -> dict[str, dict[str, int]]:
        """PLAY RECAP per host: {"h1": {"ok": N, "changed": N, "unreachable": N, "failed": N}}."""
        return {
            m.group(1): {"ok": int(m.group(2)), "changed": int(m.group(3)),
                         "unreachable": int(m.group(4)), "failed": int(m.group(5))}
            for m in RECAP.finditer(self.output)
        }  # fmt: skip

    def __repr__(self) -> str:
        return f"$ {' '.join(self.cmd)}\nexit {self.returncode}\n{self.output[-12000:]}"


def read_report(folder: Path) -> dict:
    return json.loads((folder / "airdock-fleet-report.json").read_text())


def rows(report: dict) -> dict[str, dict]:
    return {row["host"]: row for row in report["hosts"]}


class FleetLab:
    """Everything ``make demo-fleet`` and bench/fleet_bench.py need, offline, below ``work``:
    the fixture mirror and a registry with hello-world, a publisher key, a signed 26.1.4
    bundle built by ``airdock build``, and sandbox-host templates ("core", "old-docker").
    ``hosts(specs)`` makes a fleet of SSH-reachable sandbox hosts from the templates.
    ``close()`` stops what the lab started, by PID."""

    def __init__(self, work: Path, say=print):
        from tests.rig.fixtures_mirror import fixture_dnfroot
        from tests.rig.fixtures_sandbox import build_bundle, forget_docker_key
        from tests.rig.httpserver import MirrorServer
        from tests.rig.mirror import cached_fixture_mirror
        from tests.rig.publisher import make_publisher
        from tests.rig.registry import start_registry
        from tests.rig.sshhost import SshKeys
        from tests.rig.testimage import build_test_image, skopeo_push

        self.work = Path(work)
        self.fleets: list[Fleet] = []
        self.server = self.registry = None
        try:
            say("fixture mirror and registry on 127.0.0.1 (offline)")
            mirror = cached_fixture_mirror(("x86_64",))
            self.server = MirrorServer(mirror.root).start()
            image = build_test_image(self.work / "image")
            self.registry = start_registry(self.work / "registry")
            skopeo_push(image, "latest", f"{self.registry.host}/library/hello-world:latest",
                        auth_file=self.work / "skopeo-auth.json")  # fmt: skip
            say("the publisher's signing key")
            self.publisher = make_publisher(self.work / "publisher")
            say("airdock build --sign-key (docker-ce 26.1.4 + hello-world)")
            folder = build_bundle(mirror, self.server.url, self.work / "bundles",
                                  self.work / "cache", "26.1.4", "--image", "hello-world:latest",
                                  "--registry-mirror", self.registry.url, "--sign-key",
                                  str(self.publisher.secret))  # fmt: skip
            self.tarball = folder.parent / f"{folder.name}{TARBALL_SUFFIX}"
            self.templates = {}
            for kind in ("core", "old-docker"):
                say(
                    f"sandbox-host template {kind!r}: dnf groupinstall core"
                    + (" + CentOS's docker 1.13" if kind == "old-docker" else "")
                )
                root = fixture_dnfroot(self.work / "templates" / kind, mirror, self.server.url)
                root.import_keys()
                root.install_group_core()
                if kind == "old-docker":
                    root.install_names(["docker"])
                forget_docker_key(root)
                self.templates[kind] = root
            self.server.stop()  # from here on nothing reaches a mirror: the hosts are air-gapped
            self.server = None
            self.keys = SshKeys.make(self.work / "ssh-keys")
        except BaseException:
            self.close()
            raise

    def hosts(self, specs: dict[str, str], name: str) -> Fleet:
        """``{"h1": "old-docker", "h2": "core"}`` -> a Fleet of started SshHosts."""
        from tests.rig.sandbox import Sandbox
        from tests.rig.sshhost import SshHost
        from tests.rig.tools import pyenv_python

        base = self.work / name
        made = []
        try:
            for host, kind in specs.items():
                (base / host).mkdir(parents=True)
                root = self.templates[kind].copy(base / host / "root")
                box = Sandbox(base / host / "host-sandbox", root)
                made.append(SshHost(host, box, self.keys).start())
        except BaseException:
            for h in made:
                h.stop()
            raise
        fleet = Fleet(made, base / "ansible", pyenv_python("2.7.18"))
        self.fleets.append(fleet)
        return fleet

    def playbook(self) -> Path:
        """The bundle's own ansible/airdock.yml, unpacked on the "bastion"."""
        bastion = self.work / "bastion"
        if not bastion.exists():
            bastion.mkdir()
            subprocess.run(["tar", "-xf", str(self.tarball), "-C", str(bastion)], check=True)
        return bastion / self.tarball.name[: -len(TARBALL_SUFFIX)] / "ansible" / "airdock.yml"

    def close(self) -> None:
        for fleet in self.fleets:
            fleet.close()
        if self.registry is not None:
            self.registry.stop()
        if self.server is not None:
            self.server.stop()
