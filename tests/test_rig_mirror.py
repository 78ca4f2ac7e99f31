"""Sanity of the test rig itself: fixture mirror, HTTP server, dnf oracle."""

from __future__ import annotations

import gzip
import hashlib
import http.client
import socket
import subprocess
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.rig import mirror as fm
from tests.rig.dnfroot import DnfError
from tests.rig.tools import need, run

pytestmark = pytest.mark.slow  # whole builds against real peers: the suite's last tier

REPO_NS = "{http://linux.duke.edu/metadata/repo}"
COMMON_NS = "{http://linux.duke.edu/metadata/common}"

EXPECTED_X86_64 = {
    "audit-libs-python-0:2.8.5-4.el7.x86_64",
    "checkpolicy-0:2.5-8.el7.x86_64",
    "container-selinux-2:2.119.2-1.911c772.el7_8.noarch",
    "containerd.io-0:1.6.33-3.1.el7.x86_64",
    "docker-buildx-plugin-0:0.14.1-1.el7.x86_64",
    "docker-ce-3:26.1.4-1.el7.x86_64",
    "docker-ce-cli-1:26.1.4-1.el7.x86_64",
    "docker-ce-rootless-extras-0:26.1.4-1.el7.x86_64",
    "docker-compose-plugin-0:2.27.1-1.el7.x86_64",
    "fuse-overlayfs-0:0.7.2-6.el7_8.x86_64",
    "fuse3-libs-0:3.6.1-4.el7.x86_64",
    "libcgroup-0:0.41-21.el7.x86_64",
    "libsemanage-python-0:2.5-14.el7.x86_64",
    "policycoreutils-0:2.5-34.el7_9.1.x86_64",  # the upgrade of an installed @core package
    "policycoreutils-python-0:2.5-34.el7_9.1.x86_64",
    "python-IPy-0:0.75-6.el7.noarch",
    "setools-libs-0:3.3.8-4.el7.x86_64",
    "slirp4netns-0:0.4.3-4.el7_8.x86_64",
}

CORE_X86_64 = {
    "audit", "audit-libs", "basesystem", "bash", "coreutils", "filesystem", "glibc",
    "iptables", "libseccomp", "libselinux", "libselinux-utils", "libsemanage", "libsepol",
    "policycoreutils", "python", "python-libs", "rpm", "rpm-python", "selinux-policy",
    "selinux-policy-targeted", "setup", "shadow-utils", "systemd", "tar", "xz", "xz-libs",
    "yum",
}  # fmt: skip


def _get(url: str, headers: dict | None = None, method: str = "GET"):
    req = urllib.request.Request(url, headers=headers or {}, method=method)
    return urllib.request.urlopen(req, timeout=10)


def _repomd(repo_dir: Path) -> dict[str, ET.Element]:
    root = ET.parse(repo_dir / "repodata" / "repomd.xml").getroot()
    return {d.get("type"): d for d in root.findall(f"{REPO_NS}data")}


# ------------------------------------------------------------------ mirror layout


def test_layout_matches_real_trees(fixture_mirror):
    root = fixture_mirror.root
    centos = root / "docker-ce/linux/centos"
    repo_file = (centos / "docker-ce.repo").read_text()
    assert "[docker-ce-stable]" in repo_file
    assert (
        "baseurl=https://download.docker.com/linux/centos/$releasever/$basearch/stable" in repo_file
    )
    assert "gpgkey=https://download.docker.com/linux/centos/gpg" in repo_file
    assert "[docker-ce-test]" in repo_file and "[docker-ce-nightly]" in repo_file
    assert (centos / "gpg").read_bytes() == fixture_mirror.key_file.read_bytes()
    assert (centos / "gpg").read_text().startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")
    vault_key = root / "centos-vault/RPM-GPG-KEY-CentOS-7"
    assert vault_key.read_bytes() == fixture_mirror.centos_key_file.read_bytes()
    assert fixture_mirror.key_file.read_bytes() != fixture_mirror.centos_key_file.read_bytes()
    for repo in ("os", "updates", "extras"):
        d = root / f"centos-vault/7.9.2009/{repo}/x86_64"
        assert d == fixture_mirror.repo_dir(repo)
        assert (d / "repodata/repomd.xml").is_file()
    stable = centos / "7/x86_64/stable"
    assert stable == fixture_mirror.repo_dir("docker-ce-stable")
    names = sorted(p.name for p in (stable / "Packages").iterdir())
    for expected in (
        "docker-ce-26.1.4-1.el7.x86_64.rpm",
        "docker-ce-25.0.5-1.el7.x86_64.rpm",
        "docker-ce-cli-26.1.4-1.el7.x86_64.rpm",
        "containerd.io-1.6.33-3.1.el7.x86_64.rpm",
        "containerd.io-1.6.28-3.1.el7.x86_64.rpm",
    ):
        assert expected in names
    assert fixture_mirror.rpm_path("extras", "x86_64", "container-selinux").name == (
        "container-selinux-2.119.2-1.911c772.el7_8.noarch.rpm"
    )
    assert fixture_mirror.rpm_path("docker-ce-stable", "x86_64", "docker-ce", "25.0.5").is_file()
    assert not (root / "centos-vault/altarch").exists()  # aarch64 only when asked
    # every catalog package is on disk, nothing else
    for repo, pkgs in fm.catalog("x86_64").items():
        on_disk = {p.name for p in (fixture_mirror.repo_dir(repo) / "Packages").iterdir()}
        assert on_disk == {p.filename for p in pkgs}


def test_repomd_names_metadata_and_group(fixture_mirror):
    for repo in fm.REPO_IDS:
        data = _repomd(fixture_mirror.repo_dir(repo))
        assert {"primary", "filelists", "other"} <= set(data), repo
        assert ("group" in data) == (repo == "os")
        primary = data["primary"]
        href = primary.find(f"{REPO_NS}location").get("href")
        checksum = primary.find(f"{REPO_NS}checksum")
        assert checksum.get("type") == "sha256"
        blob = (fixture_mirror.repo_dir(repo) / href).read_bytes()
        assert hashlib.sha256(blob).hexdigest() == checksum.text
        pkgs = ET.fromstring(gzip.decompress(blob)).findall(f"{COMMON_NS}package")
        assert len(pkgs) == len(fm.catalog("x86_64")[repo])
    group = _repomd(fixture_mirror.repo_dir("os"))["group"]
    comps = fixture_mirror.repo_dir("os") / group.find(f"{REPO_NS}location").get("href")
    core = ET.parse(comps).getroot().find("group")
    assert core.findtext("id") == "core"
    assert {r.text for r in core.iter("packagereq")} == set(fm.core_group("x86_64"))


def test_rpm_headers_follow_el7_graph(fixture_mirror):
    def q(path: Path, *args: str) -> list[str]:
        return run(["rpm", "-qp", "--nosignature", *args, str(path)]).stdout.splitlines()

    docker_ce = fixture_mirror.rpm_path("docker-ce-stable", "x86_64", "docker-ce")
    assert q(docker_ce, "--qf", "%{EPOCH}:%{VERSION}-%{RELEASE}") == ["3:26.1.4-1.el7"]
    requires = q(docker_ce, "--requires")
    for dep in ("/usr/sbin/groupadd", "container-selinux >= 2:2.74", "libseccomp >= 2.3",
                "containerd.io >= 1.6.24", "docker-ce-rootless-extras", "libcgroup"):  # fmt: skip
        assert dep in requires
    assert set(q(docker_ce, "--conflicts")) == {
        "docker", "docker-io", "docker-engine-cs", "docker-ee"
    }  # fmt: skip
    containerd = fixture_mirror.rpm_path("docker-ce-stable", "x86_64", "containerd.io")
    assert {"containerd", "runc"} <= set(q(containerd, "--provides"))
    assert set(q(containerd, "--obsoletes")) == {"containerd", "runc"}
    groupadd_owner = fixture_mirror.rpm_path("os", "x86_64", "shadow-utils")
    assert "/usr/sbin/groupadd" in q(groupadd_owner, "--list")
    # the real /usr/bin/docker clash: both own it, with different content
    cli = fixture_mirror.rpm_path("docker-ce-stable", "x86_64", "docker-ce-cli")
    common = fixture_mirror.rpm_path("extras", "x86_64", "docker-common")
    fmt = "[%{FILENAMES} %{FILEDIGESTS}\n]"
    cli_files = dict(line.split() for line in q(cli, "--qf", fmt) if line)
    common_files = dict(line.split() for line in q(common, "--qf", fmt) if line)
    assert cli_files["/usr/bin/docker"] != common_files["/usr/bin/docker"]
    # no scriptlets anywhere (the sandbox roots have no shell)
    assert q(docker_ce, "--scripts") == []


def _checksig(dbpath: Path, path: Path) -> subprocess.CompletedProcess:
    return run(["rpmkeys", "--dbpath", str(dbpath), "--checksig", "-v", str(path)], check=False)


def test_signatures_verify_and_tampering_fails(fixture_mirror, tmp_path):
    need("rpmkeys")
    db = tmp_path / "db"
    db.mkdir()
    run(["rpmkeys", "--dbpath", str(db), "--import", str(fixture_mirror.key_file)])
    docker_rpm = fixture_mirror.rpm_path("docker-ce-stable", "x86_64", "docker-ce")
    ok = _checksig(db, docker_rpm)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    # both the header-only (V4 RSA/SHA256 Signature) and header+payload signatures are there
    assert "Header V4 RSA/SHA256 Signature" in ok.stdout
    assert "\n    V4 RSA/SHA256 Signature" in ok.stdout
    # the CentOS-side packages are signed by the OTHER key: not trusted yet
    centos_rpm = fixture_mirror.rpm_path("os", "x86_64", "bash")
    assert _checksig(db, centos_rpm).returncode != 0
    run(["rpmkeys", "--dbpath", str(db), "--import", str(fixture_mirror.centos_key_file)])
    assert _checksig(db, centos_rpm).returncode == 0
    # one flipped payload byte
    bad = tmp_path / docker_rpm.name
    data = bytearray(docker_rpm.read_bytes())
    data[-100] ^= 0x01
    bad.write_bytes(bytes(data))
    result = _checksig(db, bad)
    assert result.returncode != 0
    assert "BAD" in result.stdout + result.stderr


def test_cache_is_reused(fixture_mirror):
    again = fm.cached_fixture_mirror(("x86_64",))
    assert again.path == fixture_mirror.path
    assert again.fingerprints == fixture_mirror.fingerprints
    assert fixture_mirror.path.parent.parent == fm.CACHE_ROOT


def test_build_rpm_and_sign_extra_package(fixture_mirror, tmp_path):
    """Later tests build extra packages with the same keys (e.g. a changed mirror)."""
    pkg = fm.Pkg("airdock-extra", "1.0", "1.el7", files={"/usr/share/extra.txt": "x\n"})
    path = fm.build_rpm(pkg, tmp_path)
    fm.sign_rpms([path], fixture_mirror.gnupghome, fm.DOCKER_UID)
    db = tmp_path / "db"
    db.mkdir()
    run(["rpmkeys", "--dbpath", str(db), "--import", str(fixture_mirror.key_file)])
    assert _checksig(db, path).returncode == 0


# ------------------------------------------------------------------ HTTP server

GPG = "/docker-ce/linux/centos/gpg"
REPOMD = "/centos-vault/7.9.2009/os/x86_64/repodata/repomd.xml"


def test_server_counts_and_serves(mirror, fixture_mirror):
    body = _get(mirror.url + GPG).read()
    assert body == fixture_mirror.key_file.read_bytes()
    resp = _get(mirror.url + GPG, method="HEAD")
    assert resp.status == 200 and int(resp.headers["Content-Length"]) == len(body)
    assert resp.read() == b""
    assert mirror.count(GPG) == 2
    assert mirror.count("/gpg", method="HEAD") == 1
    assert mirror.requests[0].method == "GET" and mirror.requests[0].path == GPG
    with pytest.raises(urllib.error.HTTPError) as err:
        _get(mirror.url + "/docker-ce/nope.rpm")
    assert err.value.code == 404
    listing = _get(mirror.url + "/docker-ce/linux/centos/7/x86_64/stable/Packages/").read()
    assert b'href="docker-ce-26.1.4-1.el7.x86_64.rpm"' in listing
    mirror.reset()
    assert mirror.count(GPG) == 0 and mirror.requests == []


def test_server_fault_fires_exactly_n_times(mirror):
    mirror.fail("repomd.xml", status=503, times=2)
    codes = []
    for _ in range(4):
        try:
            codes.append(_get(mirror.url + REPOMD).status)
        except urllib.error.HTTPError as exc:
            codes.append(exc.code)
    assert codes == [503, 503, 200, 200]
    assert mirror.count("repomd.xml") == 4
    assert mirror.pending() == 0


def test_server_corrupt_truncate_range_redirect(mirror, fixture_mirror):
    real = fixture_mirror.key_file.read_bytes()
    mirror.corrupt(GPG, times=1)
    bad = _get(mirror.url + GPG).read()
    assert len(bad) == len(real) and bad != real
    assert _get(mirror.url + GPG).read() == real

    mirror.truncate(GPG, times=1)
    with pytest.raises(http.client.IncompleteRead) as err:
        _get(mirror.url + GPG).read()
    assert len(err.value.partial) == len(real) // 2
    assert _get(mirror.url + GPG).read() == real

    resp = _get(mirror.url + GPG, headers={"Range": "bytes=100-"})
    assert resp.status == 206
    assert resp.headers["Content-Range"] == f"bytes 100-{len(real) - 1}/{len(real)}"
    assert resp.read() == real[100:]
    with pytest.raises(urllib.error.HTTPError) as err416:
        _get(mirror.url + GPG, headers={"Range": f"bytes={len(real)}-"})
    assert err416.value.code == 416

    mirror.redirect("/elsewhere/", mirror.url + "/docker-ce/", times=1)
    resp = _get(mirror.url + "/elsewhere/linux/centos/gpg")  # urllib follows the 307
    assert resp.url == mirror.url + GPG and resp.read() == real
    assert mirror.log[-2]["status"] == 307


def test_server_truncate_on_raw_socket(mirror, fixture_mirror):
    """A truncated answer announces the full length, then the connection closes."""
    size = fixture_mirror.key_file.stat().st_size
    mirror.truncate(GPG)
    with socket.create_connection(("127.0.0.1", mirror.port), timeout=5) as sock:
        sock.sendall(f"GET {GPG} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert f"Content-Length: {size}".encode() in head
    assert len(body) == size // 2


# ------------------------------------------------------------------ dnf oracle


def test_baseline_root_has_core(baseline_root, fixture_mirror):
    root = baseline_root()
    names = root.installed_names()
    assert names == CORE_X86_64 == set(fixture_mirror.core_packages("x86_64"))
    assert "policycoreutils-0:2.5-34.el7.x86_64" in root.rpm_qa()  # os build, not the update
    assert "libcgroup" not in names and "container-selinux" not in names
    assert root.history_count() == 1
    keys = {n for n in root.rpm_qa(include_keys=True) if n.startswith("gpg-pubkey-")}
    assert len(keys) == 2
    assert (root.root / "usr/sbin/groupadd").is_file()


def test_would_install_is_the_minimal_el7_answer(baseline_root, mirror):
    root = baseline_root()
    before = root.rpm_qa()
    res = root.resolve(fm.DOCKER_DOCS_PACKAGES)
    assert res.inbound == EXPECTED_X86_64 == fm.expected_docker_install("x86_64")
    assert res.upgrade == {"policycoreutils-0:2.5-34.el7_9.1.x86_64"}
    assert res.replaced == {"policycoreutils-0:2.5-34.el7.x86_64"}
    assert res.remove == set()
    assert root.rpm_qa() == before  # a dry run
    assert mirror.count("repomd.xml") >= 4  # it went through the session server
    # the real transaction agrees with the oracle, in one dnf transaction
    root.install_names(fm.DOCKER_DOCS_PACKAGES)
    assert root.rpm_qa() - before == EXPECTED_X86_64
    assert root.history_count() == 2


def test_old_centos_docker_and_the_file_conflict(baseline_root):
    root = baseline_root()
    root.install_names(["docker"])
    names = root.installed_names()
    assert {"docker", "docker-client", "docker-common", "container-selinux"} <= names
    assert "2:1.13.1-209.git7d71120.el7.centos" in " ".join(root.rpm_qa())
    # the oracle: --allowerasing would erase only `docker` (the one named in Conflicts) ...
    res = root.resolve(fm.DOCKER_DOCS_PACKAGES, allow_erasing=True)
    assert res.remove == {"docker-2:1.13.1-209.git7d71120.el7.centos.x86_64"}
    with pytest.raises(DnfError):
        root.resolve(fm.DOCKER_DOCS_PACKAGES)  # without it dnf refuses
    # ... so rpm then trips over docker-common still owning /usr/bin/docker
    with pytest.raises(DnfError) as err:
        root.install_names(fm.DOCKER_DOCS_PACKAGES, allow_erasing=True)
    assert "/usr/bin/docker" in err.value.output and "docker-common" in err.value.output
    # remove + install in ONE transaction works
    history = root.history_count()
    root.shell(["install " + " ".join(fm.DOCKER_DOCS_PACKAGES),
                "remove docker docker-client docker-common"], repos=None)  # fmt: skip
    assert root.history_count() == history + 1
    names = root.installed_names()
    assert "docker-ce" in names and "docker-common" not in names


def test_local_install_checks_signatures(baseline_root, fixture_mirror, tmp_path):
    root = baseline_root()
    cat = fm.catalog("x86_64")
    paths = [
        fixture_mirror.repo_dir(repo) / "Packages" / p.filename
        for repo, pkgs in cat.items()
        for p in pkgs
        if p.nevra in EXPECTED_X86_64
    ]
    assert len(paths) == len(EXPECTED_X86_64)
    unsigned = fm.build_rpm(
        fm.Pkg("airdock-unsigned", "1.0", "1.el7", files={"/usr/share/u.txt": "u\n"}), tmp_path
    )
    with pytest.raises(DnfError) as err:
        root.install_files([*paths, unsigned])
    assert "airdock-unsigned" in err.value.output
    assert root.history_count() == 1
    root.install_files(paths)
    assert root.rpm_qa() >= EXPECTED_X86_64


def test_multiarch_mirror_and_aarch64_oracle(fixture_mirror_multiarch, baseline_root):
    m = fixture_mirror_multiarch
    for repo in ("os", "updates", "extras"):
        assert (m.root / f"centos-vault/altarch/7.9.2009/{repo}/aarch64/repodata").is_dir()
    assert (m.root / "docker-ce/linux/centos/7/aarch64/stable/repodata/repomd.xml").is_file()
    assert m.rpm_path("docker-ce-stable", "aarch64", "docker-ce").name == (
        "docker-ce-26.1.4-1.el7.aarch64.rpm"
    )
    root = baseline_root("arm", arch="aarch64")
    assert {n.rsplit(".", 1)[1] for n in root.rpm_qa()} == {"aarch64", "noarch"}
    expected = {n.replace(".x86_64", ".aarch64") for n in EXPECTED_X86_64}
    assert root.would_install(fm.DOCKER_DOCS_PACKAGES) == expected
