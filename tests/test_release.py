"""Mirrors and release artifacts: presets, .repo files, fallback, drift, releases, split, diff."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from builder.cli import app
from builder.mirrors import ARCHES, CENTOS_REPOS, PRESETS, resolve_chain
from tests.rig import mirror as rig
from tests.rig.httpserver import MirrorServer
from tests.rig.tools import run

pytestmark = pytest.mark.slow  # whole builds against real peers: the suite's last tier


def airdock(*args):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def ok_json(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def built_manifest(*args) -> dict:
    """Run `airdock build ARGS --json` and return the bundle's manifest."""
    data = ok_json(airdock("build", *args, "--json"))
    return json.loads((Path(data["bundle"]) / "manifest.json").read_text())


def error_line(result) -> str:
    assert result.exit_code != 0, result.output
    lines = [ln for ln in result.output.splitlines() if ln.startswith("Error:")]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


# -- presets -----------------------------------------------------------------------------------
DOCUMENTED = {  # docs/el7-facts.md#mirror-presets: what each preset must point at
    "docker": ("https://download.docker.com", "https://vault.centos.org"),
    "aliyun": ("https://mirrors.aliyun.com/docker-ce", "https://mirrors.aliyun.com/centos-vault"),
    "tsinghua": (
        "https://mirrors.tuna.tsinghua.edu.cn/docker-ce",
        "https://mirrors.tuna.tsinghua.edu.cn/centos-vault",
    ),
    "ustc": ("https://mirrors.ustc.edu.cn/docker-ce", "https://mirrors.ustc.edu.cn/centos-vault"),
    "huaweicloud": (
        "https://repo.huaweicloud.com/docker-ce",
        "https://repo.huaweicloud.com/centos-vault",
    ),
    "tencent": (
        "https://mirrors.cloud.tencent.com/docker-ce",
        "https://mirrors.cloud.tencent.com/centos-vault",
    ),
}


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
@pytest.mark.parametrize("arch", ARCHES)
def test_preset_urls_for_every_arch(name, arch):
    docker, vault = DOCUMENTED[name]
    chain = resolve_chain(name)
    assert chain.docker_repo_urls(arch) == [f"{docker}/linux/centos/7/{arch}/stable/"]
    alt = "" if arch == "x86_64" else "altarch/"
    for repo in CENTOS_REPOS:
        assert chain.centos_repo_urls(repo, arch) == [f"{vault}/{alt}7.9.2009/{repo}/{arch}/"]


def test_presets_are_exactly_the_documented_ones():
    assert set(PRESETS) == set(DOCUMENTED)
    shown = json.loads(airdock("mirrors", "--json").stdout)
    assert {(m["name"], m["docker_ce"], m["os"]) for m in shown} == {
        (n, d, v) for n, (d, v) in DOCUMENTED.items()
    }


def test_fallback_chain_order():
    chain = resolve_chain("aliyun,docker")
    assert chain.name == "aliyun+docker"
    assert [u.split("/")[2] for u in chain.docker_repo_urls("x86_64")] == [
        "mirrors.aliyun.com",
        "download.docker.com",
    ]


# -- a served tree with several mirror prefixes ----------------------------------------------
@pytest.fixture
def prefixes(tmp_path, fixture_mirror_multiarch):
    """One server, the fixture tree under two docker-ce prefixes (a/ and b/) and a vault."""
    www = linked_tree(tmp_path / "www", fixture_mirror_multiarch)
    for name in ("a", "b"):
        os.symlink("real/docker-ce", www / name)
    with MirrorServer(www) as server:
        yield server


def linked_tree(www: Path, fixture) -> Path:
    """``www/real`` = the fixture tree as hard links (cheap); ``www/vault`` -> its vault."""
    www.mkdir()
    run(["cp", "-al", str(fixture.root), str(www / "real")])
    os.symlink("real/centos-vault", www / "vault")
    return www.resolve()


def base_args(fixture_mirror, vault_url):
    return [
        "--os-mirror",
        vault_url,
        "--gpg-key",
        fixture_mirror.key_file,
        "--gpg-key",
        fixture_mirror.centos_key_file,
        "--no-images",
    ]


def test_repo_file_with_variables_is_rewritten_to_its_mirror(tmp_path, fixture_mirror, mirror):
    repo_file = f"{mirror.url}/docker-ce/linux/centos/docker-ce.repo"
    assert (
        "https://download.docker.com/linux/centos/$releasever/$basearch/stable"
        in (fixture_mirror.root / "docker-ce/linux/centos/docker-ce.repo").read_text()
    )
    manifest = built_manifest(
        "--repo-file", repo_file, *base_args(fixture_mirror, f"{mirror.url}/centos-vault"),
        "--output", tmp_path / "o", "--cache-dir", tmp_path / "c",
    )  # fmt: skip
    ce = next(p for p in manifest["packages"] if p["name"] == "docker-ce")
    assert ce["url"].startswith(f"{mirror.url}/docker-ce/linux/centos/7/x86_64/stable/")


def test_local_repo_file_with_own_layout(tmp_path, fixture_mirror, mirror):
    repo = tmp_path / "private.repo"
    repo.write_text(
        "[docker-ce-stable]\nname=Private\n"
        f"baseurl={mirror.url}/docker-ce/linux/centos/$releasever/$basearch/stable/\n"
        "enabled=1\ngpgcheck=1\n"
    )
    plan = ok_json(
        airdock(
            "build",
            "--repo-file",
            repo,
            *base_args(fixture_mirror, f"{mirror.url}/centos-vault"),
            "--dry-run",
            "--json",
            "--cache-dir",
            tmp_path / "c",
        )
    )
    assert any(p["nevra"].startswith("docker-ce-3:26.1.4") for p in plan["packages"])


def test_bad_repo_file(tmp_path):
    repo = tmp_path / "x.repo"
    repo.write_text("[something-else]\nbaseurl=http://127.0.0.1:9/\n")
    line = error_line(airdock("build", "--repo-file", repo, "--no-images"))
    assert "no [docker-ce-stable] section" in line


def test_fallback_takes_a_file_from_the_second_mirror(tmp_path, fixture_mirror_multiarch, prefixes):
    ce = fixture_mirror_multiarch.rpm_path("docker-ce-stable", "x86_64", "docker-ce").name
    cli_ce = fixture_mirror_multiarch.rpm_path("docker-ce-stable", "x86_64", "docker-ce-cli").name
    prefixes.fail(f"/a/linux/centos/7/x86_64/stable/Packages/{ce}", status=404, times=None)
    prefixes.fail(f"/a/linux/centos/7/x86_64/stable/Packages/{cli_ce}", status=503, times=None)
    manifest = built_manifest(
        "--mirror", f"{prefixes.url}/a,{prefixes.url}/b",
        *base_args(fixture_mirror_multiarch, f"{prefixes.url}/vault"),
        "--output", tmp_path / "o", "--cache-dir", tmp_path / "c",
    )  # fmt: skip
    urls = {p["name"]: p["url"] for p in manifest["packages"]}
    assert urls["docker-ce"].startswith(f"{prefixes.url}/b/")
    assert urls["docker-ce-cli"].startswith(f"{prefixes.url}/b/")
    assert urls["containerd.io"].startswith(f"{prefixes.url}/a/")
    assert prefixes.count(f"/a/linux/centos/7/x86_64/stable/Packages/{ce}") == 1  # 404: no retry


@pytest.fixture
def drifted(tmp_path, fixture_mirror_multiarch):
    """The docker-ce tree with docker-ce-cli 26.1.4 rebuilt: same NEVRA, other bytes."""
    www = linked_tree(tmp_path / "drift-www", fixture_mirror_multiarch)
    shutil.copytree(fixture_mirror_multiarch.root / "docker-ce", www / "drifted")
    os.symlink("real/docker-ce", www / "good")
    stable = www / "drifted/linux/centos/7/x86_64/stable"
    pkg = fixture_mirror_multiarch.pkg("docker-ce-stable", "x86_64", "docker-ce-cli")
    old = stable / "Packages" / pkg.filename
    old.unlink()
    rebuilt = rig.build_rpm(pkg, tmp_path / "rebuilt")  # build time differs -> other bytes
    rig.sign_rpms([rebuilt], fixture_mirror_multiarch.gnupghome, rig.DOCKER_UID)
    shutil.copyfile(rebuilt, old)
    rig.createrepo(stable)
    with MirrorServer(www) as server:
        yield server, pkg


def test_fallback_chain_catches_drift(tmp_path, fixture_mirror_multiarch, drifted):
    server, pkg = drifted
    args = [
        "--mirror",
        f"{server.url}/good,{server.url}/drifted",
        *base_args(fixture_mirror_multiarch, f"{server.url}/vault"),
        "--output",
        tmp_path / "o",
        "--cache-dir",
        tmp_path / "c",
    ]
    line = error_line(airdock("build", *args))
    assert "mirrors disagree" in line and pkg.nevra in line and "--allow-mirror-drift" in line
    assert not (tmp_path / "o").exists() or not any(
        p for p in (tmp_path / "o").iterdir() if not p.name.startswith(".")
    )
    allowed = airdock("build", *args, "--allow-mirror-drift")
    assert allowed.exit_code == 0 and "warning: mirror drift allowed" in allowed.output


def test_release_catches_a_mirror_with_other_bytes(tmp_path, fixture_mirror_multiarch, drifted):
    server, pkg = drifted
    line = error_line(
        airdock(
            "release",
            "--mirror",
            f"{server.url}/good",
            "--mirror",
            f"{server.url}/drifted",
            *base_args(fixture_mirror_multiarch, f"{server.url}/vault"),
            "--output",
            tmp_path / "rel",
            "--cache-dir",
            tmp_path / "c",
        )
    )
    assert "mirrors disagree" in line and pkg.nevra in line
    assert [p for p in server.paths() if p.endswith(".rpm")] == []  # refused before downloading


def test_release_two_mirrors_two_arches(tmp_path, fixture_mirror_multiarch, prefixes):
    def release(out):
        return ok_json(
            airdock(
                "release",
                "--mirror",
                f"{prefixes.url}/a",
                "--mirror",
                f"{prefixes.url}/b",
                "--arch",
                "x86_64",
                "--arch",
                "aarch64",
                *base_args(fixture_mirror_multiarch, f"{prefixes.url}/vault"),
                "--output",
                out,
                "--cache-dir",
                tmp_path / "cache",
                "--json",
            )
        )

    first = release(tmp_path / "r1")
    rpm_gets = [p for p in prefixes.paths("GET") if p.endswith(".rpm")]
    by_file: dict[str, int] = {}  # the same file under the a/ and b/ prefixes counts once
    for path in rpm_gets:
        same_file = path.split("/", 2)[2] if path.startswith(("/a/", "/b/")) else path
        by_file[same_file] = by_file.get(same_file, 0) + 1
    assert by_file and set(by_file.values()) == {1}, by_file  # each identical RPM fetched once
    assert len(first["artifacts"]) == 4
    releases = json.loads((tmp_path / "r1/RELEASES.json").read_text())
    assert {(a["mirror"], a["arch"]) for a in releases["artifacts"]} == {
        ("127.0.0.1", "x86_64"),
        ("127.0.0.1", "aarch64"),
    } or len(releases["artifacts"]) == 4
    md = (tmp_path / "r1/RELEASES.md").read_text()
    for art in releases["artifacts"]:
        assert art["artifact"] in md and art["sha256"] in md
        run(["sha256sum", "-c", art["artifact"] + ".sha256"], cwd=tmp_path / "r1")

    prefixes.reset()
    second = release(tmp_path / "r2")
    assert [p for p in prefixes.paths() if p.endswith(".rpm")] == []
    assert {a["sha256"] for a in second["artifacts"]} == {a["sha256"] for a in first["artifacts"]}
    for art in first["artifacts"]:
        assert (tmp_path / "r1" / art["artifact"]).read_bytes() == (
            tmp_path / "r2" / art["artifact"]
        ).read_bytes()


def test_split_parts_rejoin_to_the_exact_tarball(tmp_path, mirror_args, mirror):
    whole = ok_json(
        airdock(
            "build",
            *mirror_args,
            "--no-images",
            "--json",
            "--output",
            tmp_path / "whole",
            "--cache-dir",
            tmp_path / "c",
        )
    )
    split = ok_json(
        airdock(
            "build",
            *mirror_args,
            "--no-images",
            "--json",
            "--output",
            tmp_path / "split",
            "--cache-dir",
            tmp_path / "c",
            "--split-size",
            "64K",
        )
    )
    parts = [Path(p) for p in split["parts"]]
    assert len(parts) >= 2 and all(p.stat().st_size <= 64 * 1024 for p in parts)
    out = tmp_path / "split"
    assert not (out / Path(whole["tarball"]).name).exists()  # never written whole
    join = (out / f"{Path(split['bundle']).name}.JOIN.txt").read_text()
    command = join.splitlines()[-1]
    run(["sh", "-c", command], cwd=out)
    assert (out / Path(whole["tarball"]).name).read_bytes() == Path(whole["tarball"]).read_bytes()
    # a lost or damaged chunk is named by its own checksum file
    data = bytearray(parts[1].read_bytes())
    data[0] ^= 1
    parts[1].write_bytes(bytes(data))
    bad = subprocess.run(
        ["sha256sum", "-c", parts[1].name + ".sha256"], cwd=out, capture_output=True, text=True
    )
    assert bad.returncode != 0 and "FAILED" in bad.stdout


@pytest.mark.parametrize("size, needle", [("12X", "not a size"), ("10K", "below 64K")])
def test_bad_split_size(size, needle, tmp_path):
    line = error_line(
        airdock("build", "--split-size", size, "--no-images", "--cache-dir", tmp_path)
    )
    assert needle in line


def test_diff_reports_version_change(tmp_path, mirror_args, mirror):
    def build(version):
        return ok_json(
            airdock(
                "build",
                *mirror_args,
                "--no-images",
                "--json",
                "--output",
                tmp_path / "o",
                "--cache-dir",
                tmp_path / "c",
                "--docker-version",
                version,
            )
        )["bundle"]

    old, new = build("25.0.5"), build("26.1.4")
    text = airdock("diff", old, new)
    assert text.exit_code == 0, text.output
    assert "docker-ce: 25.0.5 -> 26.1.4" in text.stdout
    assert re.search(
        r"~ docker-ce\.x86_64: 3:25\.0\.5-1\.el7 -> 3:26\.1\.4-1\.el7 \(upgrade\)", text.stdout
    )
    d = ok_json(airdock("diff", old, new, "--json"))
    changed = {c["name"]: c for c in d["packages"]["changed"]}
    assert changed["docker-ce-cli"]["direction"] == "upgrade"
    assert "size" in d and d["docker_version"] == {"old": "25.0.5", "new": "26.1.4"}
    back = ok_json(airdock("diff", new, old, "--json"))
    assert {c["direction"] for c in back["packages"]["changed"]} == {"downgrade"}


def test_diff_of_a_non_bundle(tmp_path):
    line = error_line(airdock("diff", tmp_path, tmp_path))
    assert "is not a bundle" in line


@pytest.mark.parametrize(
    "text, says",
    [
        ('{"format": "airdock-bundle", "packages": [{"name": "x"}]}',
         "format_version None is not a whole number"),
        ('{"format": "airdock-bundle", "format_version": 1, "name": "x"}', "tool is missing"),
        ('{"format": "airdock-bundle", "format_version": 7}', "format_version 7"),
    ],
)  # fmt: skip
def test_diff_of_a_damaged_manifest(tmp_path, text, says):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "manifest.json").write_text(text)
    line = error_line(airdock("diff", tmp_path / "a", tmp_path / "b"))
    assert says in line and "manifest.json" in line


# -- planned images -----------------------------------------------------------------------------
def _static_registry(www: Path, config_digest: str) -> bytes:
    """A single-platform OCI manifest for library/app:1.0 (the plan reads manifests only)."""
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "size": 2,
            "digest": config_digest,
        },  # fmt: skip
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "size": 10,
                "digest": "sha256:" + "1" * 64,
            }
        ],  # fmt: skip
    }
    folder = www / "v2" / "library" / "app" / "manifests"
    folder.mkdir(parents=True, exist_ok=True)
    body = json.dumps(manifest).encode()
    (folder / "1.0").write_bytes(body)
    return body


def test_dry_run_json_lists_images_with_digests(tmp_path, mirror, mirror_args):
    www = tmp_path / "registry"
    body = _static_registry(www, "sha256:" + "2" * 64)
    with MirrorServer(www) as registry:
        ref = f"127.0.0.1:{registry.port}/library/app:1.0"
        result = airdock("build", *mirror_args, "--image", ref, "--dry-run", "--json",
                         "--cache-dir", tmp_path / "c")  # fmt: skip
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    [image] = plan["images"]
    assert image["reference"] == ref and image["platform"] == "linux/amd64"
    assert image["manifest_digest"] == "sha256:" + hashlib.sha256(body).hexdigest()
    assert image["config_digest"] == "sha256:" + "2" * 64 and image["size"] == 12
    assert plan["download_size"] == plan["rpm_size"] + 12
    assert mirror.count(".rpm") == 0


def test_release_with_a_drifted_image_fails_before_any_bundle(tmp_path, fixture_mirror, mirror):
    """The tag moves between the two mirrors' plans: the release stops before building."""
    www = tmp_path / "registry"
    _static_registry(www, "sha256:" + "2" * 64)
    moved = _static_registry(tmp_path / "other", "sha256:" + "3" * 64)
    with MirrorServer(www) as registry:
        registry.override("/v2/library/app/manifests/1.0", moved, times=1)
        ref = f"127.0.0.1:{registry.port}/library/app:1.0"
        base = f"{mirror.url}/docker-ce"
        result = airdock("release", "--mirror", base, "--mirror", f"{base}/", "--os-mirror",
                         f"{mirror.url}/centos-vault", "--gpg-key", fixture_mirror.key_file,
                         "--gpg-key", fixture_mirror.centos_key_file, "--image", ref,
                         "--output", tmp_path / "rel", "--cache-dir", tmp_path / "c")  # fmt: skip
    line = error_line(result)
    assert "mirrors disagree" in line and ref in line
    assert mirror.count(".rpm") == 0
    assert [p.name for p in (tmp_path / "rel").iterdir() if not p.name.startswith(".")] == []
