"""``install.sh inventory [-o FILE]``: the target host described for ``airdock build
--baseline-from``, in the ``airdock-inventory/1`` format, changing nothing.

On the sandbox host (its rpmdb is a real installroot with @core and CentOS's docker 1.13), under
pyenv's Python 2.7.18 and 3.6.15 and the current Python: the package list is exactly the
rpmdb's ``rpm -qa`` (gpg-pubkey entries included), os-release, kernel, arch and python are the
host's, docker and old docker are recognised, ``-o`` writes atomically (no root check: reading
the rpmdb is enough).
"""

from __future__ import annotations

import json
import os
import platform
import stat
import subprocess

import pytest

from builder.baseline import load_baseline
from tests.rig.dnfroot import QF
from tests.rig.fixtures_sandbox import INSTALLER_PYTHONS, installer_python
from tests.rig.sandbox import INSTALLER, KERNEL_EL7
from tests.test_installer_static import ai

PYTHON_VERSIONS = {"2.7": "2.7.18", "3.6": "3.6.15", "current": platform.python_version()}
KEYS = {"name", "epoch", "version", "release", "arch"}


def nevra(package: dict) -> str:
    """The rig's own rpm -qa format (tests/rig/dnfroot.QF)."""
    return "{name}-{epoch}:{version}-{release}.{arch}".format(**package)


@pytest.mark.slow
@pytest.mark.parametrize("label", INSTALLER_PYTHONS)
def test_inventory_is_the_hosts_rpmdb_and_changes_nothing(label, sandbox, tmp_path):
    sb = sandbox(root="old-docker")
    before = sb.snapshot()
    python = installer_python(label)

    proc = sb.run([python, INSTALLER, "inventory"])
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    inventory = json.loads(proc.stdout)  # the document is the whole of stdout
    assert set(inventory) == {"format", "hostname", "os_release", "kernel", "arch", "python",
                              "docker", "packages"}  # fmt: skip
    assert inventory["format"] == "airdock-inventory/1"

    packages = inventory["packages"]
    assert all(set(p) == KEYS and isinstance(p["epoch"], int) for p in packages)
    rpm_qa = sb.root.rpm("-qa", "--qf", QF).stdout.split()
    assert sorted(nevra(p) for p in packages) == sorted(rpm_qa)
    assert {nevra(p) for p in packages} == sb.rpm_qa(include_keys=True)
    assert len(packages) > 30  # the fixture @core and docker 1.13, not a stub
    order = [(p["name"], p["arch"]) for p in packages]
    assert order == sorted(order)
    assert any(p["name"] == "gpg-pubkey" for p in packages)  # as rpm -qa lists them

    assert inventory["os_release"]["ID"] == "centos"
    assert inventory["os_release"]["VERSION_ID"] == "7"
    assert inventory["os_release"]["PRETTY_NAME"] == "CentOS Linux 7 (Core)"
    assert inventory["kernel"] == KERNEL_EL7
    assert inventory["arch"] == os.uname().machine
    assert inventory["python"] == PYTHON_VERSIONS[label]
    assert isinstance(inventory["hostname"], str) and inventory["hostname"]

    docker = inventory["docker"]
    assert docker["present"] is True and docker["old_docker"] is True
    old = sorted(n for n in rpm_qa if n.rsplit("-", 2)[0] in ("docker", "docker-client",
                                                              "docker-common"))  # fmt: skip
    assert len(old) == 3
    assert docker["packages"] == sorted(n.replace("-0:", "-") for n in old)
    assert all(n.startswith(("docker-2:", "docker-client-2:", "docker-common-2:"))
               for n in docker["packages"])  # fmt: skip

    # -o FILE: the same document, written through a temporary file and a rename
    folder = tmp_path / "carry"
    folder.mkdir()
    out = folder / "host.json"
    written = sb.run([python, INSTALLER, "inventory", "-o", out])
    assert written.returncode == 0 and written.stderr == "", written.stderr
    assert f"Wrote {out}: {len(packages)} packages installed on " in written.stdout
    assert "airdock build --baseline-from host.json" in written.stdout
    assert json.loads(out.read_text()) == inventory
    assert sorted(p.name for p in folder.iterdir()) == ["host.json"]  # no temporary left
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    # every Python writes the same bytes for the same host (but its own version)
    assert out.read_text().endswith("}\n") and " \n" not in out.read_text()

    # the builder reads it as it is: --baseline-from host.json sees the same packages
    baseline = load_baseline(out)
    assert baseline.kind == "inventory" and baseline.hostname == inventory["hostname"]
    assert baseline.arch == inventory["arch"]
    assert {(p.name, p.epoch, p.version, p.release, p.arch) for p in baseline.packages} == {
        (p["name"], p["epoch"], p["version"], p["release"], p["arch"])
        for p in packages
        if p["name"] != "gpg-pubkey"  # keys in the rpmdb, not software (builder/baseline.py)
    }

    # an rpmdb it cannot read (the sandbox's, as nobody): one line with rpm's own words
    as_nobody = sb.run([python, INSTALLER, "inventory", "--log", "/dev/null"], user="nobody")
    lines = as_nobody.stderr.strip("\n").splitlines()
    assert as_nobody.returncode == 1 and len(lines) == 1 and as_nobody.stdout == ""
    assert lines[0].startswith("airdock: `rpm -qa` failed or printed something unexpected (exit")
    assert "Traceback" not in as_nobody.stderr
    assert sb.snapshot() == before


@pytest.mark.slow
def test_inventory_names_a_host_without_docker_and_a_folder_it_cannot_write(sandbox):
    sb = sandbox()
    proc = sb.run([installer_python("2.7"), INSTALLER, "inventory"])
    docker = json.loads(proc.stdout)["docker"]
    assert docker == {"present": False, "old_docker": False, "packages": []}
    bad = sb.run([installer_python("2.7"), INSTALLER, "inventory", "-o",
                  "/proc/no-such-folder/host.json"])  # fmt: skip
    lines = bad.stderr.strip("\n").splitlines()
    assert bad.returncode == 1 and len(lines) == 1 and "Traceback" not in bad.stderr
    assert lines[0].startswith("airdock: cannot write /proc/no-such-folder/host.json")


def test_the_records_cannot_shift_into_each_other():
    fields = ["bash", "0", "4.2.46", "34.el7", "x86_64"]
    record = "\x1f".join(fields) + "\x1e"
    packages = ai.parse_inventory_records(record + "\x1f".join(["a b\tc\nd", "2", "1", "1",
                                                                 "noarch"]) + "\x1e")  # fmt: skip
    assert packages == [
        {"name": "a b\tc\nd", "epoch": 2, "version": "1", "release": "1", "arch": "noarch"},
        {"name": "bash", "epoch": 0, "version": "4.2.46", "release": "34.el7", "arch": "x86_64"},
    ]
    assert ai.parse_inventory_records("") == []
    assert ai.parse_inventory_records(record + "bash\x1f0\x1f4.2\x1e") is None  # 3 fields
    assert ai.parse_inventory_records(record.replace("\x1f0\x1f", "\x1f(none)\x1f")) is None
    assert ai.parse_inventory_records(record.replace("\x1e", "")) == ai.parse_inventory_records(
        record)  # fmt: skip


def test_inventory_needs_rpm(tmp_path):
    env = {"PATH": str(tmp_path), "LANG": "C"}
    proc = subprocess.run([installer_python("current"), str(INSTALLER), "inventory", "--log",
                           str(tmp_path / "log"), "--json"], capture_output=True, text=True,
                          env=env)  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.startswith("airdock: rpm not found")
    result = json.loads(proc.stdout)
    assert result["ok"] is False and result["error"] == "rpm not found: this is not an rpm host"
