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

from tests.rig.sshhost import SshHost, write_known_hosts

REPO = Path(__file__).resolve().parents[2]
RECAP = re.compile(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


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
ssh_args = -F /dev/null -o UserKnownHostsFile={known_hosts} -o StrictHostKeyChecking=yes -o ControlMaster=auto -o ControlPersist=120s
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
        self.config.write_text(ANSIBLE_CFG.format(work=self.work, known_hosts=self.known_hosts,
                                                  control=self.control))

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
        if echo:
            proc = subprocess.run(cmd, env=env, timeout=timeout, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
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
        shutil.rmtree(self.control, ignore_errors=True)


class Play:
    def __init__(self, cmd: list[str], proc: subprocess.CompletedProcess):
        self.cmd = cmd
        self.returncode = proc.returncode
        self.output = (proc.stdout or "") + (proc.stderr or "")

    @property
    def recap(self) -> dict[str, dict[str, int]]:
        """PLAY RECAP per host: {"h1": {"ok": .., "changed": .., "unreachable": .., "failed": ..}}."""
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
