"""The installer on the sandbox host, before any daemon runs: the preflight matrix, a missing
dependency, tampered bundles, --dry-run, prompts and --json.  Every refusal must be ONE line
on stderr, a non-zero exit, no traceback, and leave the host exactly as it was (rpm -qa
including gpg-pubkeys, dnf history, /var/lib, /etc/docker, no daemon).

Bundles come from ``airdock build`` on the fixture mirror; the installer runs unmodified from
the bundle under pyenv's Python 2.7.18 and 3.6.15 and the current Python (see tests/README.md).
"""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.rig import mirror as rig
from tests.rig.fixtures_sandbox import INSTALLER_PYTHONS, installer_python
from tests.rig.sandbox import (
    CENTOS_6,
    KERNEL_EL6,
    RHEL_7,
    UBUNTU_22,
    edit_manifest,
    flip_byte,
    reseal_file,
    rewrite_sha256sums,
)

pytestmark = pytest.mark.slow


def one_line_error(proc: subprocess.CompletedProcess, *words: str) -> str:
    """The refusal contract: non-zero exit, exactly one stderr line, no traceback."""
    assert proc.returncode not in (0, None), proc.stdout + proc.stderr
    lines = proc.stderr.strip("\n").splitlines()
    assert len(lines) == 1, f"expected one stderr line, got:\n{proc.stderr}"
    assert lines[0].startswith("airdock: "), lines[0]
    assert "Traceback" not in proc.stdout + proc.stderr
    for word in words:
        assert word in lines[0], f"{word!r} not in {lines[0]!r}"
    return lines[0]


def docker_ce_file(bundle):
    return next((bundle / "rpms").glob("docker-ce-2*.rpm"))


# ------------------------------------------------------------------ the preflight matrix


PREFLIGHT_CASES = {
    # case: (sandbox kwargs, failing check, words in the stderr line)
    "centos6": (dict(os_release=CENTOS_6, kernel=KERNEL_EL6), "os",
                ["CentOS release 6.10 (Final) is not supported", "+1 more"]),
    "kernel-2.6.32": (dict(kernel=KERNEL_EL6), "kernel",
                      ["2.6.32-754.el6.x86_64 is older than 3.10"]),
    "ubuntu": (dict(os_release=UBUNTU_22), "os", ["Ubuntu 22.04.4 LTS is not supported"]),
}  # fmt: skip


@pytest.mark.parametrize("label", INSTALLER_PYTHONS)
@pytest.mark.parametrize("case", sorted(PREFLIGHT_CASES))
def test_preflight_matrix_refuses_with_one_clear_line(case, label, sandbox, installer_bundles):
    kwargs, check, words = PREFLIGHT_CASES[case]
    sb = sandbox(**kwargs)
    before = sb.snapshot()
    for command in ("check", "install"):
        proc = sb.installer(installer_bundles["26.1.4"], command, "--yes",
                            python=installer_python(label))  # fmt: skip
        one_line_error(proc, f"preflight failed: {check}:", *words)
        assert f"[fail] {check}" in proc.stdout
    assert sb.snapshot() == before


@pytest.mark.parametrize("label", INSTALLER_PYTHONS)
def test_arch_mismatch_with_a_real_aarch64_bundle(label, sandbox, aarch64_bundle):
    sb = sandbox()
    before = sb.snapshot()
    proc = sb.installer(aarch64_bundle, "install", "--yes", python=installer_python(label))
    one_line_error(proc, "preflight failed: arch:", "this host is x86_64, the bundle is for "
                   "aarch64", "airdock build --arch x86_64")  # fmt: skip
    assert sb.snapshot() == before


@pytest.mark.parametrize("label", INSTALLER_PYTHONS)
def test_not_root_is_refused(label, sandbox, installer_bundles):
    """Run as uid 65534 (setpriv); it keeps CAP_DAC_READ_SEARCH only so it can read pyenv's
    interpreters under /root (0700) - it is still not root and cannot write anything."""
    sb = sandbox()
    before = sb.snapshot()
    proc = sb.installer(installer_bundles["26.1.4"], "install", "--yes", user="nobody",
                        python=installer_python(label))  # fmt: skip
    line = one_line_error(proc, "preflight failed: root:", "running as uid 65534, not root",
                          "sudo ./install.sh")  # fmt: skip
    assert "no log: cannot write /var/log/airdock-install.log" in line
    assert "[skip] transaction  the yum test transaction needs root" in proc.stdout
    assert sb.snapshot() == before


def test_not_root_is_named_first_whatever_else_fails(sandbox, installer_bundles):
    """A host that is also wrong in every other way (no yum, CentOS 6, old kernel) still
    hears "not root" first: it is the one fix that makes the other checks meaningful."""
    sb = sandbox(os_release=CENTOS_6, kernel=KERNEL_EL6)
    (sb.shims / "yum").unlink()
    before = sb.snapshot()
    proc = sb.installer(installer_bundles["26.1.4"], "install", "--yes", user="nobody")
    line = one_line_error(proc, "preflight failed: root:", "running as uid 65534, not root",
                          "(+3 more: os, kernel, tools)", "sudo ./install.sh")  # fmt: skip
    assert "see above" not in line
    assert "[fail] tools        yum not found" in proc.stdout
    assert sb.snapshot() == before
    assert line.index("root") < line.index("+3 more")


def test_rhel7_and_old_kernel_only_warn(sandbox, installer_bundles):
    sb = sandbox(os_release=RHEL_7, kernel="3.10.0-327.el7.x86_64")
    proc = sb.installer(installer_bundles["26.1.4"], "check")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[warn] os           Red Hat Enterprise Linux Server 7.9 (Maipo) is RHEL-compatible" \
        in proc.stdout  # fmt: skip
    assert "[warn] kernel       kernel 3.10.0-327.el7.x86_64 predates 3.10.0-514" in proc.stdout
    assert proc.stderr == ""


# ------------------------------------------------------------------ what the host lacks


@pytest.mark.parametrize("label", INSTALLER_PYTHONS)
def test_missing_dependency_is_named_by_check_and_nothing_changes(
    label, sandbox, installer_bundles
):
    """A stripped host without iptables (docker-ce requires it; the minimal bundle assumes the
    @core baseline has it): yum's own test transaction names it, before anything changes."""
    sb = sandbox()
    sb.root.rpm("-e", "--nodeps", "iptables")
    before = sb.snapshot()
    python = installer_python(label)
    check = sb.installer(installer_bundles["26.1.4"], "check", python=python)
    line = one_line_error(check, "preflight failed: transaction:",
                          "this host lacks what the bundle needs: iptables (needed by docker-ce-",
                          "./install.sh inventory -o host.json",
                          "airdock build --baseline-from host.json")  # fmt: skip
    assert "centos-7.9.2009 @core" in line
    assert "[fail] transaction" in check.stdout
    install = sb.installer(installer_bundles["26.1.4"], "install", "--yes", python=python)
    one_line_error(install, "iptables")
    assert sb.snapshot() == before
    js = sb.installer(installer_bundles["26.1.4"], "check", "--json", python=python)
    result = json.loads(js.stdout)
    assert result["ok"] is False and result["exit_code"] == 1
    assert {"requires": "iptables", "needed_by": result["missing_dependencies"][0]["needed_by"]} \
        == result["missing_dependencies"][0]  # fmt: skip
    assert result["missing_dependencies"][0]["needed_by"].startswith("docker-ce-")


# ------------------------------------------------------------------ tampered bundles


@pytest.mark.parametrize("label", INSTALLER_PYTHONS)
def test_tampered_rpm_is_refused(label, sandbox, installer_bundles, bundle_copy):
    sb = sandbox(root="old-docker")
    before = sb.snapshot()
    bundle = bundle_copy(installer_bundles["26.1.4"])
    rpm = docker_ce_file(bundle)
    flip_byte(rpm)
    proc = sb.installer(bundle, "install", "--yes", python=installer_python(label))
    one_line_error(proc, "preflight failed: checksums:", f"rpms/{rpm.name}: sha256",
                   "sha256sum -c SHA256SUMS")  # fmt: skip
    assert "[skip] transaction" in proc.stdout
    assert sb.snapshot() == before


@pytest.mark.parametrize("label", INSTALLER_PYTHONS)
def test_tampered_sha256sums_is_refused(label, sandbox, installer_bundles, bundle_copy):
    sb = sandbox()
    before = sb.snapshot()
    bundle = bundle_copy(installer_bundles["26.1.4"])
    sums = bundle / "SHA256SUMS"
    rpm = docker_ce_file(bundle)
    lines = sums.read_text().splitlines()
    lines = [("0" * 64 + line[64:]) if line.endswith(rpm.name) else line for line in lines]
    sums.write_text("\n".join(lines) + "\n")
    proc = sb.installer(bundle, "install", "--yes", python=installer_python(label))
    one_line_error(proc, "preflight failed: checksums:", f"rpms/{rpm.name}")
    assert sb.snapshot() == before


@pytest.mark.parametrize("label", INSTALLER_PYTHONS)
def test_consistently_rewritten_bundle_fails_the_signature_check(
    label, sandbox, installer_bundles, bundle_copy
):
    """An attacker who alters an RPM and rewrites manifest.json and SHA256SUMS to match: the
    signature check (rpm -K against a throw-away rpmdb holding only the bundle's keys) refuses
    it, and no key is imported into the host's rpmdb."""
    sb = sandbox()
    before = sb.snapshot()
    bundle = bundle_copy(installer_bundles["26.1.4"])
    rpm = docker_ce_file(bundle)
    flip_byte(rpm)
    reseal_file(bundle, rpm)
    proc = sb.installer(bundle, "install", "--yes", python=installer_python(label))
    one_line_error(proc, "preflight failed: signatures:", "signature check failed",
                   rpm.name)  # fmt: skip
    assert "[pass] checksums" in proc.stdout
    assert sb.snapshot() == before


def test_rpm_signed_by_a_key_outside_the_bundle_is_refused(
    sandbox, installer_bundles, bundle_copy, tmp_path
):
    """Re-signed with another key, and the manifest lies about the signer: rpm -K with only the
    bundle's keys says the key is missing."""
    sb = sandbox()
    before = sb.snapshot()
    bundle = bundle_copy(installer_bundles["26.1.4"])
    rpm = docker_ce_file(bundle)
    with rig.private_gnupghome() as home:
        rig.make_key(home, "Mallory <mallory@example.invalid>")
        rig.sign_rpms([rpm], home, "Mallory <mallory@example.invalid>")
    reseal_file(bundle, rpm)
    proc = sb.installer(bundle, "install", "--yes")
    one_line_error(proc, "preflight failed: signatures:", rpm.name)
    assert sb.snapshot() == before


def test_unknown_format_version_is_refused(sandbox, installer_bundles, bundle_copy):
    sb = sandbox()
    before = sb.snapshot()
    bundle = bundle_copy(installer_bundles["26.1.4"])
    edit_manifest(bundle, lambda m: m.update(format_version=2))
    for python in (installer_python("2.7"), installer_python("current")):
        proc = sb.installer(bundle, "install", "--yes", python=python)
        one_line_error(proc, "format_version 2", "this installer knows 1")
    assert sb.snapshot() == before


def test_missing_file_is_refused(sandbox, installer_bundles, bundle_copy):
    sb = sandbox()
    bundle = bundle_copy(installer_bundles["26.1.4"])
    rpm = docker_ce_file(bundle)
    rpm.unlink()
    proc = sb.installer(bundle, "check")
    one_line_error(proc, "checksums", f"rpms/{rpm.name} is missing")
    rewrite_sha256sums(bundle)  # even with SHA256SUMS rewritten, the manifest still names it
    proc = sb.installer(bundle, "check")
    one_line_error(proc, "checksums", f"rpms/{rpm.name} is not listed in SHA256SUMS")


# ------------------------------------------------------------------ dry run, prompts, json


@pytest.mark.parametrize("label", INSTALLER_PYTHONS)
def test_dry_run_changes_nothing(label, sandbox, image_bundles):
    sb = sandbox(root="old-docker")
    before = sb.snapshot()
    python = installer_python(label)
    proc = sb.installer(image_bundles["26.1.4"], "install", "--dry-run", python=python)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "would run: rpm --import" in out
    assert "would run: yum -y '--disablerepo=*' --setopt=gpgcheck=1 " \
           "--setopt=localpkg_gpgcheck=1" in out  # fmt: skip
    assert "remove   docker-common-2:1.13.1" in out
    assert "would run: systemctl enable --now containerd docker" in out
    assert "would run: docker load -i" in out and "hello-world_latest.tar" in out
    assert "would run: docker run --rm hello-world:latest" in out
    assert "(would write /var/lib/airdock/receipt.json)" in out
    assert "Dry run: nothing was changed." in out
    assert sb.snapshot() == before
    for args in (["uninstall", "--dry-run"], ["uninstall", "--purge", "--dry-run"]):
        proc = sb.installer(image_bundles["26.1.4"], *args, python=python)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sb.snapshot() == before


def test_install_without_a_terminal_needs_yes(sandbox, installer_bundles):
    sb = sandbox()
    before = sb.snapshot()
    proc = sb.installer(installer_bundles["26.1.4"], "install")
    one_line_error(proc, "stdin is not a terminal", "add --yes")
    assert sb.snapshot() == before


def test_check_json_and_the_wrapper(sandbox, installer_bundles):
    sb = sandbox(root="old-docker")
    before = sb.snapshot()
    proc = sb.installer(installer_bundles["26.1.4"], "check", "--json", wrapper=True,
                        python=installer_python("2.7"))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["ok"] is True and result["command"] == "check"
    statuses = {c["name"]: c["status"] for c in result["checks"]}
    assert list(statuses) == ["root", "os", "kernel", "arch", "tools", "space", "filesystem",
                              "selinux", "checksums", "trust", "signatures", "headers",
                              "remove-list", "conflicts", "docker-ce", "transaction"]  # fmt: skip
    assert statuses["headers"] == statuses["remove-list"] == "pass"
    assert statuses["conflicts"] == "warn" and statuses["transaction"] == "pass"
    # fixture keys are not the pinned vendor keys: the trusted publisher vouches for them
    assert statuses["trust"] == "pass" and statuses["signatures"] == "pass"
    assert result["trust"].startswith("signed-by ")
    conflicts = next(c for c in result["checks"] if c["name"] == "conflicts")
    assert "docker-common-2:1.13.1" in conflicts["message"]
    assert sb.snapshot() == before


def test_the_sandbox_host_is_air_gapped(sandbox):
    """Its yum repos point at a closed port: anything that forgets --disablerepo='*' fails."""
    sb = sandbox()
    proc = sb.run(["yum", "-y", "install", "nano"])
    assert proc.returncode != 0
    assert "Failed to download metadata for repo 'base'" in proc.stdout + proc.stderr


@pytest.mark.parametrize("label", INSTALLER_PYTHONS)
def test_status_on_a_host_without_docker(label, sandbox, installer_bundles):
    sb = sandbox()
    before = sb.snapshot()
    proc = sb.installer(installer_bundles["26.1.4"], "status", python=installer_python(label))
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert "docker-ce                    not installed                bundle has 3:26.1.4-1.el7" \
        in proc.stdout  # fmt: skip
    assert "docker       inactive   no unit file" in proc.stdout
    assert "Images: (docker is not answering)" in proc.stdout
    assert "Receipt: none" in proc.stdout
    result = json.loads(sb.installer(installer_bundles["26.1.4"], "status", "--json").stdout)
    assert result["ok"] and result["receipt"] is None
    assert result["services"]["docker"] == {"active": "inactive", "enabled": "no unit file"}
    assert sb.snapshot() == before


def run_on_a_terminal(sb, argv, answer: str) -> tuple[int, str]:
    """Run argv in the sandbox with a pseudo-terminal as stdin and type ``answer``."""
    import os
    import pty

    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(sb.command(argv), stdin=slave, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)  # fmt: skip
        os.write(master, answer.encode())
        out, _ = proc.communicate(timeout=120)
    finally:
        os.close(master)
        os.close(slave)
    return proc.returncode, out


def test_prompts_on_a_terminal_show_sizes_and_respect_no(sandbox, installer_bundles):
    sb = sandbox()
    (sb.var_lib / "docker" / "image").mkdir()
    (sb.var_lib / "docker" / "image" / "layer").write_bytes(b"x" * 3000)
    before = sb.snapshot()
    code, out = run_on_a_terminal(
        sb, [installer_python("2.7"), installer_bundles["26.1.4"] / "airdock_install.py",
             "uninstall", "--purge"], "n\n")  # fmt: skip
    assert code == 1
    assert "/var/lib/docker        2.9 KiB" in out and "Proceed? [y/N]" in out
    assert "cancelled at the prompt; nothing was changed" in out
    assert sb.snapshot() == before
    code, out = run_on_a_terminal(
        sb, [installer_python("current"), installer_bundles["26.1.4"] / "airdock_install.py",
             "install", "--no-start"], "y\n")  # fmt: skip
    assert code == 0, out
    assert "install  docker-ce-3:26.1.4-1.el7.x86_64" in out and "Proceed? [y/N]" in out
    assert "docker-ce-3:26.1.4-1.el7.x86_64" in sb.rpm_qa()


def test_bundle_on_a_path_with_spaces(sandbox, installer_bundles, bundle_copy):
    """USB sticks mount as /media/USB DISK/...: the yum shell script quotes the paths."""
    sb = sandbox(root="old-docker")
    bundle = bundle_copy(installer_bundles["26.1.4"], "USB DISK bundle")
    proc = sb.installer(bundle, "install", "--yes", "--no-start")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "docker-ce-3:26.1.4-1.el7.x86_64" in sb.rpm_qa()
    assert sb.last_transaction()["docker-common"] == "remove"


def test_purge_refuses_while_something_is_mounted_inside(sandbox, installer_bundles):
    """rm -rf through a mount point would delete what is mounted there (a volume, a disk)."""
    sb = sandbox()
    installer = installer_bundles["26.1.4"] / "airdock_install.py"
    script = (
        "mkdir -p /var/lib/docker/volumes/v && mount -t tmpfs tmpfs /var/lib/docker/volumes/v"
        " && echo precious > /var/lib/docker/volumes/v/data"
        f" && {installer_python('2.7')} {installer} uninstall --purge --yes;"
        " echo rc=$?; cat /var/lib/docker/volumes/v/data"
    )
    proc = sb.run(["/bin/sh", "-c", script])
    assert "rc=1" in proc.stdout and "precious" in proc.stdout
    line = proc.stderr.strip()
    assert "still has a filesystem mounted inside (/var/lib/docker/volumes/v)" in line
    assert "nothing deleted" in line
    assert (sb.var_lib / "docker" / "volumes" / "v").is_dir()
    assert (sb.var_lib / "containerd").is_dir()


# ------------------------------------------------------------------ the bundle is untrusted input


def _docker_ce_entry(manifest: dict) -> dict:
    return next(p for p in manifest["packages"] if p["name"] == "docker-ce")


MALFORMED_MANIFESTS = {
    # case: (edit of manifest.json, words in the one stderr line)
    "format_version-a-string": (lambda m: m.update(format_version="1"),
                                ['format_version is "1", not an integer']),
    "format_version-99": (lambda m: m.update(format_version=99),
                          ["this bundle was made by a newer airdock (manifest format_version 99; "
                           "this installer knows 1)", "run the install.sh inside that bundle"]),
    "packages-not-a-list": (lambda m: m.update(packages={"docker-ce": m["packages"][0]}),
                            ["packages is an object, not a list"]),
    "name-with-a-space": (lambda m: _docker_ce_entry(m).update(name="a b"),
                          ['.name is "a b", not a package name']),
    "name-with-a-newline": (lambda m: _docker_ce_entry(m).update(name="docker-ce\n"),
                            ['.name is "docker-ce\\n", not a package name']),
    "file-outside-the-bundle": (lambda m: _docker_ce_entry(m).update(file="../../etc/passwd"),
                                ['(docker-ce).file is "../../etc/passwd", not rpms/<']),
    "epoch-negative": (lambda m: _docker_ce_entry(m).update(epoch=-1),
                       ["(docker-ce).epoch is -1, not an integer >= 0"]),
    "epoch-a-string": (lambda m: _docker_ce_entry(m).update(epoch="3"),
                       ['(docker-ce).epoch is "3", not an integer >= 0']),
    "package-not-an-object": (lambda m: m["packages"].append(["docker-ce"]),
                              ["is a list, not an object"]),
    "image-tag-like-an-option": (
        lambda m: m.update(images=[{"repo_tag": "--privileged", "file": "images/x.tar",
                                    "size": 1, "sha256": "0" * 64}]),
        ['images[0].repo_tag is "--privileged", not an image name:tag']),
    "not-json": (None, ["manifest.json is not valid JSON"]),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(MALFORMED_MANIFESTS))
def test_malformed_manifest_is_one_line_and_changes_nothing(
    case, sandbox, installer_bundles, bundle_copy
):
    """Resealed into SHA256SUMS (as an attacker would): one `airdock:` line naming what is
    wrong, exit 1 (never 70, never a traceback), on every interpreter, nothing changed."""
    edit, words = MALFORMED_MANIFESTS[case]
    sb = sandbox(root="old-docker")
    before = sb.snapshot()
    bundle = bundle_copy(installer_bundles["26.1.4"])
    if edit is None:
        (bundle / "manifest.json").write_text('{"format": "airdock-bundle", "format_version": 1,')
        rewrite_sha256sums(bundle)
    else:
        edit_manifest(bundle, edit)
    for label in INSTALLER_PYTHONS:
        for command in ("check", "install", "status"):
            proc = sb.installer(bundle, command, "--yes", python=installer_python(label))
            assert proc.returncode == 1, (label, command, proc.stdout, proc.stderr)
            one_line_error(proc, *words)
            assert proc.stdout == ""
    assert sb.snapshot() == before


def bundle_rpm(bundle, name: str):
    manifest = json.loads((bundle / "manifest.json").read_text())
    entry = next(p for p in manifest["packages"] if p["name"] == name)
    return bundle / entry["file"]


@pytest.mark.parametrize("label", INSTALLER_PYTHONS)
def test_manifest_that_lies_about_an_rpm_is_refused_before_the_transaction(
    label, sandbox, installer_bundles, bundle_copy
):
    """docker-ce's entry says 26.1.4, the file (genuine, signed, resealed into manifest.json
    and SHA256SUMS) is 25.0.5's RPM: the header check names both before anything changes.
    (Before it, the transaction installed 25.0.5, then failed and wrote no receipt.)"""
    sb = sandbox(root="old-docker")
    before = sb.snapshot()
    bundle = bundle_copy(installer_bundles["26.1.4"])
    rpm = bundle_rpm(bundle, "docker-ce")
    rpm.write_bytes(bundle_rpm(installer_bundles["25.0.5"], "docker-ce").read_bytes())
    reseal_file(bundle, rpm)
    python = installer_python(label)
    for command in ("check", "install"):
        proc = sb.installer(bundle, command, "--yes", python=python)
        assert proc.returncode == 1
        one_line_error(proc, "preflight failed: headers:",
                       f"rpms/{rpm.name} holds docker-ce-3:25.0.5-1.el7.x86_64 (its RPM header)",
                       "the manifest says docker-ce-3:26.1.4-1.el7.x86_64",
                       "copy the bundle again")  # fmt: skip
        assert "[pass] checksums" in proc.stdout and "[pass] signatures" in proc.stdout
        assert "[skip] transaction  the manifest does not describe the bundle's RPMs" \
            in proc.stdout  # fmt: skip
    assert sb.snapshot() == before
    assert not sb.receipt.exists()


def test_remove_list_outside_the_policy_is_refused(sandbox, installer_bundles, bundle_copy):
    """The manifest may only remove the old docker packages and what the bundle's RPMs conflict
    with or obsolete; openssh-server (not installed) and bash (installed) are named, and
    neither ever reaches the plan or the yum test transaction."""
    sb = sandbox(root="old-docker")
    before = sb.snapshot()
    bundle = bundle_copy(installer_bundles["26.1.4"])
    edit_manifest(bundle, lambda m: m["remove"].extend(["openssh-server", "bash"]))
    for python in (installer_python("2.7"), installer_python("current")):
        proc = sb.installer(bundle, "install", "--yes", python=python)
        assert proc.returncode == 1
        one_line_error(
            proc,
            "preflight failed: remove-list:",
            "the manifest asks to remove openssh-server, bash: not old docker "
            "packages, and no RPM of the bundle conflicts with or obsoletes them",
        )
        conflicts = next(ln for ln in proc.stdout.splitlines() if "] conflicts" in ln)
        assert "docker-common" in conflicts and "bash" not in conflicts
        assert "[pass] transaction" in proc.stdout  # the test transaction removes no bash
    assert sb.snapshot() == before


# ------------------------------------------------------------------ one installer at a time


def hold_lock(sb, mode: int):
    """Take /var/lib/airdock/lock from the test process (the sandbox binds /var/lib)."""
    import fcntl
    import os

    path = sb.var_lib / "airdock" / "lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, mode | fcntl.LOCK_NB)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


@pytest.mark.parametrize("label", INSTALLER_PYTHONS)
def test_a_held_lock_stops_install_check_and_uninstall(label, sandbox, installer_bundles):
    import fcntl
    import os

    sb = sandbox(root="old-docker")
    fd = hold_lock(sb, fcntl.LOCK_EX)
    try:
        before = sb.snapshot()
        python = installer_python(label)
        for args in (["install", "--yes"], ["check"], ["uninstall", "--yes"],
                     ["install", "--dry-run"]):  # fmt: skip
            proc = sb.installer(installer_bundles["26.1.4"], *args, python=python)
            assert proc.returncode == 1
            one_line_error(proc, f"another airdock installer (pid {os.getpid()}) is running; "
                           "wait for it to finish")  # fmt: skip
            assert proc.stdout == ""
        status = sb.installer(installer_bundles["26.1.4"], "status", python=python)
        assert status.returncode == 0 and status.stderr == ""  # status only reads: no lock
        assert sb.snapshot() == before
    finally:
        os.close(fd)


def test_checks_share_the_lock_and_an_install_waits_for_none(sandbox, installer_bundles):
    """A check holds the lock shared: another check runs beside it, an install does not."""
    import fcntl
    import os

    sb = sandbox()
    fd = hold_lock(sb, fcntl.LOCK_SH)
    try:
        check = sb.installer(installer_bundles["26.1.4"], "check")
        assert check.returncode == 0, check.stdout + check.stderr
        install = sb.installer(installer_bundles["26.1.4"], "install", "--yes")
        one_line_error(install, f"another airdock installer (pid {os.getpid()}) is running")
        assert "docker-ce" not in " ".join(sb.rpm_qa())
        assert (sb.var_lib / "airdock" / "lock").exists()  # still ours: the check left it
    finally:
        os.close(fd)


def test_a_second_installer_is_refused_while_the_first_waits_at_its_prompt(
    sandbox, installer_bundles
):
    """Two real runs: the first holds the lock while it asks "Proceed?" on a terminal; the
    second fails at once naming the first one's pid; the first, answered "n", changes nothing
    and leaves no lock file behind."""
    import os
    import pty
    import select
    import time

    sb = sandbox(root="old-docker")
    before = sb.snapshot()
    bundle = installer_bundles["26.1.4"]
    master, slave = pty.openpty()
    first = subprocess.Popen(
        sb.command([installer_python("2.7"), bundle / "airdock_install.py", "install"]),
        stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        shown, deadline = b"", time.time() + 120
        while b"Proceed? [y/N]" not in shown and first.poll() is None:
            assert time.time() < deadline, shown.decode()
            if select.select([first.stdout], [], [], 1)[0]:
                shown += os.read(first.stdout.fileno(), 65536)
        assert b"Proceed? [y/N]" in shown, shown.decode()
        second = sb.installer(bundle, "install", "--yes", python=installer_python("3.6"))
        line = one_line_error(second, "another airdock installer (pid ", ") is running; wait for "
                              "it to finish")  # fmt: skip
        pid = int(line.split("(pid ")[1].split(")")[0])
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            assert b"airdock_install.py\0install" in handle.read()
        os.write(master, b"n\n")
        out, _ = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
        os.close(master)
        os.close(slave)
    assert first.returncode == 1 and b"cancelled at the prompt" in shown + out
    assert sb.snapshot() == before
    assert not (sb.var_lib / "airdock" / "lock").exists()
