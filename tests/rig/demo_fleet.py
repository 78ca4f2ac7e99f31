"""`make demo-fleet`: the fleet playbook over real SSH, offline, on this machine (scenario 1).

1. the fixture mirror, a registry with hello-world, a publisher key, and a signed bundle made
   by `airdock build --sign-key` (tests/rig/fleet.py: FleetLab);
2. three CentOS 7 sandbox hosts, each with its own sshd on 127.0.0.1 in its own mount
   namespace (tests/rig/sshhost.py); h1 has CentOS's docker 1.13;
3. `ansible-playbook -i inventory.ini ansible/airdock.yml -e bundle=... -e trust_key=...`,
   the bundle's own playbook, shown as it runs: stage + check on every host, then the
   rolling install;
4. the fleet report (Markdown, and `airdock fleet-report`);
5. the same command again: changed=0 on every host.

Everything started here is stopped by PID at the end; the work folder is removed unless
AIRDOCK_DEMO_KEEP=1.  Run as root (the sandbox hosts need `unshare --mount`).
AIRDOCK_DEMO_ANSIBLE=2.9 uses Ansible 2.9 (.venv-ansible29, `make ansible29`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.rig.demo import BOLD, RESET, drop_work, step
from tests.rig.fixtures_sandbox import airdock_cli
from tests.rig.fleet import FleetLab, ansible_playbook


def main() -> int:
    if os.geteuid() != 0:
        print("make demo-fleet needs root (the sandbox hosts use unshare --mount)", file=sys.stderr)
        return 1
    version = os.environ.get("AIRDOCK_DEMO_ANSIBLE", "2.16")
    ansible = ansible_playbook(version)
    if ansible is None:
        print(f"Ansible {version} is not installed (make venv / make ansible29)", file=sys.stderr)
        return 1
    started = time.time()
    work = Path(tempfile.mkdtemp(prefix="airdock-demo-fleet-"))
    lab = None
    try:
        step("the bundle: fixture mirror, registry, publisher key, airdock build (offline)")
        lab = FleetLab(work, say=lambda text: print(f"  {text}", flush=True))
        print(f"bundle: {lab.tarball}")
        usb = work / "usb"
        usb.mkdir()
        for suffix in ("", ".sha256", ".sha256.asc"):
            shutil.copyfile(f"{lab.tarball}{suffix}", usb / f"{lab.tarball.name}{suffix}")
        tarball = usb / lab.tarball.name
        book = lab.playbook()
        print(f"the bundle's playbook: {book}")

        step("three CentOS 7 sandbox hosts, one sshd each on 127.0.0.1")
        fleet = lab.hosts({"h1": "old-docker", "h2": "core", "h3": "core"}, "fleet")
        for host in fleet.hosts:
            packages = sorted(n for n in host.sandbox.root.installed_names() if "docker" in n)
            print(f"  {host.name}: ssh root@127.0.0.1 -p {host.port}  docker packages: {packages}")
        print(f"\n$ cat {fleet.inventory}\n{fleet.inventory.read_text()}")
        probe = fleet.hosts[0].ssh("cat /etc/os-release | head -2; cat /proc/sys/kernel/osrelease",
                                   fleet.known_hosts)  # fmt: skip
        print(
            f"$ ssh root@127.0.0.1 -p {fleet.hosts[0].port} 'cat /etc/os-release ...'\n"
            + probe.stdout
        )

        extra = {"bundle": str(tarball), "trust_key": str(lab.publisher.public)}
        step(f"ansible-playbook (Ansible {version}): stage + check every host, rolling install")
        print(f"$ ansible-playbook -i inventory.ini ansible/airdock.yml -e bundle={tarball} "
              f"-e trust_key={lab.publisher.public}\n", flush=True)  # fmt: skip
        play = fleet.play(book, ansible, extra, echo=True)
        if play.returncode != 0:
            raise SystemExit(f"demo-fleet: ansible-playbook failed (exit {play.returncode})")

        step("the fleet report (airdock-fleet-report.md beside the tarball)")
        print((usb / "airdock-fleet-report.md").read_text())
        print(f"$ airdock fleet-report {usb / 'airdock-fleet-report.json'}")
        report = subprocess.run([*airdock_cli(), "fleet-report",
                                 str(usb / "airdock-fleet-report.json")],
                                capture_output=True, text=True)  # fmt: skip
        print(report.stdout + report.stderr)
        print("receipts:", ", ".join(sorted(p.name for p in (usb / "receipts").iterdir())))

        step("the same command again: nothing to change (changed=0)")
        again = fleet.play(book, ansible, extra, echo=False)
        print("\n".join(line for line in again.output.splitlines()[-8:] if line.strip()))
        changed = {h: r["changed"] for h, r in again.recap.items() if h != "localhost"}
        if again.returncode != 0 or any(changed.values()):
            raise SystemExit(f"demo-fleet: the second run changed something: {changed}")
        print(f"\n{BOLD}demo-fleet finished in {time.time() - started:.0f}s{RESET}")
        return 0
    finally:
        if lab is not None:
            lab.close()
        drop_work(work)


if __name__ == "__main__":
    sys.exit(main())
