"""Pure functions and CLI input checks: no network, no external tools."""

from __future__ import annotations

import hashlib
import tarfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from builder.cli import app
from builder.download import Cache, Digest
from builder.errors import AirdockError, MirrorError
from builder.mirrors import PRESETS, resolve_mirror
from builder.repodata import parse_repomd
from builder.resolve import nearest_versions, split_evr
from builder.tarutil import write_tar

runner = CliRunner()


def test_official_urls_keep_upstream_layout():
    m = resolve_mirror("docker")
    assert (
        m.docker_repo_url("x86_64") == "https://download.docker.com/linux/centos/7/x86_64/stable/"
    )
    assert (
        m.centos_repo_url("extras", "x86_64") == "https://vault.centos.org/7.9.2009/extras/x86_64/"
    )
    assert (
        m.centos_repo_url("os", "aarch64")
        == "https://vault.centos.org/altarch/7.9.2009/os/aarch64/"
    )


def test_url_prefix_mirror_and_os_override():
    m = resolve_mirror("http://127.0.0.1:8080/docker-ce/", "http://127.0.0.1:8080/vault")
    assert m.docker_repo_url("aarch64", "test") == (
        "http://127.0.0.1:8080/docker-ce/linux/centos/7/aarch64/test/"
    )
    assert m.centos_repo_url("updates", "x86_64") == (
        "http://127.0.0.1:8080/vault/7.9.2009/updates/x86_64/"
    )
    assert m.name == "127.0.0.1"


def test_every_preset_has_both_prefixes():
    for preset in PRESETS.values():
        assert preset.docker_ce.startswith("https://") and preset.os.startswith("https://")


def test_nearest_versions_prefers_shared_prefix():
    available = ["26.1.4", "26.1.3", "26.0.2", "25.0.5", "24.0.9"]
    assert nearest_versions("26.1.9", available, 3) == ["26.1.4", "26.1.3", "26.0.2"]
    assert nearest_versions("25.1.0", available, 1) == ["25.0.5"]


def test_split_evr():
    assert split_evr("3:26.1.4-1.el7") == (3, "26.1.4", "1.el7")
    assert split_evr("1.6.33-3.1.el7") == (0, "1.6.33", "3.1.el7")


def test_digest_parsing_and_aliases():
    hex64 = "ab" * 32
    assert str(Digest.parse(f"sha256:{hex64}")) == f"sha256:{hex64}"
    assert str(Digest.of("SHA256", hex64.upper())) == f"sha256:{hex64}"  # metadata: any case
    sha1 = Digest.of("sha", "00" * 20)
    assert sha1.algo == "sha1" and not sha1.strong and Digest.parse(f"sha512:{'0' * 128}").strong
    with pytest.raises(ValueError):
        Digest.of("crc32", "00")


@pytest.mark.parametrize(
    "text",
    [
        "nodigest",
        "sha256:ABCD",
        f"sha256:{'AB' * 32}",  # registries write lower case
        f"sha256:{'ab' * 31}",
        f"sha256:{'ab' * 33}",
        f"sha256:../../{'a' * 58}",
        "sha256:../../../../tmp/victim",
        f"sha1:{'ab' * 20}",  # no weak digests from registries
        f"md5:{'ab' * 16}",
        f"sha256:{'ab' * 32}\n",
        f" sha256:{'ab' * 32}",
    ],
)
def test_registry_digests_are_exact(text):
    """A digest becomes a cache path and an archive name: anything else is refused."""
    with pytest.raises(ValueError):
        Digest.parse(text)


@pytest.mark.parametrize(
    "algo, value",
    [("sha256", "00"), ("sha256", "../" + "a" * 61), ("md5", "zz" * 16), ("sha512", "ab" * 32)],
)
def test_metadata_digests_are_exact(algo, value):
    with pytest.raises(ValueError):
        Digest.of(algo, value)


def test_weak_digests_never_key_the_cache(tmp_path):
    cache = Cache(tmp_path)
    weak = Digest.of("sha1", "ab" * 20)
    assert cache.lookup(weak) is None
    with pytest.raises(ValueError):
        cache.path_for(weak)
    strong = Digest.of("sha256", "ab" * 32)
    assert cache.path_for(strong) == tmp_path / "sha256" / "ab" / ("ab" * 32)


@pytest.mark.parametrize(
    "data",
    [b"", b"<html>not a repo</html>", b"\x1f\x8b\x08garbage", b"<repomd></repomd>"],
)
def test_malformed_repomd_is_a_clean_error(data):
    with pytest.raises(MirrorError) as err:
        parse_repomd(data, "http://x/repodata/repomd.xml")
    assert "http://x/repodata/repomd.xml" in str(err.value)


def test_tarball_is_reproducible(tmp_path):
    root = tmp_path / "b"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "z.txt").write_text("z")
    (root / "a.sh").write_text("#!/bin/sh\n")
    (root / "a.sh").chmod(0o755)
    one, two = tmp_path / "1.tar", tmp_path / "2.tar"
    digest = write_tar(one, root, "b", 1_700_000_000)
    (root / "sub" / "z.txt").touch()  # a new mtime must not matter
    write_tar(two, root, "b", 1_700_000_000)
    assert hashlib.sha256(one.read_bytes()).digest() == hashlib.sha256(two.read_bytes()).digest()
    assert digest == hashlib.sha256(one.read_bytes()).hexdigest()  # hashed while written
    assert one.read_bytes()[:2] != b"\x1f\x8b"  # not compressed: the content is already
    with tarfile.open(one, "r:") as tar:  # plain GNU tar, no pax headers (tar 1.26 reads it)
        members = tar.getmembers()
        assert tar.pax_headers == {}
        assert all(m.pax_headers == {} for m in members)
    assert [m.name for m in members] == ["b", "b/a.sh", "b/sub", "b/sub/z.txt"]
    assert {(m.uid, m.gid, m.uname, m.mtime) for m in members} == {(0, 0, "", 1_700_000_000)}
    assert members[1].mode == 0o755 and members[3].mode == 0o644


def test_tarball_order_is_sorted_not_the_directory_order(tmp_path):
    """30 names created out of order: whatever order the filesystem lists them in, the
    archive holds them sorted (the odds that readdir happens to sort 30 names are nil)."""
    root = tmp_path / "b"
    root.mkdir()
    names = [f"{(i * 7919) % 1000:03d}-{i}" for i in range(30)]
    for name in names:
        (root / name).write_text(name)
    write_tar(tmp_path / "t.tar", root, "b", 1_700_000_000)
    with tarfile.open(tmp_path / "t.tar") as tar:
        listed = [m.name for m in tar.getmembers()][1:]
    assert listed == [f"b/{n}" for n in sorted(names)]
    assert listed != [f"b/{n}" for n in names]


@pytest.mark.parametrize(
    "args, needle",
    [
        (["build", "--arch", "s390x"], "--arch 's390x' is not supported"),
        (["build", "--channel", "beta"], "--channel 'beta' is not a docker-ce channel"),
        (["build", "--mirror", "nowhere"], "neither a preset"),
        (["build", "--jobs", "0"], "--jobs 0 must be at least 1"),
        (["build", "--closure", "most"], "--closure 'most' is not known"),
        (["build", "--gpg-key", "/nonexistent.asc"], "--gpg-key /nonexistent.asc: no such file"),
        (["versions", "--arch", "ppc64le"], "--arch 'ppc64le' is not supported"),
    ],
)
def test_bad_options_give_one_line(args, needle, tmp_path):
    result = runner.invoke(
        app, [*args, "--cache-dir", str(tmp_path)] if args[0] == "build" else args
    )
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and needle in lines[0]
    assert "Traceback" not in result.output


def test_bad_source_date_epoch(monkeypatch):
    from builder.errors import UsageError
    from builder.plan import source_date_epoch

    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(UsageError, match="SOURCE_DATE_EPOCH"):
        source_date_epoch(0)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    assert source_date_epoch(0) == 1700000000


def test_mirrors_json():
    result = runner.invoke(app, ["mirrors", "--json"])
    assert result.exit_code == 0
    assert '"aliyun"' in result.output and "centos-vault" in result.output


def _pkg(name: str, digest: str):
    from builder.resolve import Package

    return Package(
        name,
        0,
        "1.0",
        "1.el7",
        "x86_64",
        "r",
        ("http://m/x.rpm",),
        "x.rpm",
        Digest("sha256", digest * 32),
        1,
        False,
    )


def test_plan_drift_names_package_and_mirrors():
    from builder.consistency import plan_drift

    same = plan_drift({"aliyun": [_pkg("a", "11"), _pkg("b", "22")], "docker": [_pkg("a", "11")]})
    assert same == []
    [problem] = plan_drift({"aliyun": [_pkg("a", "11")], "docker": [_pkg("a", "99")]})
    assert problem == (
        f"a-0:1.0-1.el7.x86_64: aliyun has sha256:{'11' * 32}, docker has sha256:{'99' * 32}"
    )


def test_image_drift_compares_per_reference_and_platform():
    from builder.consistency import image_drift, raise_on_drift

    def manifest(digest: str, platform: str = "linux/amd64") -> list[dict]:
        return [
            {
                "reference": "docker.io/library/hello-world:latest",
                "platform": platform,
                "manifest_digest": digest,
            }
        ]

    assert image_drift({"a": manifest("sha256:1"), "b": manifest("sha256:1")}) == []
    assert (
        image_drift({"a": manifest("sha256:1"), "b": manifest("sha256:2", "linux/arm64/v8")}) == []
    )
    problems = image_drift({"a": manifest("sha256:1"), "b": manifest("sha256:2")})
    assert problems == [
        "docker.io/library/hello-world:latest (linux/amd64): a has sha256:1, b has sha256:2"
    ]
    warned = []
    raise_on_drift(problems, True, warned.append)
    assert warned == [f"warning: mirror drift allowed: {problems[0]}"]
    with pytest.raises(AirdockError, match="mirrors disagree: docker.io/library/hello-world"):
        raise_on_drift(problems, False, warned.append)


def test_version_flag():
    from builder import __version__

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"airdock {__version__}"


def test_one_version_source_for_builder_and_installer(tmp_path):
    """pyproject.toml's version is the builder's, the source installer's, and what the builder
    stamps into a bundle's installer (which then says it with --version)."""
    import re
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    from builder import __version__
    from builder.bundle import INSTALLER_DIR, stamp_version

    root = Path(__file__).resolve().parents[1]
    pyproject = (root / "pyproject.toml").read_text()
    declared = re.search(r'^version = "([^"]+)"', pyproject, re.M).group(1)
    source = (root / "installer" / "airdock_install.py").read_text()
    assert __version__ == declared
    assert re.search(r'^VERSION = "([^"]+)"', source, re.M).group(1) == declared
    copy = tmp_path / "airdock_install.py"
    shutil.copyfile(INSTALLER_DIR / "airdock_install.py", copy)
    stamp_version(copy, "9.8.7")
    said = subprocess.run([sys.executable, str(copy), "--version"], capture_output=True, text=True)
    assert "airdock installer 9.8.7" in said.stdout + said.stderr


def test_user_file_reads_are_bounded_and_each_failure_is_one_line(tmp_path: Path) -> None:
    from builder.errors import UsageError
    from builder.userfile import read_user_file

    expected = "the path of a release.toml"
    big = tmp_path / "big"
    big.write_bytes(b"x" * 2049)
    cases = {
        tmp_path / "missing": "no such file",
        tmp_path: "is a folder",
        big: "larger than 2048 bytes",
        Path("/dev/zero"): "larger than 2048 bytes",  # endless: the read stops at the bound
    }
    for path, words in cases.items():
        with pytest.raises(UsageError) as info:
            read_user_file(path, f"--config {path}", 2048, expected)
        message = str(info.value)
        assert words in message and message.endswith(expected) and "\n" not in message
    assert read_user_file(big, "--config big", 4096, expected) == b"x" * 2049
