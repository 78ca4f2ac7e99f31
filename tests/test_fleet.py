"""The fleet playbook (BUNDLE/ansible/airdock.yml) against sandbox hosts over real SSH.

Each host is a sandbox host (tests/rig/sandbox.py) served by its own sshd in its own mount
namespace (tests/rig/sshhost.py); Ansible reaches it as root with a throw-away key and runs
modules with pyenv's Python 2.7.18.  The bundle is the session's signed 26.1.4 bundle with
hello-world; the hosts do not trust its publisher until the playbook's ``trust_key`` says so.
Every scenario runs with ansible-core 2.16 and, where it is installed (.venv-ansible29,
`make ansible29`), with Ansible 2.9.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from builder.fleet import load_report, render_markdown
from builder.tarutil import TARBALL_SUFFIX
from tests.rig.fixtures_sandbox import airdock_cli
from tests.rig.fleet import Fleet, ansible_playbook, read_report, rows
from tests.rig.sandbox import KERNEL_EL6, flip_byte, rewrite_sha256sums
from tests.rig.sshhost import SshHost, SshKeys
from tests.rig.tools import IN_CI, need, pyenv_python

pytestmark = pytest.mark.slow

ANSIBLES = ("2.16", "2.9")


@pytest.fixture(scope="session")
def ssh_keys(tmp_path_factory) -> SshKeys:
    need("sshd")
    need("ssh-keygen")
    return SshKeys.make(tmp_path_factory.mktemp("ssh-keys"))


@pytest.fixture(params=ANSIBLES, ids=lambda v: f"ansible-{v}")
def ansible(request) -> Path:
    path = ansible_playbook(request.param)
    if path is None:
        if request.param == "2.16" and IN_CI:
            pytest.fail("ansible-core 2.16 is missing from the venv (pip install -e '.[test]')")
        pytest.skip(f"Ansible {request.param} is not installed (`make ansible29` for 2.9)")
    return path


@pytest.fixture(scope="session")
def fleet_bundle(image_bundles) -> Path:
    """The signed 26.1.4 tarball with hello-world (its .sha256 and .sha256.asc beside it)."""
    folder = image_bundles["26.1.4"]
    tarball = folder.parent / f"{folder.name}{TARBALL_SUFFIX}"
    assert tarball.is_file() and Path(f"{tarball}.sha256").is_file()
    return tarball


@pytest.fixture
def fleet(tmp_path: Path, sandbox, ssh_keys):
    """``fleet({"h1": dict(root="old-docker"), "h2": {}, ...}) -> Fleet`` over SSH."""
    made: list[Fleet] = []

    def make(specs: dict[str, dict]) -> Fleet:
        hosts = []
        try:
            for name, spec in specs.items():
                box = sandbox(name=name, trust=False, **spec)
                hosts.append(SshHost(name, box, ssh_keys).start())
        except BaseException:
            for host in hosts:
                host.stop()
            raise
        made.append(Fleet(hosts, tmp_path / "fleet", pyenv_python("2.7.18")))
        return made[-1]

    yield make
    for f in made:
        f.close()


def stage(tarball: Path, folder: Path) -> Path:
    """The tarball, its .sha256 and .sha256.asc in ``folder`` (the report lands there)."""
    folder.mkdir(parents=True, exist_ok=True)
    for suffix in ("", ".sha256", ".sha256.asc"):
        src = Path(f"{tarball}{suffix}")
        if src.exists():
            shutil.copyfile(src, folder / src.name)
    return folder / tarball.name


def playbook_of(tarball: Path, work: Path) -> Path:
    """The bundle's own ansible/airdock.yml (unpacked from the tarball, as an operator does)."""
    work.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-xf", str(tarball), "-C", str(work)], check=True)
    name = tarball.name[: -len(TARBALL_SUFFIX)]
    return work / name / "ansible" / "airdock.yml"


def assert_report_table(folder: Path, report: dict) -> None:
    """The playbook's Markdown table is what `airdock fleet-report` prints from the JSON."""
    written = (folder / "airdock-fleet-report.md").read_text()
    assert (
        written.strip()
        == render_markdown(load_report(folder / "airdock-fleet-report.json")).strip()
    )
    for row in report["hosts"]:
        assert f"| {row['host']} | {row['result']} |" in written


def test_three_hosts_install_then_rerun_changes_nothing(
    fleet, fleet_bundle, publisher, ansible, tmp_path
):
    tarball = stage(fleet_bundle, tmp_path / "usb")
    book = playbook_of(tarball, tmp_path / "bastion")
    f = fleet({"h1": {"root": "old-docker"}, "h2": {}, "h3": {}})
    assert "docker" in f.by_name("h1").sandbox.root.installed_names()  # CentOS's docker 1.13

    play = f.play(book, ansible, {"bundle": tarball, "trust_key": publisher.public})
    assert play.returncode == 0, play
    report = read_report(tarball.parent)
    table = rows(report)
    assert sorted(table) == ["h1", "h2", "h3"]
    for name, row in table.items():
        assert row["result"] == "installed" and row["ok"], row
        assert row["docker_after"].startswith("docker-ce 26.1.4"), row
        assert isinstance(row["transaction_id"], int), row
        host = f.by_name(name)
        assert (tarball.parent / "receipts" / f"{name}.json").is_file()
        assert host.sandbox.receipt.is_file()
        assert host.sandbox.trusted_keys  # trust_key distributed and kept
        log = host.sandbox.log_file.read_text()
        assert "smoke test: docker run --rm hello-world" in log
    assert table["h1"]["docker_before"].startswith("docker 1.13"), table["h1"]
    assert table["h2"]["docker_before"] is None
    assert (
        not {"docker", "docker-common", "docker-client"}
        & f.by_name("h1").sandbox.root.installed_names()
    )
    assert report["summary"] == {"hosts": 3, "ok": 3, "failed": 0, "changed": 3}
    assert_report_table(tarball.parent, report)

    history = {h.name: h.sandbox.history_count() for h in f.hosts}
    again = f.play(book, ansible, {"bundle": tarball, "trust_key": publisher.public})
    assert again.returncode == 0, again
    assert {h: r["changed"] for h, r in again.recap.items() if h != "localhost"} == {
        "h1": 0, "h2": 0, "h3": 0}, again  # fmt: skip
    assert {r["host"]: r["result"] for r in read_report(tarball.parent)["hosts"]} == {
        "h1": "unchanged", "h2": "unchanged", "h3": "unchanged"}  # fmt: skip
    assert {h.name: h.sandbox.history_count() for h in f.hosts} == history


def test_a_host_failing_preflight_is_named_and_the_others_install(
    fleet, fleet_bundle, publisher, ansible, tmp_path
):
    tarball = stage(fleet_bundle, tmp_path / "usb")
    book = playbook_of(tarball, tmp_path / "bastion")
    f = fleet({"h1": {}, "h2": {"kernel": KERNEL_EL6}, "h3": {}})
    history = f.by_name("h2").sandbox.history_count()
    play = f.play(book, ansible, {"bundle": tarball, "trust_key": publisher.public})
    assert play.returncode != 0, play
    table = rows(read_report(tarball.parent))
    assert table["h1"]["result"] == table["h3"]["result"] == "installed"
    bad = table["h2"]
    assert bad["result"] == "refused" and not bad["ok"]
    assert "preflight failed: kernel" in bad["failure"] and "2.6.32" in bad["failure"], bad
    assert bad["fix"]
    assert [c["name"] for c in bad["checks"] if c["status"] == "fail"] == ["kernel"]
    assert f.by_name("h2").sandbox.history_count() == history
    assert not any(n.startswith("docker-ce") for n in f.by_name("h2").sandbox.rpm_qa())
    md = (tarball.parent / "airdock-fleet-report.md").read_text()
    assert "| h2 | refused |" in md and "preflight failed: kernel" in md


# (beyond the four scenarios: one Ansible is enough to show the batch logic)
@pytest.mark.parametrize("ansible", ["2.16"], indirect=True, ids=["ansible-2.16"])
def test_a_failed_batch_stops_the_rollout(fleet, fleet_bundle, publisher, ansible, tmp_path):
    """h1 passes its check but its docker cannot start (a daemon.json dockerd refuses): the
    first batch (20% of 3 = one host) fails, max_fail_percentage 0 stops the rollout, h2 and
    h3 are not touched, and the report says so."""
    tarball = stage(fleet_bundle, tmp_path / "usb")
    book = playbook_of(tarball, tmp_path / "bastion")
    f = fleet({"h1": {}, "h2": {}, "h3": {}})
    bad = f.by_name("h1").sandbox
    (bad.host / "etc" / "docker" / "daemon.json").write_text('{"storage-driver": "overlay2"}\n')
    play = f.play(book, ansible, {"bundle": tarball, "trust_key": publisher.public})
    assert play.returncode != 0, play
    table = rows(read_report(tarball.parent))
    assert table["h1"]["result"] == "failed", table["h1"]
    assert "systemctl enable --now containerd docker failed" in table["h1"]["failure"]
    assert "journalctl -u docker" in table["h1"]["fix"]
    for name in ("h2", "h3"):
        assert table[name]["result"] == "not run", table[name]
        assert "docker-ce" not in f.by_name(name).sandbox.root.installed_names()
    md = (tarball.parent / "airdock-fleet-report.md").read_text()
    assert "| h1 | failed |" in md and "| h3 | not run |" in md


def tampered(tarball: Path, work: Path) -> Path:
    """An RPM altered after signing, SHA256SUMS recomputed (not re-signed), re-packed with a
    matching .sha256: what slips past a transport check but not the publisher's signature."""
    work.mkdir(parents=True)
    subprocess.run(["tar", "-xf", str(tarball), "-C", str(work)], check=True)
    name = tarball.name[: -len(TARBALL_SUFFIX)]
    folder = work / name
    rpm = sorted((folder / "rpms").glob("docker-ce-2*.rpm"))[0]
    flip_byte(rpm)
    rewrite_sha256sums(folder, sign=False)
    out = work / "usb"
    out.mkdir()
    subprocess.run(["tar", "-cf", str(out / tarball.name), "-C", str(work), name], check=True)
    digest = subprocess.run(["sha256sum", tarball.name], cwd=out, capture_output=True, text=True,
                            check=True).stdout  # fmt: skip
    (out / f"{tarball.name}.sha256").write_text(digest)
    return out / tarball.name


def test_a_tampered_bundle_is_refused_and_no_host_changes(
    fleet, fleet_bundle, publisher, ansible, tmp_path
):
    genuine = stage(fleet_bundle, tmp_path / "genuine")
    book = playbook_of(genuine, tmp_path / "bastion")  # the playbook from the genuine bundle
    bad = tampered(fleet_bundle, tmp_path / "tamper")
    f = fleet({"h1": {}, "h2": {}, "h3": {}})
    before = {h.name: h.sandbox.snapshot() for h in f.hosts}
    rollout = {"airdock_serial": "1", "airdock_max_fail_percentage": "0"}
    play = f.play(book, ansible, {"bundle": bad, "trust_key": publisher.public, **rollout})
    assert play.returncode != 0, play
    table = rows(read_report(bad.parent))
    for row in table.values():
        assert row["result"] == "refused", row
        assert "preflight failed" in row["failure"], row
    assert "checksums" in table["h1"]["failure"] or "trust" in table["h1"]["failure"]
    for h in f.hosts:
        after = h.sandbox.snapshot()
        assert (
            after["rpm"] == before[h.name]["rpm"] and after["history"] == before[h.name]["history"]
        )
        assert after["daemons"] == [] and not h.sandbox.receipt.exists()
    assert "TASK [install.sh install --yes --json]" not in play.output  # no batch started


def test_split_parts_check_mode_uninstall_keeps_data_and_status(
    fleet, fleet_bundle, publisher, ansible, tmp_path
):
    """The tarball carried as parts (re-joined and checked on each host); --check is the
    installer's --dry-run; then install, status, uninstall (data kept), status."""
    usb = tmp_path / "usb"
    subprocess.run([*airdock_cli(), "split", str(fleet_bundle), "--size", "100K", "--output",
                    str(usb)], check=True, capture_output=True)  # fmt: skip
    tarball = usb / fleet_bundle.name
    assert not tarball.exists() and len(list(usb.glob("*.part-*[0-9]"))) > 1
    book = playbook_of(fleet_bundle, tmp_path / "bastion")
    f = fleet({"h1": {}, "h2": {}})
    common = {"bundle": tarball, "trust_key": publisher.public, "airdock_serial": "100%"}
    before = {h.name: h.sandbox.snapshot() for h in f.hosts}

    dry = f.play(book, ansible, common, check=True)
    assert dry.returncode == 0, dry
    assert {r["result"] for r in read_report(usb)["hosts"]} == {"dry-run"}
    for h in f.hosts:
        after, was = h.sandbox.snapshot(), before[h.name]
        for key in ("rpm", "history", "daemons"):
            assert after[key] == was[key], f"{h.name}: --check changed {key}"
        assert not h.sandbox.receipt.exists() and not h.sandbox.trusted_keys
        staged = h.sandbox.var_lib / "airdock" / "bundles"
        assert (staged / tarball.name).is_file()  # re-joined from the parts on the host

    assert f.play(book, ansible, common).returncode == 0
    assert {r["result"] for r in read_report(usb)["hosts"]} == {"installed"}

    status = f.play(book, ansible, {"airdock_action": "status", "report_dir": tmp_path / "status"})
    assert status.returncode == 0, status
    table = rows(read_report(tmp_path / "status"))
    assert {r["result"] for r in table.values()} == {"status"}
    assert all(r["docker_after"].startswith("docker-ce 26.1.4") for r in table.values()), table

    gone = f.play(book, ansible, {"airdock_action": "uninstall", "report_dir": tmp_path / "un"})
    assert gone.returncode == 0, gone
    table = rows(read_report(tmp_path / "un"))
    for name, row in table.items():
        assert row["result"] == "uninstalled" and row["docker_after"] is None, row
        host = f.by_name(name)
        assert not any(n.startswith("docker-ce") for n in host.sandbox.rpm_qa())
        kept = host.sandbox.var_lib / "docker"
        assert kept.is_dir() and any(kept.iterdir()), f"{name}: /var/lib/docker was not kept"

    again = f.play(book, ansible, {"airdock_action": "uninstall", "report_dir": tmp_path / "un2"})
    assert again.returncode == 0, again
    assert {h: r["changed"] for h, r in again.recap.items() if h != "localhost"} == {
        "h1": 0, "h2": 0}, again  # fmt: skip

    after = f.play(book, ansible, {"airdock_action": "status", "report_dir": tmp_path / "status2"})
    assert after.returncode == 0, after
    assert all(r["docker_after"] is None for r in read_report(tmp_path / "status2")["hosts"])


def test_every_bundle_carries_the_playbook(installer_bundles, ansible, tmp_path):
    """ansible/ is in the bundle, listed in SHA256SUMS, and the Ansible at hand parses it."""
    folder = installer_bundles["26.1.4"]
    sums = (folder / "SHA256SUMS").read_text()
    for name in ("airdock.yml", "report.yml", "inventory.example.ini", "README.txt"):
        assert (folder / "ansible" / name).is_file()
        assert f"  ansible/{name}\n" in sums
    inventory = tmp_path / "inventory.ini"
    inventory.write_text((folder / "ansible" / "inventory.example.ini").read_text())
    book = folder / "ansible" / "airdock.yml"
    proc = subprocess.run(
        [str(ansible), "--syntax-check", "-i", str(inventory), str(book)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
