"""`airdock build --baseline-from`: the bundle for the host that is actually there.

dnf (--installroot) is the oracle: for three hosts - a 7.4-era host (older libselinux,
policycoreutils and selinux-policy, built here from the fixture catalog's specs at older EVRs,
as they were on the 7.4 media, and absent from the 7.9 repositories), a stripped host (only
rpm and yum with what they need) and a 7.9 @core host - the bundle made from the host's
inventory holds exactly the packages dnf would add or upgrade on that host.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from builder.baseline import InventoryError, parse_baseline
from builder.cli import app
from tests.rig import mirror as rig
from tests.rig.fixtures_sandbox import forget_docker_key
from tests.rig.sandbox import Sandbox

DOCS_PACKAGES = list(rig.DOCKER_DOCS_PACKAGES)
QA = re.compile(
    r"^(?P<name>.+)-(?P<epoch>\d+):(?P<version>[^-]+)-(?P<release>[^-]+)\.(?P<arch>[^.]+)$"
)


def inventory(root, hostname: str) -> dict:
    """What `install.sh inventory` writes, from the installroot's rpmdb."""
    packages = []
    for line in sorted(root.rpm_qa()):
        m = QA.match(line)
        assert m, line
        packages.append({**m.groupdict(), "epoch": int(m["epoch"])})
    return {
        "format": "airdock-inventory/1",
        "hostname": hostname,
        "os_release": {"ID": "centos", "VERSION_ID": "7"},
        "kernel": "3.10.0-693.el7.x86_64",
        "arch": "x86_64",
        "python": "2.7.5",
        "docker": {"present": False, "old_docker": False, "packages": []},
        "packages": packages,
    }


def build_for(
    tmp_path: Path, mirror_args: list[str], host_file: Path | None, publisher, out="bundles"
) -> dict:
    baseline = ["--baseline-from", str(host_file)] if host_file else []
    result = CliRunner().invoke(
        app,
        ["build", *mirror_args, "--no-images", "--output", str(tmp_path / out),
         "--cache-dir", str(tmp_path / "cache"), *baseline, "--sign-key", str(publisher.secret),
         "--json"],
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    manifest = json.loads((Path(summary["bundle"]) / "manifest.json").read_text())
    return {**manifest, "_folder": summary["bundle"]}


def check_on_host(root, manifest: dict, tmp_path: Path, publisher, name: str = "sb"):
    """The bundle's installer `check` on a sandbox host whose rpmdb is a copy of ``root``."""
    copy = root.copy(tmp_path / f"{name}-root")
    forget_docker_key(copy)  # the installer imports it, as on a real host
    box = Sandbox(tmp_path / name, copy, trusted=[publisher.public])
    try:
        folder = Path(manifest["_folder"])
        return box.installer(folder, "check")
    finally:
        box.close()


def nevras(manifest: dict) -> set[str]:
    return {
        f"{p['name']}-{p['epoch']}:{p['version']}-{p['release']}.{p['arch']}"
        for p in manifest["packages"]
    }


def old_rpms(fixture_mirror, out: Path) -> dict[str, Path]:
    """The 7.4-era builds: the 7.9 catalog's packages at their 7.4 EVRs, signed by 'CentOS'."""
    os_repo = {p.name: p for p in rig.catalog()["os"]}
    old = {
        "libselinux": ("2.5", "11.el7"),
        "libselinux-utils": ("2.5", "11.el7"),
        "policycoreutils": ("2.5", "17.1.el7"),
        "selinux-policy": ("3.13.1", "166.el7"),
        "selinux-policy-targeted": ("3.13.1", "166.el7"),
    }
    pkgs = []
    for name, (version, release) in old.items():
        new = os_repo[name]
        new_vr, old_vr = f"{new.version}-{new.release}", f"{version}-{release}"
        pkgs.append(dataclasses.replace(
            new, version=version, release=release,
            requires=tuple(r.replace(new_vr, old_vr).replace(">= 2.5-22", ">= 2.5-11")
                           for r in new.requires),
            provides=tuple(r.replace(new_vr, old_vr) for r in new.provides),
            files={k.replace(new.version, version): v for k, v in new.files.items()},
        ))  # fmt: skip
    paths = rig.build_rpms(pkgs, out)
    rig.sign_rpms(paths, fixture_mirror.gnupghome, rig.CENTOS_UID)
    return {p.name: path for p, path in zip(pkgs, paths)}


def test_a_7_4_era_host_gets_the_upgrades_its_dependencies_force(
    tmp_path, fixture_mirror, empty_root, mirror_args, sandbox_templates, publisher
):
    root = empty_root()
    old = old_rpms(fixture_mirror, tmp_path / "old-rpms")
    root.install_names(["setup", "filesystem", "basesystem", "glibc", "bash", "libsepol",
                        "audit-libs"], repos=["os"])  # fmt: skip
    root.install_files([old["libselinux"], old["libselinux-utils"]])
    root.install_names(["coreutils", "libsemanage", "xz-libs"], repos=["os"])
    root.install_files([old["policycoreutils"], old["selinux-policy"],
                        old["selinux-policy-targeted"]])  # fmt: skip
    rest = set(rig.core_packages()) - root.installed_names()
    root.install_names(sorted(rest), repos=["os"])
    installed = root.rpm_qa()
    assert "libselinux-0:2.5-11.el7.x86_64" in installed
    assert "selinux-policy-0:3.13.1-166.el7.noarch" in installed

    host = tmp_path / "host74.json"
    host.write_text(json.dumps(inventory(root, "centos74.example")))
    manifest = build_for(tmp_path, mirror_args, host, publisher)
    expected = root.would_install(DOCS_PACKAGES)
    assert nevras(manifest) == expected
    check = check_on_host(root, manifest, tmp_path, publisher)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "[pass] transaction" in check.stdout
    # the @core bundle does not fit this host: check names what is missing
    core = build_for(tmp_path, mirror_args, None, publisher, out="core")
    check = check_on_host(root, core, tmp_path, publisher, name="sb-core")
    assert check.returncode != 0 and "[fail] transaction" in check.stdout
    names = {p["name"] for p in manifest["packages"]}
    # container-selinux forces the newer policy (the @core answer leaves it out)
    assert {"selinux-policy", "selinux-policy-targeted", "policycoreutils"} <= names
    assert "libselinux" not in names  # nothing needs a newer one: the host's stays
    assert nevras(manifest) != rig.expected_docker_install()
    target = manifest["target"]
    assert target["closure"] == "host"
    assert target["inventory"]["hostname"] == "centos74.example"
    assert target["inventory"]["sha256"] == hashlib.sha256(host.read_bytes()).hexdigest()

    # the bundle installs on that host with every repo disabled
    folder = Path(manifest["_folder"])
    root.install_files(sorted((folder / "rpms").glob("*.rpm")))
    assert {"docker-ce", "containerd.io"} <= root.installed_names()


def test_a_stripped_host_from_a_plain_rpm_qa_listing(
    tmp_path, empty_root, mirror_args, sandbox_templates, publisher
):
    root = empty_root()
    root.install_names(["rpm", "yum"], repos=["os"])
    assert "systemd" not in root.installed_names()
    listing = tmp_path / "rpm-qa.txt"  # what `rpm -qa` prints: no epochs
    listing.write_text("".join(
        f"{m['name']}-{m['version']}-{m['release']}.{m['arch']}\n"
        for m in (QA.match(line) for line in sorted(root.rpm_qa()))
    ) + "gpg-pubkey-f4a80eb5-53a7ff4b\n")  # fmt: skip
    manifest = build_for(tmp_path, mirror_args, listing, publisher)
    expected = root.would_install(DOCS_PACKAGES)
    assert nevras(manifest) == expected
    check = check_on_host(root, manifest, tmp_path, publisher)
    assert check.returncode == 0, check.stdout + check.stderr
    assert {"systemd", "iptables", "selinux-policy-targeted"} <= {
        p["name"] for p in manifest["packages"]
    }
    assert manifest["target"]["inventory"].get("hostname") is None


def test_a_7_9_core_host_gets_the_core_answer(
    tmp_path, baseline_root, mirror_args, sandbox_templates, publisher
):
    root = baseline_root()
    host = tmp_path / "host79.json"
    host.write_text(json.dumps(inventory(root, "centos79")))
    manifest = build_for(tmp_path, mirror_args, host, publisher)
    assert nevras(manifest) == root.would_install(DOCS_PACKAGES) == rig.expected_docker_install()
    check = check_on_host(root, manifest, tmp_path, publisher)
    assert check.returncode == 0, check.stdout + check.stderr
    # `airdock release --baseline-from` answers for the same host
    result = CliRunner().invoke(
        app,
        ["release", *mirror_args, "--no-images", "--output", str(tmp_path / "release"),
         "--cache-dir", str(tmp_path / "cache"), "--baseline-from", str(host), "--json"],
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (released,) = (tmp_path / "release").glob("*/manifest.json")
    released_manifest = json.loads(released.read_text())
    assert nevras(released_manifest) == nevras(manifest)
    assert released_manifest["target"]["inventory"] == manifest["target"]["inventory"]


# -- the inventory as hostile input (fast) ----------------------------------------------------
GOOD = {
    "format": "airdock-inventory/1", "hostname": "h1", "os_release": {"ID": "centos"},
    "kernel": "3.10.0", "arch": "x86_64", "python": "2.7.5",
    "docker": {"present": False, "old_docker": False, "packages": []},
    "packages": [{"name": "bash", "epoch": 0, "version": "4.2.46", "release": "34.el7",
                  "arch": "x86_64"},
                 {"name": "gpg-pubkey", "epoch": 0, "version": "f4a80eb5",
                  "release": "53a7ff4b", "arch": "(none)"}],
}  # fmt: skip


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (lambda d: d.update(format="x"), "format is 'x'"),
        (lambda d: d.update(hostname="a b"), "hostname is 'a b'"),
        (lambda d: d.update(arch=3), "arch is 3"),
        (lambda d: d["docker"].update(present="yes"), "docker.present is 'yes'"),
        (lambda d: d["packages"][0].update(epoch=-1), "epoch is -1"),
        (lambda d: d["packages"][0].update(epoch=True), "epoch is True"),
        (lambda d: d["packages"][0].update(name="../x"), "name is '../x'"),
        (lambda d: d["packages"][0].update(version="1 2"), "version is '1 2'"),
        (lambda d: d.update(packages={}), "packages is missing or not a list"),
        (lambda d: d.update(packages=[]), "lists no package"),
        (lambda d: d.update(os_release=[]), "os_release is not an object"),
    ],
)
def test_bad_inventories_are_one_line_errors(edit, words):
    doc = json.loads(json.dumps(GOOD))
    edit(doc)
    with pytest.raises(InventoryError) as err:
        parse_baseline(json.dumps(doc).encode(), "host.json")
    assert words in str(err.value) and "\n" not in str(err.value)


def test_good_inventory_and_rpm_qa_listing():
    host = parse_baseline(json.dumps(GOOD).encode(), "host.json")
    assert [p.nvra for p in host.packages] == ["bash-4.2.46-34.el7.x86_64"]
    assert host.hostname == "h1" and host.kind == "inventory"
    qa = parse_baseline(b"bash-4.2.46-34.el7.x86_64\ntar-2:1.26-35.el7.x86_64\n", "qa.txt")
    assert [(p.name, p.epoch) for p in qa.packages] == [("bash", None), ("tar", 2)]
    with pytest.raises(InventoryError, match="line 1: 'not a package'"):
        parse_baseline(b"not a package\n", "qa.txt")
    with pytest.raises(InventoryError, match="not UTF-8"):
        parse_baseline(b"\xff\xfe", "qa.txt")
