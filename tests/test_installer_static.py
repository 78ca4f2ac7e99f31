"""The installer file itself: it compiles and starts on Python 2.7, 3.6 and the current Python,
and its parsers read what yum (EL7), dnf, rpm and the OS really print.

Fast: no sandbox, no daemon.  The sandbox tests are test_installer_sandbox.py (preflight,
tampering, dry run) and test_installer_story.py (install / upgrade / uninstall with dockerd).
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.rig.fixtures_sandbox import INSTALLER_PYTHONS, installer_python
from tests.rig.sandbox import INSTALLER, REPO

INSTALL_SH = REPO / "installer" / "install.sh"


def load_installer():
    spec = importlib.util.spec_from_file_location("airdock_install_under_test", INSTALLER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ai = load_installer()


# ------------------------------------------------------------------ interpreters


@pytest.mark.parametrize("label", INSTALLER_PYTHONS)
def test_compiles_and_starts_on_every_python(label, tmp_path):
    python = installer_python(label)
    compiled = subprocess.run(
        [python, "-c", "import py_compile, sys; py_compile.compile(sys.argv[1], "
         "cfile=sys.argv[2], doraise=True)", str(INSTALLER), str(tmp_path / "x.pyc")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert compiled.returncode == 0, compiled.stderr
    helped = subprocess.run([python, str(INSTALLER), "--help"], capture_output=True, text=True)
    assert helped.returncode == 0, helped.stderr
    for word in ("check", "install", "status", "uninstall", "--dry-run", "--yes", "--json",
                 "--log", "--no-start", "--skip-images", "--purge"):  # fmt: skip
        assert word in helped.stdout
    version = subprocess.run([python, str(INSTALLER), "--version"], capture_output=True, text=True)
    assert "airdock installer" in version.stdout + version.stderr


@pytest.mark.parametrize("label", INSTALLER_PYTHONS)
def test_usage_errors_and_missing_manifest_are_one_line(label, tmp_path):
    python = installer_python(label)
    bad = subprocess.run([python, str(INSTALLER), "frobnicate"], capture_output=True, text=True)
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and "invalid choice" in bad.stderr
    purge = subprocess.run([python, str(INSTALLER), "check", "--purge"], capture_output=True,
                           text=True)  # fmt: skip
    assert purge.returncode == 2 and "--purge only goes with uninstall" in purge.stderr
    log = tmp_path / "log"
    missing = subprocess.run(
        [python, str(INSTALLER), "check", "--bundle", str(tmp_path), "--log", str(log)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert missing.returncode == 1
    assert missing.stderr.count("\n") == 1, missing.stderr
    assert "manifest.json" in missing.stderr and "Traceback" not in missing.stderr
    assert "cannot read" in log.read_text()


def test_source_avoids_what_python_2_7_5_lacks():
    text = INSTALLER.read_text()
    assert not re.search(r"(?<![\w])[fF][rR]?[\"']", text), "f-string"
    for needle in ("subprocess.run(", "pathlib", "shutil.which", "exist_ok",
                   "FileNotFoundError", "ssl.create_default_context", "algorithms_guaranteed",
                   "nonlocal", "yield from", "async "):  # fmt: skip
        assert needle not in text, needle
    assert "from __future__ import print_function" in text


def test_install_sh_finds_a_python_and_passes_arguments(tmp_path):
    assert subprocess.run(["sh", "-n", str(INSTALL_SH)]).returncode == 0
    env = {"PATH": "/usr/bin:/bin", "AIRDOCK_PYTHON": sys.executable}
    proc = subprocess.run(["sh", str(INSTALL_SH), "--version"], capture_output=True, text=True,
                          env=env)  # fmt: skip
    assert proc.returncode == 0 and "airdock installer" in proc.stdout + proc.stderr
    # With no interpreter at all it says so in one line.
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "dirname").symlink_to("/usr/bin/dirname")
    env = {"PATH": str(empty), "AIRDOCK_PYTHON": ""}
    proc = subprocess.run(["/bin/sh", str(INSTALL_SH)], capture_output=True, text=True, env=env)
    if os.path.exists("/usr/bin/python") or os.path.exists("/usr/libexec/platform-python") or \
            os.path.exists("/usr/bin/python3"):  # fmt: skip
        assert proc.returncode == 0 or "airdock" in proc.stderr
    else:
        assert proc.returncode == 127 and "no Python found" in proc.stderr


# ------------------------------------------------------------------ parsers


@pytest.mark.parametrize(
    "a, b, expected",
    [
        ("1.0", "1.0", 0), ("1.0", "2.0", -1), ("2.0.1", "2.0", 1), ("1.10", "1.9", 1),
        ("26.1.4", "25.0.5", 1), ("1.0a", "1.0", 1), ("1.0~rc1", "1.0", -1),
        ("1.0~rc1", "1.0~rc2", -1), ("1.0^git1", "1.0", 1), ("1.0^git1", "1.0.1", -1),
        ("34.el7_9.1", "34.el7", 1), ("1.el7", "1.el7.centos", -1), ("001", "1", 0),
        ("a", "1", -1), ("2.119.2", "2.74", 1),
    ],
)  # fmt: skip
def test_rpmvercmp(a, b, expected):
    assert ai.rpmvercmp(a, b) == expected
    assert ai.rpmvercmp(b, a) == -expected


def test_evr_and_nevra_helpers():
    assert ai.evr_compare((3, "26.1.4", "1.el7"), (0, "99", "1")) == 1
    assert ai.evr_compare((0, "2.5", "34.el7_9.1"), (None, "2.5", "34.el7")) == 1
    assert ai.evr_string((2, "1.13.1", "209.el7")) == "2:1.13.1-209.el7"
    assert ai.evr_string((0, "1.0", "1")) == "1.0-1"
    nevra = "docker-ce-3:26.1.4-1.el7.x86_64"
    assert ai.split_nevra(nevra) == ("docker-ce", 3, "26.1.4", "1.el7", "x86_64")
    assert ai.nevra_nvra(nevra) == "docker-ce-26.1.4-1.el7.x86_64"
    assert ai.nevra_name("containerd.io-1.6.33-3.1.el7.x86_64") == "containerd.io"


def test_os_release_and_release_files():
    info = ai.parse_os_release('NAME="CentOS Linux"\nID="centos"\nVERSION_ID="7"\n# c\n')
    assert info == {"NAME": "CentOS Linux", "ID": "centos", "VERSION_ID": "7"}
    assert ai.parse_os_release("ID=ubuntu\nVERSION_ID='22.04'\n")["VERSION_ID"] == "22.04"
    el6 = ai.parse_release_file("CentOS release 6.10 (Final)\n")
    assert el6["ID"] == "centos" and el6["VERSION_ID"] == "6.10"
    el7 = ai.parse_release_file("CentOS Linux release 7.9.2009 (Core)")
    assert el7["ID"] == "centos" and el7["VERSION_ID"] == "7.9.2009"
    rhel = ai.parse_release_file("Red Hat Enterprise Linux Server release 7.9 (Maipo)")
    assert rhel["ID"] == "rhel" and rhel["VERSION_ID"] == "7.9"
    assert ai.parse_release_file("") == {}


def test_kernel_release():
    assert ai.parse_kernel_release("3.10.0-1160.el7.x86_64") == (3, 10, 0, 1160)
    assert ai.parse_kernel_release("2.6.32-754.el6.x86_64") == (2, 6, 32, 754)
    assert ai.parse_kernel_release("6.1.0-18-amd64") == (6, 1, 0, 18)
    assert ai.parse_kernel_release("5.4") == (5, 4, 0, None)
    assert ai.parse_kernel_release("garbage") is None


YUM_EL7_MISSING = """\
Loaded plugins: fastestmirror
Examining /media/b/rpms/docker-ce-26.1.4-1.el7.x86_64.rpm: 3:docker-ce-26.1.4-1.el7.x86_64
Marking /media/b/rpms/docker-ce-26.1.4-1.el7.x86_64.rpm to be installed
Resolving Dependencies
--> Running transaction check
---> Package docker-ce.x86_64 3:26.1.4-1.el7 will be installed
--> Processing Dependency: container-selinux >= 2:2.74 for package: 3:docker-ce-26.1.4-1.el7.x86_64
--> Processing Dependency: libseccomp >= 2.3 for package: 3:docker-ce-26.1.4-1.el7.x86_64
--> Finished Dependency Resolution
Error: Package: 3:docker-ce-26.1.4-1.el7.x86_64 (/docker-ce-26.1.4-1.el7.x86_64)
           Requires: container-selinux >= 2:2.74
Error: Package: 3:docker-ce-26.1.4-1.el7.x86_64 (/docker-ce-26.1.4-1.el7.x86_64)
           Requires: libseccomp >= 2.3
           Installed: libseccomp-2.2.1-1.el7.x86_64 (@anaconda)
               libseccomp = 2.2.1-1.el7
 You could try using --skip-broken to work around the problem
 You could try running: rpm -Va --nofiles --nodigest
"""

DNF_MISSING = """\
 Problem: conflicting requests
  - nothing provides iptables needed by docker-ce-3:26.1.4-1.el7.x86_64 from @commandline
================================================================================
 Package          Architecture  Version               Repository           Size
================================================================================
Skipping packages with broken dependencies:
 docker-ce        x86_64        3:26.1.4-1.el7        @commandline        6.3 k
Nothing to do.
Complete!
"""

YUM_EL7_OK = """\
Removing for dependencies:
 atomic-registries       x86_64   1:1.22.1-33.gitb507039.el7_8   @extras   4.4 k
 podman                  x86_64   0:1.6.4-32.el7_9               @extras    90 M

Transaction Summary
================================================================================
Running transaction check
Running transaction test
Transaction test succeeded
"""

YUM_EL7_FILE_CONFLICT = """\
Running transaction check
Running transaction test


Transaction check error:
  file /usr/bin/docker from install of docker-ce-cli-1:26.1.4-1.el7.x86_64 conflicts with \
file from package docker-common-2:1.13.1-209.git7d71120.el7.centos.x86_64

Error Summary
-------------
"""


def test_parse_yum_output_el7_and_dnf():
    el7 = ai.parse_yum_output(YUM_EL7_MISSING)
    assert el7["missing"] == [
        ("container-selinux >= 2:2.74", "3:docker-ce-26.1.4-1.el7.x86_64"),
        ("libseccomp >= 2.3", "3:docker-ce-26.1.4-1.el7.x86_64"),
    ]
    assert not el7["ok"]
    dnf = ai.parse_yum_output(DNF_MISSING)
    assert dnf["missing"] == [("iptables", "docker-ce-3:26.1.4-1.el7.x86_64")] and not dnf["ok"]
    ok = ai.parse_yum_output(YUM_EL7_OK)
    assert (
        ok["ok"] and ok["missing"] == [] and ok["extra_removals"] == ["atomic-registries", "podman"]
    )
    conflict = ai.parse_yum_output(YUM_EL7_FILE_CONFLICT)
    assert not conflict["ok"] and "file /usr/bin/docker" in conflict["conflicts"][0]


def test_openpgp_fingerprints_of_the_pinned_vendor_keys():
    keys = REPO / "builder" / "keys"
    docker = ai.openpgp_keys((keys / "docker-ce-centos.asc").read_bytes())
    centos = ai.openpgp_keys((keys / "RPM-GPG-KEY-CentOS-7.asc").read_bytes())
    assert docker[0]["fingerprint"] == "060A61C51B558A7F742B77AAC52FEB6B621E9F35"
    assert docker[0]["key_id"] == "c52feb6b621e9f35"
    assert centos[0]["fingerprint"] == "6341AB2753D78A78A7C27BB124C6A8A7F4A80EB5"
    for fingerprint in (docker[0]["fingerprint"], centos[0]["fingerprint"]):
        assert fingerprint in ai.VENDOR_KEYS
    with pytest.raises(ValueError):
        ai.openpgp_keys(b"not a key at all")


def test_unknown_manifest_format_version_is_refused(tmp_path):
    class S:
        result: dict = {}

    (tmp_path / "manifest.json").write_text(json.dumps({"format": "airdock-bundle",
                                                        "format_version": 2}))  # fmt: skip
    with pytest.raises(ai.Failure) as info:
        ai.load_bundle(S(), str(tmp_path))
    assert "format_version 2" in info.value.message and "knows 1" in info.value.message
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ai.Failure, match="not valid JSON"):
        ai.load_bundle(S(), str(tmp_path))
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ai.Failure, match="not an airdock bundle manifest"):
        ai.load_bundle(S(), str(tmp_path))


def test_sizes_and_names():
    assert ai.human_size(0) == "0 B"
    assert ai.human_size(1536) == "1.5 KiB"
    assert ai.human_size(3 * 1024**3) == "3.0 GiB"
    assert ai.image_name("hello-world:latest") == "hello-world"
    assert ai.image_name("127.0.0.1:5000/library/hello-world:latest") == "hello-world"
    assert ai.image_name("registry:5000/app") == "app"
    assert ai.normalize_arch("arm64") == "aarch64"


# ------------------------------------------------------------------ a failed transaction


class RecordingSession:
    """Stands in for the installer's Session: records commands, answers with yum's output."""

    dry_run = False

    def __init__(self, output: str):
        self.output = output
        self.commands: list[list[str]] = []
        self.cleanup: list[str] = []
        self.result: dict = {}

    def run(self, cmd, **kwargs):
        self.commands.append(list(cmd))
        return (0, self.output)  # yum shell's exit code says nothing; rpm is asked afterwards

    def step(self, text):
        pass

    def say(self, text, err=False):
        pass

    def log(self, text):
        pass


class StaticHost:
    def __init__(self, before, after):
        self.states = [before, after]

    def all_packages(self):
        return self.states.pop(0) if len(self.states) > 1 else self.states[0]

    def forget(self):
        pass

    def installed(self, names):
        return {}


@pytest.fixture
def recorded():
    """RecordingSession factory; removes the yum shell scripts the installer wrote."""
    made = []

    def make(output: str) -> RecordingSession:
        made.append(RecordingSession(output))
        return made[-1]

    yield make
    for session in made:
        for path in session.cleanup:
            if os.path.exists(path):
                os.remove(path)


def one_package_plan(tmp_path):
    plan = ai.Plan()
    entry = {"name": "docker-ce", "epoch": 3, "version": "26.1.4", "release": "1.el7",
             "arch": "x86_64", "file": "rpms/docker-ce-26.1.4-1.el7.x86_64.rpm"}  # fmt: skip
    plan.install = [ai.Package(entry, str(tmp_path))]
    return plan


def test_failed_transaction_undoes_the_key_import_and_says_nothing_changed(tmp_path, recorded):
    s = recorded("Package docker-ce.rpm is not signed\nError: GPG check FAILED\n")
    host = StaticHost(["bash-4.2.46-34.el7.x86_64"], ["bash-4.2.46-34.el7.x86_64"])
    with pytest.raises(ai.Failure) as info:
        ai.apply_transaction(s, host, one_package_plan(tmp_path), ["gpg-pubkey-7c5a3901"], 4)
    assert "the yum transaction failed and changed nothing" in info.value.message
    assert "GPG check FAILED" in info.value.message
    assert "signatures did not verify" in info.value.fix
    assert ["rpm", "-e", "gpg-pubkey-7c5a3901"] in s.commands
    shell = next(c for c in s.commands if c[0] == "yum")
    assert shell[:3] == ["yum", "-y", "--disablerepo=*"]
    assert "--setopt=localpkg_gpgcheck=1" in shell and shell[-2] == "shell"


def test_half_applied_transaction_is_reported_as_such(tmp_path, recorded):
    """The rpmdb changed, but not as planned: the receipt is written (record) before the
    failure, naming the transaction - here without an ID, and why."""
    s = recorded("Running transaction\nError: something broke\n")
    host = StaticHost(["bash-4.2.46-34.el7.x86_64"], ["bash-4.2.46-35.el7.x86_64"])
    recorded_transactions = []
    with pytest.raises(ai.Failure) as info:
        ai.apply_transaction(s, host, one_package_plan(tmp_path), [], 4,
                             recorded_transactions.append)  # fmt: skip
    assert "did not complete" in info.value.message
    assert "docker-ce-3:26.1.4-1.el7.x86_64 is not installed" in info.value.message
    assert "yum history" in info.value.fix
    assert recorded_transactions == [{
        "id": None, "why_no_id": "`yum history list` lists no transaction",
        "incomplete": ["docker-ce-3:26.1.4-1.el7.x86_64 is not installed"],
    }]  # fmt: skip


YUM_EL7_HISTORY = """\
Loaded plugins: fastestmirror
ID     | Login user               | Date and time    | Action(s)      | Altered
-------------------------------------------------------------------------------
    12 | root <root>              | 2024-06-30 12:00 | I, O, U        |   12 EE
    11 | root <root>              | 2024-06-29 09:13 | Install        |    1
history list
"""


@pytest.mark.parametrize(
    "output, before, expected",
    [
        (YUM_EL7_HISTORY, 11, {"id": 12}),
        (YUM_EL7_HISTORY, None, {"id": 12}),
        (YUM_EL7_HISTORY, 12, {"id": None, "why_no_id": "`yum history list` shows no new entry "
                                                        "(the newest is still 12)"}),
        ("Loaded plugins: fastestmirror\nNo transactions\n", None,
         {"id": None, "why_no_id": "`yum history list` lists no transaction"}),
    ],
)  # fmt: skip
def test_the_transaction_id_or_why_there_is_none(output, before, expected):
    assert ai.committed_transaction(RecordingSession(output), before) == expected


def test_a_failing_yum_history_is_named():
    class Failing(RecordingSession):
        def run(self, cmd, **kwargs):
            return (1, "Error: rpmdb open failed\n")

    assert ai.committed_transaction(Failing(""), 3) == {
        "id": None,
        "why_no_id": "`yum history list` failed (exit 1): Error: rpmdb open failed",
    }


# ------------------------------------------------------------------ checks that need odd disks


class ToolHost:
    def __init__(self, tools=("xfs_info",)):
        self.tools = tools

    def has(self, tool):
        return tool in self.tools


@pytest.mark.parametrize(
    "fstype, tools, xfs_info, status, words",
    [
        ("xfs", ("xfs_info",), "naming =version 2 bsize=4096 ascii-ci=0 ftype=1", "pass",
         "ftype=1: overlay2 works"),
        ("xfs", ("xfs_info",), "naming =version 2 bsize=4096 ascii-ci=0 ftype=0", "fail",
         "ftype=0: overlay2 cannot work"),
        ("xfs", (), "", "warn", "xfs_info not found"),
        ("ext4", (), "", "pass", "(ext4): overlay2 works"),
        ("nfs4", (), "", "warn", "overlay2 may not work"),
    ],
)  # fmt: skip
def test_filesystem_check(monkeypatch, fstype, tools, xfs_info, status, words):
    monkeypatch.setattr(ai, "mount_of", lambda path: ("/var", fstype))
    s = RecordingSession(xfs_info)
    check = ai.check_filesystem(s, ToolHost(tools))
    assert check.status == status and words in check.message
    if status == "fail":
        assert "mkfs.xfs -n ftype=1" in check.fix


def test_space_check(monkeypatch):
    bundle = type("B", (), {"images": [{"size": 2 * 1024**3}], "packages": []})()
    monkeypatch.setattr(ai, "free_bytes", lambda path: 4 * 1024**3)
    check = ai.check_space(ToolHost(), bundle)
    assert check.status == "fail" and "the images need about 7.0 GiB" in check.message
    monkeypatch.setattr(ai, "free_bytes", lambda path: 8 * 1024**3)
    assert ai.check_space(ToolHost(), bundle).status == "warn"
    monkeypatch.setattr(ai, "free_bytes", lambda path: 80 * 1024**3)
    assert ai.check_space(ToolHost(), bundle).status == "pass"


def test_an_installer_bug_is_one_line_and_the_traceback_goes_to_the_log(
    monkeypatch, tmp_path, capsys
):
    def broken(s, args):
        raise RuntimeError("boom")

    monkeypatch.setitem(ai.COMMANDS, "status", broken)
    log = tmp_path / "install.log"
    assert ai.main(["status", "--log", str(log)]) == 70
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error (RuntimeError: boom)" in err
    assert "Traceback" not in err and "Traceback" in log.read_text()


# ------------------------------------------------------------------ the bundle is untrusted input


def good_manifest() -> dict:
    """The smallest manifest the installer accepts (what the builder writes, trimmed)."""
    return {
        "format": "airdock-bundle", "format_version": 1, "name": "airdock-docker-ce-26.1.4-el7-"
        "x86_64-aliyun+docker", "docker_version": "26.1.4",
        "target": {"os": "centos", "releasever": "7", "arch": "x86_64",
                   "baseline": "centos-7.9.2009 @core", "closure": "minimal"},
        "requested": ["docker-ce"], "remove": ["docker", "docker-common"],
        "keys": [{"file": "keys/docker-ce-centos.asc",
                  "fingerprint": "060A61C51B558A7F742B77AAC52FEB6B621E9F35",
                  "key_ids": ["c52feb6b621e9f35"]}],
        "packages": [
            {"name": "docker-ce", "epoch": 3, "version": "26.1.4", "release": "1.el7",
             "arch": "x86_64", "file": "rpms/docker-ce-26.1.4-1.el7.x86_64.rpm", "size": 10,
             "sha256": "a" * 64, "signing_key": "c52feb6b621e9f35", "requested": True,
             "url": "https://download.docker.com/x", "repo": "docker-ce-stable"},
            {"name": "container-selinux", "epoch": 2, "version": "2.119.2",
             "release": "1.911c772.el7_8", "arch": "noarch", "size": 0, "sha256": "b" * 64,
             "file": "rpms/container-selinux-2.119.2-1.911c772.el7_8.noarch.rpm",
             "signing_key": None, "requested": False},
        ],
        "images": [{"repo_tag": "127.0.0.1:5000/library/hello-world:latest", "size": 1,
                    "file": "images/127.0.0.1-5000_library_hello-world_latest.tar",
                    "sha256": "c" * 64, "config_digest": "sha256:" + "d" * 64}],
        "installer": {"file": "airdock_install.py", "sha256": "e" * 64},
        "some_future_key": {"readers": "ignore it"},
    }  # fmt: skip


def test_a_good_manifest_passes():
    ai.validate_manifest(good_manifest())
    manifest = good_manifest()
    for key in ("requested", "remove", "images", "name"):
        del manifest[key]  # optional
    ai.validate_manifest(manifest)


def _set(path: str, value):
    """An edit that sets manifest[...path...] (dotted, with list indexes) to value."""

    def edit(manifest):
        *parents, last = path.split(".")
        node = manifest
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if value is _DELETE:
            del node[last]
        else:
            node[int(last) if isinstance(node, list) else last] = value

    return edit


_DELETE = object()

MALFORMED = [
    ("packages", {"docker-ce": {}}, "packages is an object, not a list"),
    ("packages", [], "packages is empty: the bundle holds no RPM"),
    ("packages", _DELETE, 'the manifest has no "packages"'),
    ("packages.0", "docker-ce", 'packages[0] is "docker-ce", not an object'),
    ("packages.0.name", "a b", 'packages[0].name is "a b", not a package name'),
    ("packages.0.name", "docker-ce\n", 'packages[0].name is "docker-ce\\n", not a package name'),
    ("packages.0.name", "-e", 'packages[0].name is "-e", not a package name'),
    ("packages.0.name", "a/b", 'packages[0].name is "a/b", not a package name'),
    ("packages.0.name", "x" * 600, "not a package name"),
    ("packages.0.name", 7, "packages[0].name is 7, not a package name"),
    ("packages.0.version", "26.1.4 ", '(docker-ce).version is "26.1.4 ", not an RPM version'),
    ("packages.0.release", "1.el7\t", '(docker-ce).release is "1.el7\\t", not an RPM release'),
    ("packages.0.version", _DELETE, 'packages[0] (docker-ce) has no "version"'),
    ("packages.0.epoch", -1, "(docker-ce).epoch is -1, not an integer >= 0"),
    ("packages.0.epoch", "3", '(docker-ce).epoch is "3", not an integer >= 0'),
    ("packages.0.epoch", 3.0, "(docker-ce).epoch is 3.0, not an integer >= 0"),
    ("packages.0.epoch", True, "(docker-ce).epoch is true, not an integer >= 0"),
    ("packages.0.epoch", None, "(docker-ce).epoch is null, not an integer >= 0"),
    ("packages.0.arch", "aarch64", '(docker-ce).arch is "aarch64", not x86_64 or noarch'),
    ("packages.0.file", "../../etc/passwd", '(docker-ce).file is "../../etc/passwd", not rpms/'),
    ("packages.0.file", "/etc/passwd", '(docker-ce).file is "/etc/passwd", not rpms/'),
    ("packages.0.file", "rpms/../x.rpm", 'file is "rpms/../x.rpm", not rpms/<name>.rpm'),
    ("packages.0.file", "rpms/a b.rpm", 'file is "rpms/a b.rpm", not rpms/<name>.rpm'),
    ("packages.0.file", "rpms/x.rpm\n", 'file is "rpms/x.rpm\\n", not rpms/<name>.rpm'),
    ("packages.0.file", "rpms/sub/x.rpm", 'file is "rpms/sub/x.rpm", not rpms/<name>.rpm'),
    ("packages.0.file", "rpms/x.tar", 'file is "rpms/x.tar", not rpms/<name>.rpm'),
    ("packages.1.file", "rpms/docker-ce-26.1.4-1.el7.x86_64.rpm", "is listed twice"),
    ("packages.0.size", -5, "(docker-ce).size is -5, not an integer >= 0"),
    ("packages.0.sha256", "A" * 64, "(docker-ce).sha256 is \"AAAA"),
    ("packages.0.sha256", "a" * 63, "not 64 lowercase hex digits"),
    ("packages.0.signing_key", "zz", '(docker-ce).signing_key is "zz", not a 16-hex-digit key'),
    ("packages.0.requested", "yes", '(docker-ce).requested is "yes", not true or false'),
    ("format_version", "1", 'format_version is "1", not an integer'),
    ("format_version", 1.0, "format_version is 1.0, not an integer"),
    ("format_version", True, "format_version is true, not an integer"),
    ("format_version", None, "format_version is null, not an integer"),
    ("target", "x86_64", 'target is "x86_64", not an object'),
    ("target.arch", "ppc64le", 'target.arch is "ppc64le", not an architecture this installer'),
    ("target.baseline", "centos\x1b[2J", 'target.baseline is "centos\\u001b[2J", not printable'),
    ("docker_version", "26.1.4; rm -rf /", 'docker_version is "26.1.4; rm -rf /", not an RPM'),
    ("name", "../x", 'name is "../x", not a plain name'),
    ("remove", "docker", 'remove is "docker", not a list'),
    ("remove.0", "docker common", 'remove[0] is "docker common", not a package name'),
    ("remove.0", {"name": "docker"}, "remove[0] is an object, not a package name"),
    ("requested.0", "", 'requested[0] is "", not a package name'),
    ("keys.0.file", "keys/../../root/.ssh/id_rsa.asc", 'keys[0].file is "keys/../../root/'),
    ("keys.0.file", "docker.asc", 'keys[0].file is "docker.asc", not keys/<name>.asc'),
    ("keys.0.fingerprint", "060A", 'keys[0].fingerprint is "060A", not a 40-hex-digit'),
    ("keys.0.key_ids", "c52feb6b621e9f35", 'keys[0].key_ids is "c52feb6b621e9f35", not a list'),
    ("keys", _DELETE, 'the manifest has no "keys"'),
    ("images.0.repo_tag", "--privileged", 'images[0].repo_tag is "--privileged", not an image'),
    ("images.0.file", "images/../../x.tar", "images/../../x.tar"),
    ("images.0.size", "1", 'images[0] (127.0.0.1:5000/library/hello-world:latest).size is "1"'),
    ("images.0.config_digest", "sha256:abc", 'config_digest is "sha256:abc", not sha256:<64'),
    ("images.0", None, "images[0] is null, not an object"),
]  # fmt: skip


@pytest.mark.parametrize("path, value, words", MALFORMED, ids=[m[2][:40] for m in MALFORMED])
def test_a_malformed_manifest_is_named(path, value, words):
    manifest = good_manifest()
    _set(path, value)(manifest)
    with pytest.raises((ai.ManifestProblem, ai.Failure)) as info:
        ai.check_format_version(manifest["format_version"])
        ai.validate_manifest(manifest)
    message = str(info.value) if isinstance(info.value, ai.ManifestProblem) else \
        info.value.message  # fmt: skip
    assert words in message
    assert "\n" not in message and "\x1b" not in message


def test_format_versions_newer_and_never_written():
    with pytest.raises(ai.Failure) as newer:
        ai.check_format_version(99)
    assert newer.value.message == ("this bundle was made by a newer airdock (manifest "
                                   "format_version 99; this installer knows 1)")  # fmt: skip
    assert "run the install.sh inside that bundle" in newer.value.fix
    with pytest.raises(ai.Failure) as never:
        ai.check_format_version(0)
    assert "format_version 0, which no airdock writes" in never.value.message
    ai.check_format_version(1)


MALFORMED_FILES = {
    "format_version-a-string": (json.dumps({"format": "airdock-bundle", "format_version": "1"}),
                                'format_version is "1", not an integer'),
    "packages-not-a-list": (json.dumps({**good_manifest(), "packages": {}}),
                            "packages is an object, not a list"),
    "format_version-99": (json.dumps({"format": "airdock-bundle", "format_version": 99}),
                          "made by a newer airdock (manifest format_version 99"),
    "not-json": ("{not json", "manifest.json is not valid JSON"),
    "not-utf-8": (b"\xff\xfe{}", "manifest.json is not valid JSON"),
    "nested-too-deep": ("[" * 100_000 + "]" * 100_000, "manifest.json is not valid JSON"),
    "not-an-object": ("[1, 2]", "is not an airdock bundle manifest"),
    "too-big": (" " * (16 * 1024 * 1024 + 1), "is larger than 16.0 MiB"),
}  # fmt: skip


@pytest.mark.parametrize("label", INSTALLER_PYTHONS)
def test_a_malformed_manifest_is_one_line_on_every_python(label, tmp_path):
    """load_bundle refuses before any check or lock: one line, exit 1, never 70."""
    python = installer_python(label)
    for case, (content, words) in MALFORMED_FILES.items():
        bundle = tmp_path / case
        bundle.mkdir()
        data = content if isinstance(content, bytes) else content.encode()
        (bundle / "manifest.json").write_bytes(data)
        for command in ("check", "install", "status"):
            proc = subprocess.run(
                [python, str(INSTALLER), command, "--yes", "--bundle", str(bundle), "--log",
                 str(tmp_path / "log")], capture_output=True, text=True,
            )  # fmt: skip
            assert proc.returncode == 1, (case, command, proc.stderr)
            assert proc.stdout == "" and proc.stderr.count("\n") == 1, (case, proc.stderr)
            assert proc.stderr.startswith("airdock: ") and words in proc.stderr, proc.stderr
            assert "internal error" not in proc.stderr


def test_keys_the_builder_names_are_file_names_the_installer_accepts():
    from builder.bundle import key_file_name

    for given, named in [("/k/docker-ce-centos.asc", "docker-ce-centos.asc"),
                         ("/k/RPM-GPG-KEY-CentOS-7", "RPM-GPG-KEY-CentOS-7.asc"),
                         ("/k/my key (2).gpg", "my_key__2_.gpg.asc"),
                         ("/k/.hidden", "key.hidden.asc"),
                         ("/k/schlüssel.asc", "schl_ssel.asc")]:  # fmt: skip
        assert key_file_name(Path(given)) == named
        assert ai.KEY_FILE_RE.match("keys/" + named)


class FakeBundle:
    def __init__(self, tmp_path, entries, remove=()):
        self.packages = [ai.Package(e, str(tmp_path)) for e in entries]
        for pkg in self.packages:
            Path(pkg.path).parent.mkdir(exist_ok=True)
            Path(pkg.path).touch()
        self.remove = list(remove)
        self.conflict_names = None


def two_packages(tmp_path):
    return FakeBundle(tmp_path, good_manifest()["packages"])


HEADERS_OK = "docker-ce\t3\t26.1.4\t1.el7\tx86_64\ncontainer-selinux\t2\t2.119.2\t" \
    "1.911c772.el7_8\tnoarch\n"  # fmt: skip


def test_headers_that_match_the_manifest_pass_in_one_rpm_call(tmp_path):
    s = RecordingSession(HEADERS_OK)
    check = ai.check_headers(s, two_packages(tmp_path))
    assert check.status == "pass" and "2 RPM headers match the manifest" in check.message
    assert len(s.commands) == 1
    cmd = s.commands[0]
    assert cmd[:4] == ["rpm", "-qp", "--nosignature", "--nodigest"]
    assert cmd[5] == "%{NAME}\\t%{EPOCHNUM}\\t%{VERSION}\\t%{RELEASE}\\t%{ARCH}\\n"
    assert cmd[6:] == [str(tmp_path / "rpms" / "docker-ce-26.1.4-1.el7.x86_64.rpm"),
                       str(tmp_path / "rpms" / "container-selinux-2.119.2-1.911c772.el7_8."
                                       "noarch.rpm")]  # fmt: skip


@pytest.mark.parametrize(
    "output, words",
    [
        (HEADERS_OK.replace("26.1.4", "25.0.5"),
         "rpms/docker-ce-26.1.4-1.el7.x86_64.rpm holds docker-ce-3:25.0.5-1.el7.x86_64 (its RPM "
         "header), the manifest says docker-ce-3:26.1.4-1.el7.x86_64"),
        (HEADERS_OK.replace("\t3\t", "\t0\t"), "holds docker-ce-26.1.4-1.el7.x86_64 (its"),
        (HEADERS_OK.replace("docker-ce\t", "docker-ce\x1b[2J\t"), "holds docker-ce?[2J-3:26.1.4"),
        (HEADERS_OK.replace("x86_64", "i686"), "holds docker-ce-3:26.1.4-1.el7.i686"),
        (HEADERS_OK.replace("container-selinux\t", "nope\t"),
         "holds nope-2:2.119.2-1.911c772.el7_8.noarch"),
        (HEADERS_OK.replace("26.1.4", "25.0.5").replace("2.119.2", "2.0"), "(+1 more)"),
        # a header field holding a newline or a tab must not shift answers onto other files
        (HEADERS_OK.replace("docker-ce\t", "x\ndocker-ce\t"), "could not read every RPM header"),
        (HEADERS_OK.replace("docker-ce\t", "x\tdocker-ce\t"), "could not read every RPM header"),
        (HEADERS_OK.split("\n")[0] + "\n", "(exit 0, 1 answer for 2 files"),
    ],
)  # fmt: skip
def test_headers_that_do_not_match_fail_naming_both(tmp_path, output, words):
    check = ai.check_headers(RecordingSession(output), two_packages(tmp_path))
    assert check.status == "fail" and words in check.message, check.message
    assert "\x1b" not in check.message and "\n" not in check.message
    assert "copy the bundle again" in check.fix


def test_the_remove_list_policy(tmp_path):
    conflicts = "C docker-io\nO docker-ce-selinux\nC podman-docker\nO moby-engine\n"
    ok = FakeBundle(tmp_path, good_manifest()["packages"],
                    list(ai.OLD_DOCKER_PACKAGES) + ["podman-docker", "moby-engine"])  # fmt: skip
    s = RecordingSession(conflicts)
    check = ai.check_remove_policy(s, ok)
    assert check.status == "pass", check.message
    assert s.commands[0][:3] == ["rpm", "-qp", "--nosignature"]
    ai.check_remove_policy(s, ok)
    assert len(s.commands) == 1  # the bundle's conflicts are asked once (make_plan too)
    bad = FakeBundle(tmp_path, good_manifest()["packages"], ["docker", "openssh-server"])
    check = ai.check_remove_policy(RecordingSession(conflicts), bad)
    assert check.status == "fail"
    assert check.message == (
        "the manifest asks to remove openssh-server: not an old docker "
        "package, and no RPM of the bundle conflicts with or obsoletes it"
    )
    many = FakeBundle(tmp_path, good_manifest()["packages"], ["a", "b", "docker-ce", "d", "e"])
    check = ai.check_remove_policy(RecordingSession(""), many)
    assert "remove a, b, docker-ce (+2 more): not old docker packages" in check.message


# ------------------------------------------------------------------ the installer lock


class QuietSession:
    def __init__(self):
        self.said: list[str] = []

    def log(self, text):
        pass

    def say(self, text, err=False):
        self.said.append(ai.english(text))


@pytest.fixture
def lock_path(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("the installer takes its lock only as root")
    return tmp_path / "state" / "lock"


def test_the_lock_is_exclusive_for_changes_and_shared_for_checks(lock_path):
    s = QuietSession()
    install = ai.InstallerLock(str(lock_path))
    assert install.acquire(s, exclusive=True)
    assert lock_path.read_text() == f"{os.getpid()}\n"
    assert fcntl.fcntl(install.fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC  # not inherited by yum
    for exclusive in (True, False):
        with pytest.raises(ai.Failure) as info:
            ai.InstallerLock(str(lock_path)).acquire(s, exclusive)
        assert info.value.message == f"another airdock installer (pid {os.getpid()}) is running"
        assert info.value.fix == "wait for it to finish"
    install.release()
    assert not lock_path.exists() and not lock_path.parent.exists()  # it made the folder

    first, second = ai.InstallerLock(str(lock_path)), ai.InstallerLock(str(lock_path))
    assert first.acquire(s, exclusive=False) and second.acquire(s, exclusive=False)
    with pytest.raises(ai.Failure, match="another airdock installer"):
        ai.InstallerLock(str(lock_path)).acquire(s, exclusive=True)
    first.release()
    assert lock_path.exists()  # the second check still holds it
    second.release()
    assert not lock_path.exists()
    assert s.said == []


def test_a_lock_file_left_by_a_dead_run_is_taken_over(lock_path):
    lock_path.parent.mkdir()
    lock_path.write_text("999999999\n")  # its process is gone: flock locks die with it
    lock = ai.InstallerLock(str(lock_path))
    assert lock.acquire(QuietSession(), exclusive=True)
    assert lock_path.read_text() == f"{os.getpid()}\n"
    lock.release()
    assert not lock_path.exists() and lock_path.parent.is_dir()  # not its folder to remove


def test_a_lock_file_removed_under_a_run_is_not_trusted(lock_path, monkeypatch):
    """A run that locked a file a finishing run had just removed locks the new file instead."""
    lock_path.parent.mkdir()
    real_flock = fcntl.flock
    replaced = []

    def flock_after_a_finishing_run(fd, op):
        real_flock(fd, op)
        if not replaced and op & fcntl.LOCK_NB and not op & fcntl.LOCK_UN:
            replaced.append(os.fstat(fd).st_ino)
            os.unlink(lock_path)  # what the finishing run's release() does

    monkeypatch.setattr(ai.fcntl, "flock", flock_after_a_finishing_run)
    lock = ai.InstallerLock(str(lock_path))
    assert lock.acquire(QuietSession(), exclusive=True)
    assert len(replaced) == 1  # the first file it locked was gone: it locked the new one
    assert os.fstat(lock.fd).st_ino == lock_path.stat().st_ino
    lock.release()


def test_no_lock_and_a_warning_where_the_folder_cannot_be_written(lock_path):
    lock_path.parent.mkdir()
    (lock_path.parent / "blocker").write_text("")
    s = QuietSession()
    lock = ai.InstallerLock(str(lock_path.parent / "blocker" / "lock"))
    assert lock.acquire(s, exclusive=True) is False
    assert len(s.said) == 1 and s.said[0].startswith("warning: cannot lock ")
    assert "nothing stops a second installer run" in s.said[0]
    lock.release()  # a no-op
