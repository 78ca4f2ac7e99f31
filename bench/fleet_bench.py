"""`make bench` (fleet part): how long the bundle's Ansible playbook takes for 3 and 6 hosts.

Each run installs onto fresh sandbox hosts over real SSH (tests/rig/sshhost.py, one sshd per
host), with ansible-core 2.16 from the venv: rolling (the playbook's default, 20% of the
hosts per batch) and all at once (airdock_serial=100%), then the same command again on the
installed fleet (nothing to change).  Measured here, never asserted in tests.  The hosts share
this machine's cores, so "all at once" shows the contention of N installs on one box, not what
N real hosts would do.  Needs root (unshare --mount).  BENCH_FLEET_SIZES=3,6 by default.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.rig.fleet import FleetLab, ansible_playbook  # noqa: E402

SIZES = [int(n) for n in os.environ.get("BENCH_FLEET_SIZES", "3,6").split(",") if n.strip()]


def main() -> int:
    if os.geteuid() != 0:
        print("fleet bench: needs root (the sandbox hosts use unshare --mount); skipped")
        return 0
    ansible = ansible_playbook("2.16")
    if ansible is None:
        print("fleet bench: ansible-core 2.16 is not in the venv (make venv); skipped")
        return 0
    work = Path(tempfile.mkdtemp(prefix="airdock-fleet-bench-"))
    lab = None
    results = []
    try:
        started = time.time()
        lab = FleetLab(work, say=lambda text: print(f"  setup: {text}", flush=True))
        print(f"  setup: {time.time() - started:.0f}s")
        book = lab.playbook()
        for size in SIZES:
            for label, serial in (("rolling 20%", "20%"), ("all at once", "100%")):
                name = f"n{size}-{serial.rstrip('%')}"
                specs = {f"h{i + 1}": ("old-docker" if i == 0 else "core") for i in range(size)}
                fleet = lab.hosts(specs, name)
                extra = {
                    "bundle": str(lab.tarball),
                    "trust_key": str(lab.publisher.public),
                    "airdock_serial": serial,
                    "report_dir": str(work / name / "report"),
                }
                t0 = time.perf_counter()
                play = fleet.play(book, ansible, extra)
                first = time.perf_counter() - t0
                t0 = time.perf_counter()
                again = fleet.play(book, ansible, extra)
                second = time.perf_counter() - t0
                ok = play.returncode == 0 and again.returncode == 0
                results.append((size, label, first, second, ok))
                print(f"  {size} hosts, {label:<12} install {first:6.1f}s   re-run (no change) "
                      f"{second:5.1f}s   {'ok' if ok else 'FAILED: see ' + str(fleet.work)}",
                      flush=True)  # fmt: skip
                fleet.close()
                lab.fleets.remove(fleet)
                if ok:
                    shutil.rmtree(work / name, ignore_errors=True)
        print("\nfleet playbook (ansible-core 2.16, sandbox hosts over SSH on this machine)")
        print(f"{'hosts':>5}  {'batches':<12} {'install':>9} {'re-run':>8}")
        for size, label, first, second, ok in results:
            print(f"{size:>5}  {label:<12} {first:8.1f}s {second:7.1f}s{'' if ok else '  FAILED'}")
        return 0 if all(r[4] for r in results) else 1
    finally:
        if lab is not None:
            lab.close()
        if all(r[4] for r in results) and os.environ.get("BENCH_KEEP") != "1":
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}")


if __name__ == "__main__":
    sys.exit(main())
