"""The installer's whole story on the sandbox host, with real containerd and dockerd behind the
systemctl shim: install over CentOS's docker 1.13 (one dnf transaction), image loaded,
hello-world runs, a second run changes nothing, status, uninstall keeps data, --purge deletes
it; an upgrade from the older fixture docker-ce keeps images and containers; a daemon that
cannot start; --no-start.  Under pyenv's Python 2.7.18 and 3.6.15 and the current Python.
"""

from __future__ import annotations

import json

import pytest

from tests.rig.fixtures_sandbox import INSTALLER_PYTHONS, installer_python
from tests.rig.testimage import message

pytestmark = pytest.mark.slow

OLD_DOCKER = ("docker", "docker-client", "docker-common")
GREETING = message("amd64")


def names(nevras) -> set[str]:
    return {n.rsplit("-", 2)[0] for n in nevras}


def nevra_of(sb, name: str) -> str:
    return next(n for n in sb.rpm_qa() if n.rsplit("-", 2)[0] == name)


def manifest(bundle) -> dict:
    return json.loads((bundle / "manifest.json").read_text())


def ok(proc):
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert proc.stderr.strip() == "", proc.stderr
    return proc


@pytest.mark.parametrize("label", INSTALLER_PYTHONS)
def test_install_rerun_status_uninstall_purge(label, sandbox, image_bundles):
    python = installer_python(label)
    bundle = image_bundles["26.1.4"]
    image = manifest(bundle)["images"][0]
    sb = sandbox(root="old-docker")
    assert set(OLD_DOCKER) <= names(sb.rpm_qa())
    history = sb.history_count()

    # install: the old docker goes in the same transaction that brings docker-ce
    first = ok(sb.installer(bundle, "install", "--yes", python=python))
    assert sb.history_count() == history + 1
    tx = sb.last_transaction()
    assert {tx[n] for n in OLD_DOCKER} == {"remove"}
    assert tx["docker-ce"] == "install" and tx["containerd.io"] == "install"
    installed = names(sb.rpm_qa())
    assert not set(OLD_DOCKER) & installed
    assert {"docker-ce", "docker-ce-cli", "containerd.io", "docker-buildx-plugin",
            "docker-compose-plugin", "docker-ce-rootless-extras"} <= installed  # fmt: skip
    assert nevra_of(sb, "docker-ce") == "docker-ce-3:26.1.4-1.el7.x86_64"
    assert set(sb.unit_pids()) == {"docker", "containerd"}
    inspect = sb.docker("image", "inspect", "--format", "{{.Id}}", "hello-world:latest")
    assert inspect.stdout.strip() == image["config_digest"]
    assert GREETING in first.stdout
    receipt = json.loads(sb.receipt.read_text())
    assert receipt["transaction"]["id"] == sb.history_count()
    assert receipt["bundle"]["name"] == bundle.name
    assert {n.split("-2:")[0] for n in receipt["transaction"]["removed"]} == set(OLD_DOCKER)
    assert "docker-ce" in receipt["managed_packages"]
    assert (sb.var_lib / "airdock" / "airdock_install.py").exists()

    # the second run is a no-op for packages, and still ensures service and image
    sb.docker("rmi", "hello-world:latest")
    second = ok(sb.installer(bundle, "install", "--yes", python=python))
    assert sb.history_count() == history + 1
    assert "packages: already installed, no transaction" in second.stdout
    assert GREETING in second.stdout
    assert sb.docker("image", "inspect", "hello-world:latest").returncode == 0
    assert json.loads(sb.receipt.read_text())["transaction"]["id"] == history + 1

    # status
    status = json.loads(ok(sb.installer(bundle, "status", "--json", python=python)).stdout)
    assert status["services"]["docker"] == {"active": "active", "enabled": "enabled"}
    rows = {r["name"]: r for r in status["packages"]}
    assert rows["docker-ce"]["installed"] == rows["docker-ce"]["bundle"] == "3:26.1.4-1.el7"
    assert "hello-world:latest" in status["images"]["present"]
    assert status["receipt"]["transaction"]["id"] == history + 1

    # uninstall keeps the data; a container made meanwhile survives on disk
    sb.docker("create", "--name", "keepme", "hello-world:latest")
    before_packages = sb.rpm_qa()
    gone = ok(sb.installer(bundle, "uninstall", "--yes", python=python))
    assert sb.unit_pids() == {}
    left = names(sb.rpm_qa())
    assert not {"docker-ce", "docker-ce-cli", "containerd.io", "fuse-overlayfs"} & left
    # what the host had before (docker 1.13 pulled container-selinux in) stays
    assert {"container-selinux", "policycoreutils", "selinux-policy"} <= left
    assert not set(OLD_DOCKER) & left
    assert sb.history_count() == history + 2
    assert {a for a in sb.last_transaction().values()} == {"remove"}
    retired = json.loads(
        next((sb.var_lib / "airdock").glob("receipt.uninstalled-*.json")).read_text()
    )
    assert names(before_packages) - left == set(retired["managed_packages"])
    assert retired["uninstall_transaction"]["id"] == history + 2  # the removal's own ID
    assert f"packages removed (yum transaction {history + 2})" in gone.stdout
    assert not sb.receipt.exists()
    assert any((sb.var_lib / "docker").iterdir()) and any((sb.var_lib / "containerd").iterdir())
    assert "kept /var/lib/docker" in gone.stdout

    # --purge --yes deletes the data
    purged = ok(sb.installer(bundle, "uninstall", "--purge", "--yes", python=python))
    assert "/var/lib/docker" in purged.stdout
    assert not (sb.var_lib / "docker").exists() and not (sb.var_lib / "containerd").exists()
    assert not (sb.host / "etc" / "docker").exists() or not any(
        (sb.host / "etc" / "docker").iterdir())  # fmt: skip
    assert sb.history_count() == history + 2


@pytest.mark.parametrize("label", INSTALLER_PYTHONS)
def test_upgrade_keeps_images_and_containers(label, sandbox, image_bundles):
    python = installer_python(label)
    sb = sandbox()
    ok(sb.installer(image_bundles["25.0.5"], "install", "--yes", python=python))
    assert nevra_of(sb, "docker-ce") == "docker-ce-3:25.0.5-1.el7.x86_64"
    image_id = sb.docker("image", "inspect", "--format", "{{.Id}}", "hello-world:latest").stdout
    sb.docker("create", "--name", "keepme", "hello-world:latest")
    history = sb.history_count()

    check = ok(sb.installer(image_bundles["26.1.4"], "check", python=python))
    assert "upgrade 3:25.0.5-1.el7 -> 3:26.1.4-1.el7" in check.stdout
    ok(sb.installer(image_bundles["26.1.4"], "install", "--yes", python=python))
    assert sb.history_count() == history + 1
    assert sb.last_transaction()["docker-ce"] == "upgrade+upgraded"
    assert nevra_of(sb, "docker-ce") == "docker-ce-3:26.1.4-1.el7.x86_64"
    receipt = json.loads(sb.receipt.read_text())
    assert {"name": "docker-ce", "from": "3:25.0.5-1.el7", "to": "3:26.1.4-1.el7"} in \
        receipt["transaction"]["upgraded"]  # fmt: skip
    assert receipt["previous"][0]["bundle"] == image_bundles["25.0.5"].name
    # the package scriptlets restart docker on a real host; do it here too
    assert sb.run(["systemctl", "restart", "docker"]).returncode == 0
    after = sb.docker("image", "inspect", "--format", "{{.Id}}", "hello-world:latest").stdout
    assert after == image_id
    assert "keepme" in sb.docker("ps", "-a", "--format", "{{.Names}}").stdout

    # and the old bundle is now a refused downgrade
    down = sb.installer(image_bundles["25.0.5"], "install", "--yes", python=python)
    assert down.returncode == 1 and "preflight failed: docker-ce:" in down.stderr
    assert "newer than the bundle's" in down.stderr


def test_service_that_cannot_start_prints_its_log(sandbox, image_bundles):
    """dockerd refuses a daemon.json that repeats a flag: the install fails after the packages,
    shows the tail of the unit's log and says what to try; fixing it and re-running works."""
    sb = sandbox()
    daemon_json = sb.host / "etc" / "docker" / "daemon.json"
    daemon_json.write_text('{"storage-driver": "overlay2"}\n')
    proc = sb.installer(image_bundles["26.1.4"], "install", "--yes",
                        python=installer_python("2.7"))  # fmt: skip
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "systemctl enable --now containerd docker failed" in lines[0]
    assert "journalctl -u docker" in lines[0]
    assert "last lines of the docker service log" in proc.stdout
    assert "storage-driver" in proc.stdout  # dockerd's own complaint, from the unit's log
    assert "docker-ce" in names(sb.rpm_qa())  # packages stay installed
    # ... and on record: the receipt names the transaction (uninstall goes by it)
    receipt = json.loads(sb.receipt.read_text())
    assert receipt["complete"] is False and receipt["transaction"]["id"] == sb.history_count()
    assert "docker-ce" in receipt["managed_packages"]
    daemon_json.unlink()
    rerun = ok(sb.installer(image_bundles["26.1.4"], "install", "--yes"))
    assert "packages: already installed, no transaction" in rerun.stdout
    assert GREETING in rerun.stdout
    receipt = json.loads(sb.receipt.read_text())
    assert receipt["complete"] is True and receipt["transaction"]["id"] == sb.history_count()
    assert receipt["previous"] == []


def test_no_start_then_uninstall_without_the_bundle(sandbox, image_bundles):
    sb = sandbox(root="old-docker")
    proc = ok(sb.installer(image_bundles["26.1.4"], "install", "--yes", "--no-start", "--json",
                           python=installer_python("3.6")))  # fmt: skip
    assert sb.unit_pids() == {}
    result = json.loads(proc.stdout)  # --json: stdout is one JSON object, nothing else
    assert result["ok"] is True and result["command"] == "install"
    assert result["transaction_id"] == sb.history_count() and result["images"] == []
    assert result["receipt"]["managed_packages"] and "docker-ce" in result["receipt"][
        "managed_packages"]  # fmt: skip
    assert "not started (--no-start)" in sb.log_file.read_text()
    assert sorted(p.name for p in (sb.state / "enabled").iterdir()) == [
        "containerd.service", "docker.service"]  # fmt: skip
    # uninstall from the copy the installer left in /var/lib/airdock: no bundle needed
    gone = sb.run([installer_python("2.7"), "/var/lib/airdock/airdock_install.py",
                   "uninstall", "--yes"])  # fmt: skip
    ok(gone)
    assert "docker-ce" not in names(sb.rpm_qa())
    assert not set(OLD_DOCKER) & names(sb.rpm_qa())
